"""git-ingest: one ref of a git repository as a read-only dynamic directory of the pond.

`pond mknod git-ingest /src/repo --config-path g.yaml` (url, ref, optional prefix and
timeout); `pond run /src/repo pull` fetches the ref and imports its tree into the pond;
`pond run /src/repo status` says which commit is shown and what the remote has now.

Where the content lives (the decision; DuckPond kept it in a git cache outside the pond, so
backups missed it and a replica had to re-clone): a pull copies the tree INTO the pond, as
private contents of the node (storage/private.py): one row per distinct blob (content
addressed: the key is the blob's id, so an unchanged file is never stored twice) and one
manifest row per pulled state (commit, ref, prefix, and each path's blob, size and mode),
all committed in the pull's one transaction. A read shows the latest manifest, so the pond
alone answers every read: a backup or restore shows the files without the repository, and
a SIGKILL during a pull leaves the previous state. git itself works in a bare cache under
`$POND/cache/git/NODE_ID/`, which only speeds the next fetch and can be deleted any time.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from .. import nodes, paths
from ..errors import FactoryError, PondError
from .base import DATA, Factory, Fields, RunContext
from .gitcli import Git, TreeEntry, is_commit_id
from .live import BuildContext, LiveData, LiveDir, LiveNode, parse_duration

MANIFEST = "manifest"
MANIFEST_FORMAT = 1
DEFAULT_TIMEOUT = "10m"
_BLOB_MODES = ("100644", "100755")
_SYMLINK_MODE = "120000"
_SYMLINK_HOPS = 8
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+(@[A-Za-z0-9._~-]+)?:")
_BAD_REF = re.compile(r"[\s\x00-\x1f\x7f~^:?*\[\\]|\.\.|@\{")


def blob_key(sha: str) -> str:
    return f"blob/{sha}"


class GitIngest(Factory):
    name = "git-ingest"
    kind = DATA
    runnable = True
    config_on_read = False  # reads show the stored manifest: no url, ref or secret needed
    file_type = nodes.DIR_DYNAMIC
    description = (
        "A read-only directory showing one ref of a git repository, imported into the pond: "
        "`url` (a path or URL git can fetch), `ref` (branch, tag or commit id), optional "
        "`prefix` (a sub-directory to show) and `timeout` (git's deadline, default 10m). "
        "`pond run PATH pull` imports the ref's tree; `pond run PATH status` compares."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "url": f.get("url", str, required=True),
            "ref": f.get("ref", str, required=True),
            "prefix": f.get("prefix", str, default=""),
            "timeout": f.get("timeout", str, default=DEFAULT_TIMEOUT),
        }
        f.done()
        _check_url(out["url"])
        _check_ref(out["ref"])
        out["prefix"] = _check_prefix(out["prefix"])
        parse_duration(out["timeout"], f"{self.name}: timeout")
        return out

    # -- reads -----------------------------------------------------------------------------
    def build(self, config: dict[str, Any], ctx: BuildContext) -> LiveNode:
        return GitTree(ctx)

    # -- pond run PATH pull|status -------------------------------------------------------
    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        cfg = self.validate(config)
        args = ctx.args or ["pull"]
        if len(args) != 1 or args[0] not in ("pull", "status"):
            raise FactoryError(f"{self.name}: usage: pond run PATH [pull|status], got {args}")
        timeout = parse_duration(cfg["timeout"]) / 1_000_000
        git = Git(ctx.root / "cache" / "git" / ctx.node_id(), timeout, ctx.redact)
        if args[0] == "pull":
            _pull(cfg, ctx, git)
        else:
            _status(cfg, ctx, git)


def _check_url(url: str) -> None:
    if "${env:" in url:
        return  # checked once expanded, at run time
    if not url.strip():
        raise FactoryError("git-ingest: 'url' is empty")
    if url.startswith("-"):
        raise FactoryError(f"git-ingest: 'url' may not start with '-': {url!r}")
    if "://" in url or url.startswith("/") or _SCP_LIKE.match(url):
        return
    raise FactoryError(
        f"git-ingest: 'url' must be an absolute path or a URL git can fetch, got {url!r}"
    )


def _check_ref(ref: str) -> None:
    if "${env:" in ref:
        return
    bad_ends = ref.startswith(("-", "/")) or ref.endswith(("/", ".lock"))
    if not ref or bad_ends or _BAD_REF.search(ref):
        raise FactoryError(f"git-ingest: 'ref' is not a branch, tag or commit id: {ref!r}")


def _check_prefix(prefix: str) -> str:
    """`a/b` (no leading or trailing `/`, no `.`, `..` or empty parts); `` for the root."""
    if prefix == "":
        return ""
    parts = prefix.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in prefix:
        raise FactoryError(
            f"git-ingest: 'prefix' must be a relative directory path, got {prefix!r}"
        )
    return "/".join(parts)


# ---------------------------------------------------------------------------------------------
# pull


def _pull(cfg: dict[str, Any], ctx: RunContext, git: Git) -> None:
    url, ref, prefix = cfg["url"], cfg["ref"], cfg["prefix"]
    _check_url(url)
    _check_ref(ref)
    ctx.log(f"git-ingest pull: {url} (ref {ref})")
    git.ensure()
    git.fetch(url)
    commit = git.resolve(ref)
    if commit is None:
        raise FactoryError(f"git-ingest: ref {ref!r} is not a branch, tag or commit of {url}")
    tree = f"{commit}:{prefix}" if prefix else commit
    if prefix and git.object_type(tree) != "tree":
        raise FactoryError(
            f"git-ingest: prefix {prefix!r} is not a directory at {ref} ({commit[:12]})"
        )
    files = _files(git, git.ls_tree(tree), ctx)
    missing: dict[str, int] = {}
    for e in files.values():
        if e.sha not in missing and not ctx.has_private(blob_key(e.sha)):
            missing[e.sha] = e.size
    for sha, data in git.blobs(sorted(missing.items())):
        if len(data) != missing[sha]:
            raise FactoryError(f"git-ingest: blob {sha} read {len(data)} of {missing[sha]} bytes")
        ctx.write_private(blob_key(sha), data, {"git_blob": sha})
    manifest = _encode(commit, ctx.redact(ref), prefix, files)  # a ref from ${env:...} stays one
    old = ctx.private_bytes(MANIFEST)
    if old == manifest:
        ctx.output(f"up to date: {commit} ({_count(len(files), 'file')})")
        return
    ctx.write_private(MANIFEST, manifest, {"git_commit": commit})
    before = _decode(old)["files"] if old is not None else {}
    added = sum(1 for p in files if p not in before)
    changed = sum(1 for p, e in files.items() if p in before and before[p][0] != e.sha)
    deleted = sum(1 for p in before if p not in files)
    ctx.output(
        f"pulled {commit}: {_count(len(files), 'file')} ({added} added, {changed} changed, "
        f"{deleted} deleted, {_count(len(missing), 'new blob')})"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _files(git: Git, entries: list[TreeEntry], ctx: RunContext) -> dict[str, TreeEntry]:
    """path -> blob entry: regular files, and symlinks that lead to one inside the tree
    (shown as that file); submodules, links out of the tree or to a directory are skipped."""
    files: dict[str, TreeEntry] = {}
    links: dict[str, TreeEntry] = {}
    for e in entries:
        try:
            for part in e.path.split("/"):
                paths.check_new_name(part)
        except PondError as err:
            ctx.warn(f"skipped {e.path!r}: {err}")
            continue
        if e.mode in _BLOB_MODES:
            files[e.path] = e
        elif e.mode == _SYMLINK_MODE:
            links[e.path] = e
        # 160000: a submodule, whose tree is another repository's
    if links:
        targets = dict(git.blobs([(e.sha, e.size) for e in links.values()]))
        for path in sorted(links):
            target = _follow(path, links, targets, files)
            if target is None:
                ctx.log(f"skipped symlink {path}: it does not lead to a file of the tree")
                continue
            files[path] = TreeEntry(path, target.mode, target.sha, target.size)
    return dict(sorted(files.items()))


def _follow(
    path: str, links: dict[str, TreeEntry], targets: dict[str, bytes], files: dict[str, TreeEntry]
) -> TreeEntry | None:
    for _ in range(_SYMLINK_HOPS):
        target = targets[links[path].sha].decode("utf-8", errors="replace")
        if target.startswith("/"):
            return None
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if path.startswith("../") or path == "..":
            return None
        if path in files:
            return files[path]
        if path not in links:
            return None
    return None


def _encode(commit: str, ref: str, prefix: str, files: dict[str, TreeEntry]) -> bytes:
    doc = {
        "format": MANIFEST_FORMAT,
        "commit": commit,
        "ref": ref,
        "prefix": prefix,
        "files": {p: [e.sha, e.size, e.mode] for p, e in files.items()},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _decode(raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(raw)
    if doc.get("format") != MANIFEST_FORMAT:
        raise FactoryError(f"git-ingest: manifest format {doc.get('format')} is not understood")
    return doc


# ---------------------------------------------------------------------------------------------
# status


def _status(cfg: dict[str, Any], ctx: RunContext, git: Git) -> None:
    url, ref = cfg["url"], cfg["ref"]
    raw = ctx.private_bytes(MANIFEST)
    shown = _decode(raw)["commit"] if raw is not None else None
    ctx.output(f"url: {url}")
    ctx.output(f"ref: {ref}")
    ctx.output(f"prefix: {cfg['prefix'] or '/'}")
    ctx.output(f"shown: {shown or 'nothing (never pulled)'}")
    if is_commit_id(ref) and shown is not None and shown.startswith(ref):
        ctx.output("remote: the ref is a commit id: it never moves")
        return
    git.ensure()
    remote = git.remote_head(url, ref)
    if remote is None:
        state = "no branch or tag of that name" if not is_commit_id(ref) else "a commit id"
        ctx.output(f"remote: {state}")
    elif remote == shown:
        ctx.output(f"remote: {remote} (up to date)")
    else:
        ctx.output(f"remote: {remote} (newer: `pond run {ctx.path} pull` shows it)")


# ---------------------------------------------------------------------------------------------
# reads: the latest manifest as a tree of live nodes


class _Index:
    """The manifest's files as directories: rel dir -> {name: None (a dir) or entry}."""

    def __init__(self, doc: dict[str, Any] | None) -> None:
        self.commit: str | None = None if doc is None else doc["commit"]
        self.dirs: dict[str, dict[str, tuple[str, int, str] | None]] = {"": {}}
        for path, (sha, size, mode) in (doc or {}).get("files", {}).items():
            parts = path.split("/")
            for i in range(len(parts) - 1):
                self.dirs.setdefault("/".join(parts[:i]), {})[parts[i]] = None
                self.dirs.setdefault("/".join(parts[: i + 1]), {})
            self.dirs["/".join(parts[:-1])][parts[-1]] = (sha, size, mode)


