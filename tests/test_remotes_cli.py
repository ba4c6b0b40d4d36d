"""Remotes through the real CLI (issue 8): backups pushed by the steward, push/pull,
restore, verify, imports, status, and bad input. Scenarios run on `file://` and on the
local S3 server (`remote` fixture, tests/s3server.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import CLI, cli_env, run_pond
from s3server import Remote

from duckpond.pond import Pond

SECRET_ENV = "POND_TEST_S3_SECRET"
ENDPOINT_ENV = "POND_TEST_S3_ENDPOINT"
BIG = 200 * 1024 + 17  # a blob (>= 64 KiB lives outside the rows), >= 200 KiB


def remote_args(remote: Remote) -> tuple[list[str], dict[str, str]]:
    """The S3 options for `backup add`/`remote add`/`restore` (secret and endpoint as
    ${env:...} references) and the environment that resolves them."""
    if remote.options is None:
        return [], {}
    o = remote.options
    args = [
        "--endpoint",
        f"${{env:{ENDPOINT_ENV}}}",
        "--region",
        str(o.region),
        "--access-key-id",
        str(o.access_key_id),
        "--secret-access-key",
        f"${{env:{SECRET_ENV}}}",
        "--allow-http",
    ]
    return args, {SECRET_ENV: str(o.secret_access_key), ENDPOINT_ENV: str(o.endpoint)}


def jrun(*args: object, **kw: Any) -> Any:
    return json.loads(run_pond(*args, "--format", "json", **kw).stdout)


def err(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode()


def init_pond(tmp_path: Path, name: str = "pond", files: int = 2) -> Path:
    """A pond with a >= 200 KiB blob, a table and `files - 2` small files, each write its
    own transaction (built through the library: set-up, not the subject)."""
    import pyarrow as pa

    root = tmp_path / name
    pond = Pond.create(root)
    with pond.transaction(["setup"]) as tx:
        tx.mkdir("/raw")
        tx.write_bytes("/raw/big.bin", os.urandom(BIG))
    with pond.transaction(["setup"]) as tx:
        tx.write_table("/raw/t", pa.table({"ts": ["2024-01-01", "2024-01-02"], "v": [1, 2]}))
    for i in range(files - 2):
        with pond.transaction(["setup"]) as tx:
            tx.write_bytes(f"/many/f{i}.txt", f"file {i}\n".encode() * 50, parents=True)
    return root


def tree_bytes(root: Path, skip: tuple[str, ...] = ("write.lock", "cache", "remotes")) -> dict:
    """Every file under a pond dir (local-only things left out) -> sha256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in skip and not p.name.startswith(".tmp-"):
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def last_seq(pond: Path) -> int:
    return int(jrun("status", pond=pond)["last_txn_seq"])


def remote_task_rows(pond: Path, seq: int) -> list[dict]:
    d = jrun("control", "detail", "--txn-seq", seq, pond=pond)
    return [r for r in d["records"] if r.get("factory_name") == "remote"]


def remote_bytes(remote: Remote) -> list[bytes]:
    store = remote.store()
    return [store.get(o.key) for o in store.list("")]


