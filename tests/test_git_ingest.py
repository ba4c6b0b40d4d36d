"""git-ingest: a ref of a real git repository (made here with `git`) as a read-only
directory of the pond, through the real CLI: pull, status, every read, refused writes,
bad repositories and refs, a hung fetch, SIGKILL during a pull, and a restored backup
that shows the files without the repository."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import run_pond

from duckpond.pond import Pond

BINARY = bytes(range(256)) * 300  # 76,800 bytes: above the inline limit, in the blob store
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip()


def commit(repo: Path, files: dict[str, bytes | None], message: str) -> str:
    """Write (bytes) or delete (None) files, commit them all; the new commit's id."""
    for name, data in files.items():
        path = repo / name
        if data is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: README, data/x.csv, data/old.txt, assets/blob.bin (binary), a symlink; tag v1."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        {
            "README.md": b"# sensors\n",
            "data/x.csv": b"site,value\na,1\nb,2\n",
            "data/old.txt": b"to be deleted\n",
            "assets/blob.bin": BINARY,
        },
        "first",
    )
    (repo / "data" / "readme").symlink_to("../README.md")
    commit(repo, {}, "a link")
    git(repo, "tag", "v1")
    return repo


def mknod(pond: Path, tmp_path: Path, config: str, path: str = "/src/repo") -> None:
    cfg = tmp_path / f"git-{abs(hash(config))}.yaml"
    cfg.write_text(config)
    run_pond("mknod", "git-ingest", path, "--config-path", cfg, pond=pond)


def out(*args: object, pond: Path, **kw: object) -> str:
    return run_pond(*args, pond=pond, **kw).stdout.decode()  # type: ignore[arg-type]


def last_seq(pond: Path) -> int:
    return Pond.open(pond).data.last_txn_seq()


FIRST_TREE = [
    "/src/repo",
    "/src/repo/README.md",
    "/src/repo/assets",
    "/src/repo/assets/blob.bin",
    "/src/repo/data",
    "/src/repo/data/old.txt",
    "/src/repo/data/readme",
    "/src/repo/data/x.csv",
]


def test_pull_shows_the_tree_through_every_read(pond_dir: Path, repo: Path, tmp_path: Path):
    run_pond("mkdir", "/src", pond=pond_dir)
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: main\n")
    assert out("list", "/src/repo/**", pond=pond_dir) == "/src/repo\n"  # empty before a pull
    head = git(repo, "rev-parse", "main")
    pulled = out("run", "/src/repo", "pull", pond=pond_dir)
    # the link shares README's blob: 5 paths, 4 blobs
    assert pulled == f"pulled {head}: 5 files (5 added, 0 changed, 0 deleted, 4 new blobs)\n"

    assert out("list", "/src/repo/**", pond=pond_dir).splitlines() == FIRST_TREE
    assert out("cat", "/src/repo/README.md", pond=pond_dir) == "# sensors\n"
    assert out("cat", "/src/repo/data/readme", pond=pond_dir) == "# sensors\n"
    blob = run_pond("cat", "/src/repo/assets/blob.bin", pond=pond_dir).stdout
    assert blob == BINARY
    sql = "SELECT site, value FROM source ORDER BY value DESC"
    csv = out("cat", "--sql", sql, "--format", "csv", "csv:///src/repo/data/x.csv", pond=pond_dir)
    assert csv == '"site","value"\n"b",2\n"a",1\n'
    desc = json.loads(out("describe", "--format", "json", "/src/repo/data", pond=pond_dir))
    assert desc["entries"] == ["old.txt", "readme", "x.csv"]
    assert desc["factory"] == "git-ingest"
    desc = json.loads(
        out("describe", "--format", "json", "csv:///src/repo/data/x.csv", pond=pond_dir)
    )
    assert desc["schema"] == [
        {"name": "site", "type": "string"},
        {"name": "value", "type": "int64"},
    ]

    dest = tmp_path / "out"
    dest.mkdir()
    run_pond("copy", "/src/repo/**", f"host://{dest}", pond=pond_dir)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["README.md", "assets/blob.bin", "data/old.txt", "data/readme", "data/x.csv"]
    assert (dest / "assets" / "blob.bin").read_bytes() == BINARY

    # writes into it are refused, at its top and below, and nothing is written
    seq = last_seq(pond_dir)
    host = tmp_path / "h.txt"
    host.write_text("x\n")
    for target in ("/src/repo/h.txt", "/src/repo/data/h.txt"):
        err = run_pond("copy", f"host://{host}", target, pond=pond_dir, check=1).stderr
        assert err == b"error: cannot write inside a dynamic directory: /src/repo\n"
    err = run_pond("mkdir", "/src/repo/data/new", pond=pond_dir, check=1).stderr
    assert err == b"error: cannot write inside a dynamic directory: /src/repo\n"
    assert last_seq(pond_dir) == seq
    assert out("fsck", pond=pond_dir) == "no problems found\n"


