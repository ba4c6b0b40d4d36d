"""The git command line, as git-ingest uses it: fetch into a bare cache, resolve a ref,
list a tree, read blobs (`git cat-file --batch`). Every call has a deadline: a fetch that
hangs (a dead server, a stalled helper) is killed with its whole process group and said as
one line. Nothing here parses git's object format: git does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import FactoryError

_HEX = re.compile(r"[0-9a-f]{7,64}")
# Blobs read per `git cat-file --batch` call, in bytes (their sizes come from ls-tree).
BATCH_BYTES = 64 * 1024 * 1024
_MAX_ERROR = 300

# Where each kind of ref lands in the cache; a fetch mirrors branches and tags there.
HEADS = "refs/pond/heads/"
TAGS = "refs/pond/tags/"


@dataclass(frozen=True)
class TreeEntry:
    path: str  # relative to the tree listed, `/`-separated
    mode: str  # 100644, 100755 (blob), 120000 (symlink), 160000 (submodule)
    sha: str
    size: int  # -1 for a submodule


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a terminal
            "GIT_ASKPASS": "true",
            "LC_ALL": "C",  # messages we can quote
        }
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


class Git:
    """git run on one bare repository (`git_dir`), each call within `timeout` seconds.
    `redact` cleans what git says before it reaches an error (a URL may hold a token)."""

    def __init__(self, git_dir: Path, timeout: float, redact: Callable[[str], str]) -> None:
        self.git_dir = git_dir
        self.timeout = timeout
        self.redact = redact

    def run(self, *args: str, stdin: bytes | None = None, what: str = "git") -> bytes:
        out, err, code = self.call(*args, stdin=stdin, what=what)
        if code != 0:
            raise FactoryError(f"{what} failed: {self._say(err)}")
        return out

    def call(
        self, *args: str, stdin: bytes | None = None, what: str = "git"
    ) -> tuple[bytes, bytes, int]:
        """(stdout, stderr, exit code); a timeout kills git's whole process group."""
        git = shutil.which("git")
        if git is None:
            raise FactoryError("git-ingest needs the `git` command, which is not installed")
        argv = [git, f"--git-dir={self.git_dir}", *args]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            start_new_session=True,  # its own process group: a timeout ends its helpers too
        )
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise FactoryError(
                f"{what} timed out after {self.timeout:g}s (config `timeout`)"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        return out, err, proc.returncode

    def _say(self, err: bytes) -> str:
        lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        # git's first `fatal:` or `error:` line says why (later ones add advice)
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        text = self.redact(fatal[0] if fatal else lines[-1] if lines else "no message")
        return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."

    # -- the cache ---------------------------------------------------------------------------
    def ensure(self) -> None:
        """Make the bare cache repository if it is not there (made aside, then renamed, so
        a crash never leaves a half-made one in its place)."""
        if (self.git_dir / "HEAD").is_file():
            return
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.git_dir.with_name(f".{self.git_dir.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        Git(tmp, self.timeout, self.redact).run("init", "--bare", "--quiet", what="git init")
        shutil.rmtree(self.git_dir, ignore_errors=True)
        os.replace(tmp, self.git_dir)

    def fetch(self, url: str) -> None:
        """Mirror `url`'s branches and tags into the cache (refs/pond/...)."""
        self.run(
            "fetch",
            "--quiet",
            "--prune",
            "--force",
            "--no-tags",
            "--end-of-options",
            url,
            f"+refs/heads/*:{HEADS}*",
            f"+refs/tags/*:{TAGS}*",
            what=f"git fetch {url}",
        )

    def resolve(self, ref: str) -> str | None:
        """The commit `ref` names (a branch, then a tag, then a commit id), or None."""
        candidates = [HEADS + ref, TAGS + ref]
        if _HEX.fullmatch(ref):
            candidates.append(ref)
        for name in candidates:
            out, _, code = self.call(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"
            )
            if code == 0:
                return out.decode().strip()
        return None

    def object_type(self, spec: str) -> str | None:
        out, _, code = self.call("cat-file", "-t", "--end-of-options", spec)
        return out.decode().strip() if code == 0 else None

    def ls_tree(self, tree: str) -> list[TreeEntry]:
        """Every entry under `tree` (a commit, or `COMMIT:PREFIX`), recursively."""
        out = self.run("ls-tree", "-r", "-z", "-l", "--end-of-options", tree, what="git ls-tree")
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, _kind, sha, size = meta.decode().split()
            entries.append(
                TreeEntry(
                    path=name.decode("utf-8", errors="surrogateescape"),
                    mode=mode,
                    sha=sha,
                    size=-1 if size == "-" else int(size),
                )
            )
        return entries

    def blobs(self, wanted: list[tuple[str, int]]) -> Iterator[tuple[str, bytes]]:
        """(sha, content) for each (sha, size) wanted, read in batches of BATCH_BYTES."""
        batch: list[str] = []
        total = 0
        for sha, size in wanted:
            batch.append(sha)
            total += size
            if total >= BATCH_BYTES:
                yield from self._batch(batch)
                batch, total = [], 0
        if batch:
            yield from self._batch(batch)

    def _batch(self, shas: list[str]) -> Iterator[tuple[str, bytes]]:
        out = self.run(
            "cat-file",
            "--batch",
            stdin="".join(s + "\n" for s in shas).encode(),
            what="git cat-file",
        )
        pos = 0
        for sha in shas:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            if len(header) != 3 or header[0] != sha or header[1] != "blob":
                raise FactoryError(f"git cat-file: unexpected answer for {sha}: {header}")
            size = int(header[2])
            yield sha, out[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1  # the content is followed by a newline

    # -- the remote, without fetching ------------------------------------------------------
    def remote_head(self, url: str, ref: str) -> str | None:
        """The commit the remote's branch or tag `ref` names now, or None."""
        out = self.run("ls-remote", "--end-of-options", url, what=f"git ls-remote {url}").decode()
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        for name in (f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
            if name in refs:
                return refs[name]
        return None


def is_commit_id(ref: str) -> bool:
    return bool(_HEX.fullmatch(ref))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