# -- backup add, auto-push, push/pull idempotence, restore, verify -------------------------------
def test_backup_restore_and_follow(tmp_path: Path, remote: Remote) -> None:
    pond = init_pond(tmp_path)
    opts, env = remote_args(remote)
    run_pond("backup", "add", "b1", remote.url, *opts, pond=pond, env=env)
    assert "[OK]" in run_pond("verify", pond=pond, env=env).stdout.decode()

    # every write is pushed by the steward: a `remote` task in the control table
    run_pond("mkdir", "/after", pond=pond, env=env)
    seq = last_seq(pond)
    rows = remote_task_rows(pond, seq)
    assert [r["record_type"] for r in rows] == [
        "post_commit_pending",
        "post_commit_started",
        "post_commit_completed",
    ]
    assert {r["config_path"] for r in rows} == {"/sys/remotes/b1"}
    [info] = jrun("backup", "list", pond=pond)
    assert info["name"] == "b1" and info["url"] == remote.url and info["mode"] == "push"
    assert info["pushed_txn_seq"] == seq

    # idempotent push (the first sends the control rows recorded after the task's push)
    run_pond("push", pond=pond, env=env)
    out = run_pond("push", pond=pond, env=env).stdout.decode()
    assert "already up to date" in out

    # restore elsewhere: same pond id, identical bytes (the big blob included)
    copy = tmp_path / "restored"
    run_pond("restore", "b1", remote.url, *opts, pond=copy, env=env)
    src_status, dst_status = jrun("status", pond=pond), jrun("status", pond=copy)
    assert dst_status["pond_id"] == src_status["pond_id"]
    assert dst_status["last_txn_seq"] == src_status["last_txn_seq"]
    assert run_pond("cat", "/raw/big.bin", pond=copy).stdout == run_pond(
        "cat", "/raw/big.bin", pond=pond
    ).stdout
    assert len(run_pond("cat", "/raw/big.bin", pond=copy).stdout) == BIG
    src_files, dst_files = tree_bytes(pond), tree_bytes(copy)
    assert any(k.startswith("blobs/") for k in dst_files)
    # the source's control table gained the push task's own rows after the push
    assert {k: v for k, v in dst_files.items() if not k.startswith("control/")} == {
        k: v for k, v in src_files.items() if not k.startswith("control/")
    }
    [mirror] = dst_status["remotes"]
    assert mirror["mode"] == "pull" and mirror["mount"] == "/"

    # a mirror refuses writes; pull follows the source, idempotently
    refused = run_pond("mkdir", "/x", pond=copy, check=1)
    assert "mirrors b1 (read-only)" in err(refused) and len(err(refused).splitlines()) == 1
    assert "already up to date" in run_pond("pull", pond=copy, env=env).stdout.decode()
    run_pond("mkdir", "/later", pond=pond, env=env)
    pulled = run_pond("pull", "b1", pond=copy, env=env).stdout.decode()
    assert "pulled" in pulled
    assert "already up to date" in run_pond("pull", "b1", pond=copy, env=env).stdout.decode()
    assert "/later" in run_pond("list", "/*", pond=copy).stdout.decode().split()
    assert jrun("status", pond=copy)["remotes"][0]["pulled_txn_seq"] == last_seq(pond)

    # detached, the restored pond is writable again
    run_pond("remote", "remove", "b1", pond=copy)
    run_pond("mkdir", "/mine", pond=copy, env=env)


def test_mirror_status_names_the_sources_unfinished_rows(tmp_path: Path) -> None:
    """Restored right after an auto-push, a mirror holds the source's push task rows as
    unfinished; `pond recover` (refused on a mirror) is not offered as the way out."""
    pond, target, copy = tmp_path / "p", tmp_path / "remote", tmp_path / "copy"
    run_pond("init", pond=pond)
    run_pond("backup", "add", "b1", f"file://{target}", pond=pond)
    run_pond("mkdir", "/d", pond=pond)  # pushed by its own post-commit task, still running
    run_pond("restore", "b1", f"file://{target}", pond=copy)
    assert jrun("status", pond=copy)["incomplete"] > 0
    shown = run_pond("status", pond=copy).stdout.decode()
    assert "read-only mirror of b1" in shown and "pond recover" not in shown
    assert "the source's" in shown
    assert run_pond("recover", pond=copy, check=1)


def test_verify_behind_and_mismatch(tmp_path: Path) -> None:
    pond = init_pond(tmp_path)
    target = tmp_path / "remote"
    run_pond("backup", "add", "b1", f"file://{target}", pond=pond)
    assert run_pond("verify", "b1", pond=pond).returncode == 0

    # behind: a write while the remote is away, then the remote comes back
    target.rename(tmp_path / "away")
    target.write_bytes(b"not a directory")
    w = run_pond("mkdir", "/while-down", pond=pond)
    assert "warning" in err(w) and "remote" in err(w)
    target.unlink()
    (tmp_path / "away").rename(target)
    behind = run_pond("verify", pond=pond)
    assert behind.returncode == 0 and "[OK]" in behind.stdout.decode()
    assert "[MISMATCH]" not in behind.stdout.decode()

    # catch up, then damage one remote file
    run_pond("push", "b1", pond=pond)
    assert "[MISMATCH]" not in run_pond("verify", pond=pond).stdout.decode()
    parquet = sorted((target / "data").rglob("*.parquet"))[0]
    parquet.write_bytes(parquet.read_bytes()[:-10] + b"0123456789")
    bad = run_pond("verify", pond=pond, check=1)
    assert "[MISMATCH]" in bad.stdout.decode()