def test_branch_moves_status_and_a_no_op_pull(pond_dir: Path, repo: Path, tmp_path: Path):
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: main\n")
    before = git(repo, "rev-parse", "main")
    status = out("run", "/src/repo", "status", pond=pond_dir)
    assert status == (
        f"url: {repo}\nref: main\nprefix: /\nshown: nothing (never pulled)\n"
        f"remote: {before} (newer: `pond run /src/repo pull` shows it)\n"
    )
    run_pond("run", "/src/repo", "pull", pond=pond_dir)
    after = commit(
        repo,
        {"data/x.csv": b"site,value\na,1\nb,2\nc,30\n", "data/old.txt": None, "new.md": b"new\n"},
        "second",
    )
    status = out("run", "/src/repo", "status", pond=pond_dir)
    assert status.splitlines()[3:] == [
        f"shown: {before}",
        f"remote: {after} (newer: `pond run /src/repo pull` shows it)",
    ]
    # the pond still shows the first commit until a pull
    assert "/src/repo/data/old.txt" in out("list", "/src/repo/**", pond=pond_dir).splitlines()

    pulled = out("run", "/src/repo", "pull", pond=pond_dir)
    assert pulled == f"pulled {after}: 5 files (1 added, 1 changed, 1 deleted, 2 new blobs)\n"
    assert out("list", "/src/repo/**", pond=pond_dir).splitlines() == [
        "/src/repo",
        "/src/repo/README.md",
        "/src/repo/assets",
        "/src/repo/assets/blob.bin",
        "/src/repo/data",
        "/src/repo/data/readme",
        "/src/repo/data/x.csv",
        "/src/repo/new.md",
    ]
    total = out(
        "cat",
        "--sql",
        "SELECT sum(value) AS s FROM source",
        "--format",
        "csv",
        "csv:///src/repo/data/x.csv",
        pond=pond_dir,
    )
    assert total == '"s"\n33\n'
    assert out("run", "/src/repo", "status", pond=pond_dir).splitlines()[3:] == [
        f"shown: {after}",
        f"remote: {after} (up to date)",
    ]
    # nothing changed: a recorded transaction that writes nothing
    seq = last_seq(pond_dir)
    assert out("run", "/src/repo", pond=pond_dir) == f"up to date: {after} (5 files)\n"
    assert last_seq(pond_dir) == seq