class GitDir(LiveDir):
    def __init__(self, ctx: BuildContext, path: str, rel: str, index: _Index | None) -> None:
        self.ctx = ctx
        self.path = path
        self.rel = rel  # inside the shown tree, `` for its root
        self.file_type = nodes.DIR_DYNAMIC
        self.factory = GitIngest.name
        self.version = 1
        self.size = 0
        self._index = index

    def index(self) -> _Index:
        assert self._index is not None
        return self._index

    def key(self) -> str:
        return f"git:{self.index().commit}:{self.rel}"

    def names(self) -> list[str]:
        return sorted(self.index().dirs.get(self.rel, {}))

    def child(self, name: str) -> LiveNode | None:
        entries = self.index().dirs.get(self.rel, {})
        if name not in entries:
            return None
        path = f"{self.path.rstrip('/')}/{name}"
        rel = f"{self.rel}/{name}" if self.rel else name
        entry = entries[name]
        if entry is None:
            return GitDir(self.ctx, path, rel, self.index())
        return GitFile(self.ctx, path, *entry)


class GitTree(GitDir):
    """The node itself: the tree its latest manifest records (empty before a pull)."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__(ctx, ctx.path, "", None)

    def index(self) -> _Index:
        if self._index is None:
            raw = self.ctx.private_bytes(MANIFEST)
            self._index = _Index(None if raw is None else _decode(raw))
        return self._index


class GitFile(LiveData):
    def __init__(self, ctx: BuildContext, path: str, sha: str, size: int, mode: str) -> None:
        self.ctx = ctx
        self.path = path
        self.sha = sha
        self.size = size
        self.mode = mode
        self.version = 1
        self.file_type = nodes.FILE_DATA_DYNAMIC
        self.factory = GitIngest.name

    def key(self) -> str:
        return f"git-blob:{self.sha}"

    def read_bytes(self) -> bytes:
        data = self.ctx.private_bytes(blob_key(self.sha))
        if data is None:
            raise FactoryError(f"{self.path}: git blob {self.sha} is missing from the pond")
        return data


FACTORY = GitIngest()