def test_remote_down_during_write_then_push_catches_up(tmp_path: Path, remote: Remote) -> None:
    pond = init_pond(tmp_path)
    opts, env = remote_args(remote)
    run_pond("backup", "add", "b1", remote.url, *opts, pond=pond, env=env)
    if remote.options is None:
        target = Path(remote.url[len("file://") :])
        target.rename(tmp_path / "away")
        target.write_bytes(b"down")
        down_env = env
    else:
        down_env = {**env, ENDPOINT_ENV: "http://127.0.0.1:9"}  # nothing listens there
    w = run_pond("mkdir", "/during", pond=pond, env=down_env)
    assert w.returncode == 0
    assert "post-commit task /sys/remotes/b1 (remote) failed" in err(w)
    seq = last_seq(pond)
    rows = remote_task_rows(pond, seq)
    assert rows[-1]["record_type"] == "post_commit_failed" and rows[-1]["error_message"]
    [info] = jrun("remote", "list", pond=pond)
    assert info["pushed_txn_seq"] < seq and info["last_error"]
    if remote.options is None:
        target.unlink()
        (tmp_path / "away").rename(target)
    run_pond("push", pond=pond, env=env)
    assert jrun("remote", "list", pond=pond)[0]["pushed_txn_seq"] == seq
    ok = run_pond("verify", pond=pond, env=env)
    assert "[MISMATCH]" not in ok.stdout.decode()
    # recover --retry-failed re-runs the failed task: now it succeeds
    run_pond("recover", "--retry-failed", pond=pond, env=env)
    assert remote_task_rows(pond, seq)[-1]["record_type"] == "post_commit_completed"


def test_two_ponds_one_url_second_refused(tmp_path: Path, remote: Remote) -> None:
    a = init_pond(tmp_path, "a")
    b = init_pond(tmp_path, "b")
    opts, env = remote_args(remote)
    run_pond("backup", "add", "b1", remote.url, *opts, pond=a, env=env)
    before = tree_bytes(b)
    refused = run_pond("backup", "add", "b1", remote.url, *opts, pond=b, env=env, check=1)
    assert "holds pond" in err(refused) and len(err(refused).splitlines()) == 1
    assert tree_bytes(b) == before  # nothing written
    assert jrun("remote", "list", pond=b) == []
    verify = run_pond("verify", pond=a, env=env)
    assert "[MISMATCH]" not in verify.stdout.decode()


def test_secret_is_a_reference_never_stored(tmp_path: Path, s3_remote: Remote) -> None:
    pond = init_pond(tmp_path)
    opts, env = remote_args(s3_remote)
    secret = env[SECRET_ENV]
    literal = [*opts]
    literal[literal.index("--secret-access-key") + 1] = secret
    before = tree_bytes(pond)
    refused = run_pond("backup", "add", "b1", s3_remote.url, *literal, pond=pond, check=2)
    assert "${env:" in err(refused) and secret not in err(refused)
    assert tree_bytes(pond) == before

    run_pond("backup", "add", "b1", s3_remote.url, *opts, pond=pond, env=env)
    run_pond("mkdir", "/more", pond=pond, env=env)
    config = run_pond("cat", "/sys/remotes/b1", pond=pond).stdout.decode()
    assert f"${{env:{SECRET_ENV}}}" in config
    needle = secret.encode()
    for p in pond.rglob("*"):
        if p.is_file():
            assert needle not in p.read_bytes(), p
    for data in remote_bytes(s3_remote):
        assert needle not in data