def test_tag_commit_id_and_prefix(pond_dir: Path, repo: Path, tmp_path: Path):
    v1 = git(repo, "rev-parse", "v1")
    commit(repo, {"data/x.csv": b"site,value\nz,9\n"}, "later")
    # a tag with a prefix: only data/, as it was at v1
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: v1\nprefix: data/\n", "/tagged")
    run_pond("run", "/tagged", "pull", pond=pond_dir)
    assert out("list", "/tagged/**", pond=pond_dir).splitlines() == [
        "/tagged",
        "/tagged/old.txt",
        "/tagged/x.csv",  # the link led out of data/: skipped
    ]
    assert out("cat", "/tagged/x.csv", pond=pond_dir) == "site,value\na,1\nb,2\n"
    # an abbreviated commit id names the same tree; it never moves
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: {v1[:10]}\nprefix: data\n", "/pinned")
    run_pond("run", "/pinned", "pull", pond=pond_dir)
    assert out("cat", "/pinned/x.csv", pond=pond_dir) == "site,value\na,1\nb,2\n"
    assert out("run", "/pinned", "status", pond=pond_dir).splitlines()[3:] == [
        f"shown: {v1}",
        "remote: the ref is a commit id: it never moves",
    ]


def test_bad_configs_refs_and_repositories(pond_dir: Path, repo: Path, tmp_path: Path):
    bad = {
        "url: repo\nref: main\n": "'url' must be an absolute path or a URL git can fetch",
        f"url: {repo}\nref: main\nprefix: ../up\n": "'prefix' must be a relative directory path",
        f"url: {repo}\nref: 'a b'\n": "'ref' is not a branch, tag or commit id",
        f"url: {repo}\nref: main\nbranch: x\n": "unknown config key(s): branch",
    }
    seq = last_seq(pond_dir)
    for i, (config, reason) in enumerate(bad.items()):
        cfg = tmp_path / f"bad{i}.yaml"
        cfg.write_text(config)
        err = run_pond("mknod", "git-ingest", "/g", "--config-path", cfg, pond=pond_dir, check=1)
        assert err.stderr.decode().startswith("error: git-ingest: " + reason), err.stderr
        assert err.stderr.count(b"\n") == 1
    assert last_seq(pond_dir) == seq

    # a ref that is not there, a prefix that is a file, a repository that is gone
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: nope\n", "/a")
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: main\nprefix: README.md\n", "/b")
    gone = tmp_path / "gone"
    mknod(pond_dir, tmp_path, f"url: {gone}\nref: main\n", "/c")
    seq = last_seq(pond_dir)
    head = git(repo, "rev-parse", "main")
    expected = {
        "/a": f"error: git-ingest: ref 'nope' is not a branch, tag or commit of {repo}\n",
        "/b": f"error: git-ingest: prefix 'README.md' is not a directory at main ({head[:12]})\n",
        "/c": f"error: git fetch {gone} failed: fatal: '{gone}' does not appear to be a git "
        "repository\n",
    }
    for path, message in expected.items():
        err = run_pond("run", path, "pull", pond=pond_dir, check=1).stderr.decode()
        assert err.splitlines()[-1] + "\n" == message
    err = run_pond("run", "/a", "fetch", pond=pond_dir, check=1).stderr.decode()
    assert (
        err.splitlines()[-1]
        == "error: git-ingest: usage: pond run PATH [pull|status], got ['fetch']"
    )
    assert last_seq(pond_dir) == seq  # failed runs wrote nothing
    assert out("list", "/a/**", pond=pond_dir) == "/a\n"


