"""A hung remote (issue 17, item 2): every remote call has a bounded timeout, so a push to
an S3 endpoint that accepts connections and never answers fails its post-commit task (left
for `pond push`) instead of holding the write lock. Synchronised on the hung server's
accepts; the only time asserted is the configured timeout, named by the error."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import pytest
import yaml
from conftest import CLI, cli_env, run_pond
from s3server import Remote
from test_remotes_cli import ENDPOINT_ENV, err, init_pond, jrun, last_seq, remote_args

from duckpond.errors import PondError, RemoteError
from duckpond.pond import Pond
from duckpond.remotes.push import push
from duckpond.remotes.transfers import WORKERS
from duckpond.storage.objstore import (
    DEFAULT_TIMEOUT_S,
    ObjectInfo,
    ObjectStore,
    StoreOptions,
    open_store,
)

FAILED = "post-commit task /sys/remotes/b1 (remote) failed"


class HungServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepts: queue.Queue[None] = queue.Queue()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self._conns.append(conn)  # held open, never read from nor answered
            self.accepts.put(None)

    def wait_accept(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the server accepts a connection (`proc` must still be running meanwhile)."""
        while True:
            try:
                return self.accepts.get(timeout=0.2)
            except queue.Empty:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""

    def __enter__(self) -> HungServer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join()
        for conn in self._conns:
            conn.close()


def _spawn(pond: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "--pond", str(pond), *args],
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _task_error(pond: Path, seq: int) -> tuple[str, str]:
    d = jrun("control", "detail", "--txn-seq", seq, pond=pond)
    rows = [r for r in d["records"] if r.get("factory_name") == "remote"]
    return rows[-1]["record_type"], rows[-1]["error_message"] or ""


def test_a_hung_remote_fails_the_push_at_its_timeout_and_push_catches_up(
    tmp_path: Path, s3_remote: Remote
) -> None:
    pond = init_pond(tmp_path)
    opts, env = remote_args(s3_remote)
    run_pond("backup", "add", "b1", s3_remote.url, *opts, "--timeout", "1", pond=pond, env=env)
    config = yaml.safe_load(run_pond("cat", "/sys/remotes/b1", pond=pond).stdout)
    assert config["timeout"] == 1
    first = last_seq(pond)

    with HungServer() as hung:
        down = {**env, ENDPOINT_ENV: hung.endpoint}
        a = _spawn(pond, down, "mkdir", "/during-a")
        hung.wait_accept(a)  # a's push is waiting on the hung remote, holding the lock
        b = _spawn(pond, down, "--wait", "600", "mkdir", "/during-b")
        outs = [(p, *p.communicate()) for p in (a, b)]
    for proc, _out, stderr in outs:
        # each write commits, exits 0 and warns that its push failed
        assert proc.returncode == 0, stderr.decode()
        assert FAILED in stderr.decode()
    tip = last_seq(pond)
    assert Pond.open(pond).lookup("/during-a") and Pond.open(pond).lookup("/during-b")
    for seq in range(first + 1, tip + 1):
        kind, message = _task_error(pond, seq)
        assert kind == "post_commit_failed"
        # the configured timeout is the one that fired, and the error names the remote
        assert f"remote {s3_remote.url}" in message
        assert "no answer within its timeout of 1s" in message
    [info] = jrun("remote", "list", pond=pond)
    assert info["pushed_txn_seq"] == first and "timeout of 1s" in info["last_error"]

    # the endpoint answers again: `pond push` catches up
    run_pond("push", pond=pond, env=env)
    [info] = jrun("remote", "list", pond=pond)
    assert info["pushed_txn_seq"] == tip and info["last_error"] is None
    ok = run_pond("verify", pond=pond, env=env)
    assert "[MISMATCH]" not in ok.stdout.decode()


def test_the_timeout_option_is_checked_and_stored(
    tmp_path: Path, s3_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    for bad in ("0", "-1", "3601", "soon"):
        proc = run_pond(
            "backup", "add", "b1", s3_remote.url, "--timeout", bad, pond=root, check=False
        )
        assert proc.returncode != 0 and len(err(proc).strip().splitlines()) == 1
        assert "timeout" in err(proc)
    refused = run_pond(
        "backup", "add", "b1", f"file://{tmp_path}/r", "--timeout", "5", pond=root, check=2
    )
    assert "are for s3:// URLs" in err(refused)
    assert Pond.open(root).remote_list() == []  # nothing attached
    assert s3_remote.options is not None
    monkeypatch.setenv("POND_TEST_S3_SECRET", str(s3_remote.options.secret_access_key))
    options = replace(s3_remote.options, secret_access_key="${env:POND_TEST_S3_SECRET}")
    pond.backup_add("b1", s3_remote.url, options=options, timeout=2.5)
    [att] = [a for a in _attachments(pond) if a.name == "b1"]
    assert att.options.timeout == 2.5
    assert yaml.safe_load(att.to_yaml())["timeout"] == 2.5
    pond.remote_add("imp", s3_remote.url, "/imported", options=options)
    [imp] = [a for a in _attachments(pond) if a.name == "imp"]
    assert imp.options.timeout is None and "timeout" not in yaml.safe_load(imp.to_yaml())
    assert imp.options.timeout_s == DEFAULT_TIMEOUT_S
    with pytest.raises(PondError, match="timeout must be"):
        pond.remote_add("x", s3_remote.url, "/x", options=options, timeout=0)


def _attachments(pond: Pond) -> list:  # type: ignore[type-arg]
    from duckpond.remotes import ops

    return ops.attachments(pond)


class UploadsHang(ObjectStore):
    """A remote whose reads and log entries work (a directory) while every file upload
    goes to a hung S3 endpoint: the remote stops answering in the middle of a push."""

    def __init__(self, good: ObjectStore, hung: ObjectStore) -> None:
        self.good, self.hung, self.url = good, hung, hung.url

    def get(self, key: str) -> bytes:
        return self.good.get(key)

    def get_file(self, key: str, path: Path, sync: bool = True) -> int:
        return self.good.get_file(key, path, sync)

    def head(self, key: str) -> ObjectInfo | None:
        return self.good.head(key)

    def put(self, key: str, data: bytes) -> None:
        self.good.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.hung.put_file(key, path)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.good.put_if_absent(key, data)

    def list(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        return self.good.list(prefix, after)

    def delete(self, key: str) -> None:
        self.good.delete(key)


def test_a_push_stops_at_the_first_timeout_instead_of_trying_every_file(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond = Pond.create(root)
    for i in range(3 * WORKERS):
        with pond.transaction(["test", str(i)]) as tx:
            tx.write_bytes(f"/f{i}", b"x%d" % i)
    with HungServer() as hung:
        options = StoreOptions(hung.endpoint, "us-east-1", "k", "s", allow_http=True, timeout=1)
        store = UploadsHang(
            open_store(f"file://{tmp_path / 'remote'}"), open_store("s3://b/p", options)
        )
        with pytest.raises(RemoteError, match="no answer within its timeout of 1s"):
            push(root, store)
        tried = hung.accepts.qsize()
    files = len(list(root.rglob("*.parquet")))
    assert files > 2 * WORKERS
    # the uploads running when the remote stopped answering, not one per queued file
    assert 0 < tried <= WORKERS