def test_sigkill_during_first_push_then_resume(tmp_path: Path, remote: Remote) -> None:
    pond = init_pond(tmp_path, files=12)
    opts, env = remote_args(remote)
    argv = [*CLI, "--pond", str(pond), "backup", "add", "b1", remote.url, *opts]
    proc = subprocess.run(
        argv, env=cli_env({**env, "POND_CRASH_AT": "mid_push"}), capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL
    # the half-pushed remote is not yet a copy of the pond
    assert jrun("remote", "list", pond=pond)[0]["pushed_txn_seq"] is None
    # re-running backup add over its own half-pushed remote resumes
    run_pond("backup", "add", "b1", remote.url, *opts, pond=pond, env=env)
    run_pond("recover", pond=pond, env=env)
    assert "[MISMATCH]" not in run_pond("verify", pond=pond, env=env).stdout.decode()
    copy = tmp_path / "copy"
    run_pond("restore", "b1", remote.url, *opts, pond=copy, env=env)
    assert run_pond("cat", "/many/f9.txt", pond=copy).stdout == b"file 9\n" * 50


def test_a_restore_killed_by_sigkill_leaves_a_temp_dir_the_next_restore_removes(
    tmp_path: Path,
) -> None:
    pond = init_pond(tmp_path, files=3)
    url = f"file://{tmp_path / 'remote'}"
    run_pond("backup", "add", "b1", url, pond=pond)
    parent = tmp_path / "restores"
    argv = [*CLI, "--pond", str(parent / "copy"), "restore", "b1", url]
    proc = subprocess.run(argv, env=cli_env({"POND_CRASH_AT": "mid_restore"}), capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    [left] = [p.name for p in parent.iterdir()]
    assert left.startswith(".copy.restore-")  # never a half pond
    # the next restore into that parent (here: another target) removes it
    done = run_pond("restore", "b1", url, pond=parent / "other")
    assert sorted(p.name for p in parent.iterdir()) == ["other"]
    assert f"removed {parent / left}, left by a killed restore" in err(done)
    assert run_pond("cat", "/many/f0.txt", pond=parent / "other").stdout == b"file 0\n" * 50


def test_sigkill_during_push_then_recover(tmp_path: Path) -> None:
    pond = init_pond(tmp_path, files=6)
    url = f"file://{tmp_path / 'remote'}"
    run_pond("backup", "add", "b1", url, pond=pond)
    src = tmp_path / "more.bin"
    src.write_bytes(os.urandom(BIG))
    argv = [*CLI, "--pond", str(pond), "copy", f"host://{src}", "/raw/more.bin"]
    proc = subprocess.run(argv, env=cli_env({"POND_CRASH_AT": "mid_push"}), capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    report = jrun("recover", pond=pond)
    assert report
    assert "[MISMATCH]" not in run_pond("verify", pond=pond).stdout.decode()
    assert jrun("remote", "list", pond=pond)[0]["pushed_txn_seq"] == last_seq(pond)


def test_follow_own_backup_and_bidirectional(tmp_path: Path) -> None:
    a = init_pond(tmp_path, "a")
    other = init_pond(tmp_path, "other")
    url = f"file://{tmp_path / 'r'}"
    run_pond("backup", "add", "b", url, "--bidirectional", pond=a)
    [info] = jrun("remote", "list", pond=a)
    assert (info["mode"], info["mount"]) == ("both", "/")
    assert "already up to date" in run_pond("pull", "b", pond=a).stdout.decode()
    # PATH / follows a backup of this very pond: another pond's is refused
    refused = run_pond("remote", "add", "f", url, "/", pond=other, check=1)
    assert "holds pond" in err(refused)
    assert jrun("remote", "list", pond=other) == []
    run_pond("remote", "add", "f", url, "/", pond=a)
    assert "mirrors f (read-only)" in err(run_pond("mkdir", "/no", pond=a, check=1))
    assert "already up to date" in run_pond("pull", "f", pond=a).stdout.decode()
    run_pond("remote", "remove", "f", pond=a)
    run_pond("mkdir", "/yes", pond=a)


# -- imports -------------------------------------------------------------------------------------
def test_import_is_read_only(tmp_path: Path, remote: Remote) -> None:
    other = init_pond(tmp_path, "other")
    opts, env = remote_args(remote)
    run_pond("backup", "add", "b1", remote.url, *opts, pond=other, env=env)
    pond = tmp_path / "pond"
    run_pond("init", pond=pond)
    run_pond("remote", "add", "o", remote.url, "/ext/other", *opts, pond=pond, env=env)
    assert run_pond("list", "/ext/other/*", pond=pond).stdout.decode().split() == []
    run_pond("pull", "o", pond=pond, env=env)
    listed = run_pond("list", "/ext/other/**", pond=pond).stdout.decode().split()
    assert "/ext/other/raw/big.bin" in listed and "/ext/other/raw/t" in listed
    assert run_pond("cat", "/ext/other/raw/big.bin", pond=pond).stdout == run_pond(
        "cat", "/raw/big.bin", pond=other
    ).stdout
    rows = jrun("cat", "/ext/other/raw/t", "--sql", "SELECT sum(v) AS s FROM source", pond=pond)
    assert rows == [{"s": 3}]
    d = jrun("describe", "/ext/other/raw/t", pond=pond)
    assert [f["name"] for f in d["schema"]] == ["ts", "v"]
    before = last_seq(pond)
    src = tmp_path / "x.txt"
    src.write_text("x")
    for args in (
        ("copy", f"host://{src}", "/ext/other/raw/x.txt"),
        ("copy", f"host://{src}", "/ext/other/"),
        ("mkdir", "-p", "/ext/other/new/dir"),
    ):
        refused = run_pond(*args, pond=pond, check=1)
        assert err(refused).strip() == (
            "error: /ext/other is a read-only import of remote o: writes under it are refused"
        ), args
    # a path merely containing the mount's text is no write under it
    refused = run_pond("copy", f"host://{src}", "/in/ext/other/x.txt", pond=pond, check=1)
    assert err(refused).strip() == "error: no such directory: /in/ext/other"
    assert last_seq(pond) == before
    [info] = jrun("remote", "list", pond=pond)
    assert info["mode"] == "pull" and info["mount"] == "/ext/other"
    # later pushes of the other pond arrive with the next pull
    run_pond("mkdir", "/newer", pond=other, env=env)
    run_pond("pull", "o", pond=pond, env=env)
    assert "/ext/other/newer" in run_pond("list", "/ext/other/*", pond=pond).stdout.decode()
    run_pond("remote", "remove", "o", "--purge", pond=pond)
    assert run_pond("list", "/ext/*", pond=pond).stdout.decode().split() == []
    assert not (pond / "imports" / "o").exists()


# -- listings, status, bad input -----------------------------------------------------------------
def test_status_and_list_json_shapes(tmp_path: Path) -> None:
    pond = init_pond(tmp_path)
    s = jrun("status", pond=pond)
    assert set(s) == {"pond_id", "last_txn_seq", "incomplete", "remotes"}
    assert s["remotes"] == [] and s["incomplete"] == 0
    run_pond("backup", "add", "b1", f"file://{tmp_path / 'r'}", pond=pond)
    s = jrun("status", pond=pond)
    [r] = s["remotes"]
    keys = {"name", "url", "mode", "mount", "pushed_txn_seq", "pulled_txn_seq"}
    assert keys <= set(r)
    assert r["pushed_txn_seq"] == s["last_txn_seq"]
    for listing in (jrun("remote", "list", pond=pond), jrun("backup", "list", pond=pond)):
        assert [x["name"] for x in listing] == ["b1"] and keys <= set(listing[0])
    table = run_pond("remote", "list", pond=pond).stdout.decode()
    assert table.split()[:6] == ["NAME", "URL", "MODE", "MOUNT", "PUSHED", "PULLED"]
    run_pond("push", pond=pond)
    [push] = jrun("push", pond=pond)
    assert push["name"] == "b1" and push["up_to_date"] is True


BAD_INPUT = [
    ("backup", "add", "b1", "ftp://host/x"),
    ("backup", "add", "b1", "file://relative/dir"),
    ("backup", "add", "bad/name", "file:///tmp/x"),
    ("backup", "add", "b1", "file:///tmp/x", "--endpoint", "http://h"),
    ("push", "nope"),
    ("pull", "nope"),
    ("verify", "nope"),
    ("remote", "remove", "nope"),
    ("pull",),
    ("remote", "add", "r", "s3://Bad_Bucket/x", "/imp"),
]


def test_bad_input_one_line_error_pond_unchanged(tmp_path: Path) -> None:
    pond = tmp_path / "pond"
    Pond.create(pond)
    before = tree_bytes(pond)
    for args in BAD_INPUT:
        proc = run_pond(*args, pond=pond, check=False)
        assert proc.returncode in (1, 2), args
        lines = err(proc).splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
        assert tree_bytes(pond) == before, args


def test_restore_refuses_an_existing_pond_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    pond = init_pond(tmp_path)
    url = f"file://{tmp_path / 'r'}"
    run_pond("backup", "add", "b1", url, pond=pond)
    before = tree_bytes(pond)
    proc = run_pond("restore", "b1", url, pond=pond, check=1)
    assert "not empty" in err(proc) and len(err(proc).splitlines()) == 1
    assert tree_bytes(pond) == before
    # a remote holding no pond: nothing left behind
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    target = tmp_path / "new"
    proc = run_pond("restore", "b1", f"file://{empty}", pond=target, check=1)
    assert len(err(proc).splitlines()) == 1
    assert not target.exists() or not any(target.iterdir())
    shutil.rmtree(empty)


def test_an_import_is_never_mounted_under_etc_or_sys(tmp_path: Path, remote: Remote) -> None:
    # issue 17 item 10d: an import under /etc/system.d would be read as post-commit jobs
    other = init_pond(tmp_path, "other")
    opts, env = remote_args(remote)
    run_pond("backup", "add", "b1", remote.url, *opts, pond=other, env=env)
    pond = tmp_path / "pond"
    run_pond("init", pond=pond)
    before = tree_bytes(pond)
    for mount in ("/etc/system.d/x", "/etc", "/sys/other"):
        proc = run_pond("remote", "add", "o", remote.url, mount, *opts, pond=pond, env=env, check=1)
        top = "/" + mount.split("/")[1]
        assert err(proc).strip() == (
            f"error: an import cannot be mounted under {top} (the pond's own configuration)"
        )
        assert tree_bytes(pond) == before