def test_a_hung_fetch_times_out_and_is_killed(pond_dir: Path, tmp_path: Path):
    """A remote helper that never answers (`hang::...` runs git-remote-hang from PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "helper.pid"
    helper = bin_dir / "git-remote-hang"
    helper.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    helper.chmod(0o755)
    mknod(pond_dir, tmp_path, "url: hang::nowhere\nref: main\ntimeout: 1s\n")
    seq = last_seq(pond_dir)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    err = run_pond("run", "/src/repo", "pull", pond=pond_dir, env=env, check=1).stderr.decode()
    assert err.splitlines()[-1] == (
        "error: git fetch hang::nowhere timed out after 1s (config `timeout`)"
    )
    assert last_seq(pond_dir) == seq
    pid = int(pid_file.read_text())
    assert _dead(pid)  # the helper went with git's process group


def _dead(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet: either way, not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize(
    ("phase", "shows_new"),
    [("blob_placed", False), ("before_data_commit", False), ("after_data_commit", True)],
)
def test_sigkill_during_pull_leaves_old_or_new(
    pond_dir: Path, repo: Path, tmp_path: Path, phase: str, shows_new: bool
):
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: main\n")
    run_pond("run", "/src/repo", "pull", pond=pond_dir)
    old = out("list", "/src/repo/**", pond=pond_dir)
    big = bytes(reversed(BINARY))  # a new blob: the pull writes it to the blob store
    commit(repo, {"assets/blob.bin": big, "data/old.txt": None}, "second")
    crash = run_pond(
        "run", "/src/repo", "pull", pond=pond_dir, env={"POND_CRASH_AT": phase}, check=None
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    run_pond("recover", pond=pond_dir)
    listing = out("list", "/src/repo/**", pond=pond_dir)
    blob = run_pond("cat", "/src/repo/assets/blob.bin", pond=pond_dir).stdout
    if shows_new:
        assert "/src/repo/data/old.txt" not in listing.splitlines()
        assert blob == big
    else:
        assert listing == old
        assert blob == BINARY
    # a later pull brings the new state either way; maintenance keeps every imported blob
    run_pond("run", "/src/repo", "pull", pond=pond_dir)
    run_pond("maintain", "--retention-hours", "0", pond=pond_dir)
    assert run_pond("cat", "/src/repo/assets/blob.bin", pond=pond_dir).stdout == big
    assert out("fsck", pond=pond_dir) == "no problems found\n"


def test_a_restored_backup_shows_the_files_without_the_repository(
    pond_dir: Path, repo: Path, tmp_path: Path
):
    mknod(pond_dir, tmp_path, f"url: {repo}\nref: main\n")
    run_pond("run", "/src/repo", "pull", pond=pond_dir)
    run_pond("backup", "add", "bk", f"file://{tmp_path / 'bk'}", pond=pond_dir)
    repo.rename(tmp_path / "elsewhere")
    shutil.rmtree(pond_dir / "cache" / "git")  # only a cache: reads never need it
    restored = tmp_path / "restored"
    run_pond("restore", "bk", f"file://{tmp_path / 'bk'}", pond=restored)
    assert out("list", "/src/repo/**", pond=restored).splitlines() == FIRST_TREE
    assert run_pond("cat", "/src/repo/assets/blob.bin", pond=restored).stdout == BINARY
    csv = out("cat", "--format", "csv", "csv:///src/repo/data/x.csv", pond=restored)
    assert csv == '"site","value"\n"a",1\n"b",2\n'
    assert out("fsck", pond=restored) == "no problems found\n"
    # the original pond reads without its git cache too
    assert out("cat", "/src/repo/README.md", pond=pond_dir) == "# sensors\n"


def test_env_references_are_needed_to_pull_not_to_read(pond_dir: Path, repo: Path, tmp_path: Path):
    mknod(pond_dir, tmp_path, "url: ${env:SENSORS_REPO}\nref: ${env:SENSORS_REF}\n")
    err = run_pond("run", "/src/repo", pond=pond_dir, check=1).stderr.decode()
    assert err.splitlines()[-1] == "error: environment variable SENSORS_REPO is not set"
    env = {"SENSORS_REPO": str(repo), "SENSORS_REF": "v1"}
    pulled = out("run", "/src/repo", pond=pond_dir, env=env)
    assert pulled.startswith(f"pulled {git(repo, 'rev-parse', 'v1')}: 5 files")
    # a read needs neither variable (a restored pond on another machine has none)
    assert out("cat", "/src/repo/README.md", pond=pond_dir) == "# sensors\n"
    assert out("list", "/src/repo/**", pond=pond_dir).splitlines() == FIRST_TREE
