"""Remotes at the library level: push, pull, restore and verify against real ponds, each
scenario on `file://` and on `s3://` (a local moto server, see s3server.py)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from s3server import Remote

from duckpond.errors import AlreadyExistsError, RemoteError, RemoteNotFound
from duckpond.pond import Pond
from duckpond.remotes import layout
from duckpond.remotes.logs import local_tip, remote_identity, remote_tip
from duckpond.remotes.pull import pull
from duckpond.remotes.push import push
from duckpond.remotes.reports import VerifyReport
from duckpond.remotes.restore import restore
from duckpond.remotes.verify import verify
from duckpond.storage import tableread, upkeep
from duckpond.storage.objstore import ObjectInfo, ObjectStore

BIG = 256 * 1024  # a blob (>= 200 KiB)
LOCAL_ONLY = ("write.lock", "cache", "remotes", "imports")


def make_pond(root: Path, writes: int = 3, big: bool = True) -> Pond:
    pond = Pond.create(root)
    for i in range(writes):
        with pond.transaction(args=["test", str(i)]) as tx:
            size = BIG if big and i == 1 else 100
            tx.write_bytes(f"/f{i}", os.urandom(size))
    return pond


def write(root: Path, path: str, data: bytes) -> None:
    with Pond.open(root).transaction(args=["test", "write", path]) as tx:
        tx.write_bytes(path, data, parents=True)


def pond_files(root: Path) -> dict[str, bytes]:
    """Every file a copy of the pond holds (local-only things left out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel.split("/")[0] not in LOCAL_ONLY:
            if not any(p.startswith(".tmp-") or p == "_pond_vacuumed" for p in rel.split("/")):
                out[rel] = path.read_bytes()
    return out


def history(root: Path) -> list[tuple[int, int, dict[str, object]]]:
    return sorted(Pond.open(root).data.commit_history())


def statuses(report: VerifyReport) -> list[str]:
    return [s for s, _ in report.lines]


def mismatches(report: VerifyReport) -> str:
    return "\n".join(m for s, m in report.lines if s == "MISMATCH")


# -- push ------------------------------------------------------------------------------


def test_push_twice_moves_nothing_the_second_time(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    store = remote.store()
    first = push(root, store)
    assert first.entries > 0 and first.files > 0
    assert first.tip == local_tip(root) == remote_tip(store)
    assert first.tip.txn_seq == 4  # init + 3 writes
    ident = remote_identity(store)
    assert ident == {"pond_id": Pond.open(root).identity()["pond_id"], "format": 1}
    again = push(root, store)
    assert again.up_to_date and again.bytes == 0
    assert "already up to date" in again.message()
    from_watermark = push(root, store, since=first.tip)
    assert from_watermark.up_to_date and from_watermark.bytes == 0


def test_incremental_push_from_watermark_pushes_only_the_new_transaction(
    tmp_path: Path, remote: Remote
) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    store = remote.store()
    first = push(root, store)
    write(root, "/big2", os.urandom(BIG))
    second = push(root, store, since=first.tip)
    assert second.start == first.tip
    assert second.tip.txn_seq == first.tip.txn_seq + 1
    # one data entry, the control entries of one write; one Parquet file and one blob
    assert second.entries == (second.tip.data_version - first.tip.data_version) + (
        second.tip.control_version - first.tip.control_version
    )
    assert BIG < second.bytes < BIG + 64 * 1024
    assert verify(root, store).ok


def test_push_refuses_a_remote_holding_another_pond(tmp_path: Path, remote: Remote) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_pond(a)
    make_pond(b, writes=5)
    store = remote.store()
    push(a, store)
    before = {o.key: o.size for o in store.list("")}
    with pytest.raises(RemoteError, match="holds pond .*, not this pond"):
        push(b, store)
    assert {o.key: o.size for o in store.list("")} == before
    assert verify(a, store).ok
    report = verify(b, store)
    assert not report.ok and "not this pond" in mismatches(report)


def test_diverged_copy_cannot_push_and_verify_says_so(tmp_path: Path, remote: Remote) -> None:
    src, copy = tmp_path / "src", tmp_path / "copy"
    make_pond(src)
    store = remote.store()
    push(src, store)
    restore(copy, store)
    write(src, "/from-src", b"one")
    push(src, store)
    write(copy, "/from-copy", b"two")  # the same pond id, another history
    before = {o.key: o.size for o in store.list("")}
    with pytest.raises(RemoteError, match="diverged"):
        push(copy, store)
    assert {o.key: o.size for o in store.list("")} == before
    report = verify(copy, store)
    assert not report.ok and "diverged from this pond at version" in mismatches(report)
    with pytest.raises(RemoteError, match="diverged"):
        pull(copy, store)
    assert verify(src, store).ok


# -- restore and pull ------------------------------------------------------------------


def test_restore_gives_the_same_pond_byte_for_byte(tmp_path: Path, remote: Remote) -> None:
    src, dst = tmp_path / "src", tmp_path / "restored"
    pond = make_pond(src, writes=4)
    store = remote.store()
    push(src, store)
    report = restore(dst, store)
    assert report.tip == local_tip(src)
    restored = Pond.open(dst)
    assert restored.identity()["pond_id"] == pond.identity()["pond_id"]
    source_files = pond_files(src)
    assert any(k.startswith("blobs/") and len(v) == BIG for k, v in source_files.items())
    assert pond_files(dst) == source_files
    assert restored.read_bytes("/f1") == Pond.open(src).read_bytes("/f1")
    assert history(dst) == history(src)
    assert [t.txn_seq for t in restored.control_recent(100)] == [
        t.txn_seq for t in Pond.open(src).control_recent(100)
    ]
    assert verify(dst, store).ok
    # the restored pond is a working pond
    write(dst, "/after", b"x")
    assert Pond.open(dst).read_bytes("/after") == b"x"


def test_restore_refuses_a_non_empty_target(tmp_path: Path, remote: Remote) -> None:
    src = tmp_path / "src"
    make_pond(src, writes=1)
    store = remote.store()
    push(src, store)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExistsError, match="not empty"):
        restore(target, store)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    with pytest.raises(AlreadyExistsError):
        restore(src, store)  # an existing pond
    empty = tmp_path / "empty"
    empty.mkdir()
    restore(empty, store)  # an empty directory is fine
    assert Pond.open(empty).identity() == Pond.open(src).identity()


class FailingStore(ObjectStore):
    """A real store whose downloads fail after `ok` of them (a remote dying mid-restore)."""

    def __init__(self, inner: ObjectStore, ok: int) -> None:
        self.inner, self.ok, self.url = inner, ok, inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_file(self, key: str, path: Path, sync: bool = True) -> int:
        self.ok -= 1
        if self.ok < 0:
            raise RemoteError(f"remote {self.url}: connection reset")
        return self.inner.get_file(key, path, sync)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.inner.put_file(key, path)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def list(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        return self.inner.list(prefix, after)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_failed_restore_leaves_nothing(tmp_path: Path, remote: Remote) -> None:
    parent = tmp_path / "here"
    parent.mkdir()
    # a remote that holds nothing
    with pytest.raises(RemoteError, match="holds no pond"):
        restore(parent / "pond", remote.store())
    assert list(parent.iterdir()) == []
    # a remote that fails half-way through the download
    src = tmp_path / "src"
    make_pond(src)
    store = remote.store()
    push(src, store)
    with pytest.raises(RemoteError, match="connection reset"):
        restore(parent / "deeper" / "pond", FailingStore(store, ok=5))
    assert list(parent.iterdir()) == []
    # an empty target directory stays as it was
    (parent / "empty").mkdir()
    with pytest.raises(RemoteError):
        restore(parent / "empty", FailingStore(store, ok=5))
    assert [p.name for p in parent.iterdir()] == ["empty"]
    assert list((parent / "empty").iterdir()) == []


def test_stale_restore_dirs_are_removed_and_running_ones_kept(tmp_path: Path) -> None:
    """Only a temp dir whose restore process is gone and whose lock is free is stale: one
    of a live process (even before it locks it) or one still locked stays."""
    import fcntl

    from duckpond.remotes.restore import remove_stale

    # alive until its stdin closes, however long the test takes
    sleeper = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
    try:
        dead = _dead_pid()
        names = {
            "dead": f".a.restore-{dead}-{'0' * 12}",
            "live": f".b.restore-{sleeper.pid}-{'1' * 12}",
            "mine": f".c.restore-{os.getpid()}-{'2' * 12}",
            "locked": f".d.restore-{dead}-{'3' * 12}",
            "other": ".e.restore-x",
        }
        for name in names.values():
            (tmp_path / name / "data").mkdir(parents=True)
        fd = os.open(tmp_path / names["locked"], os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a restore elsewhere still holds it
            assert remove_stale(tmp_path) == [tmp_path / names["dead"]]
        finally:
            os.close(fd)
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(v for k, v in names.items() if k != "dead")
    finally:
        sleeper.kill()
        sleeper.communicate()


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_pull_fast_forwards_a_restored_copy(tmp_path: Path, remote: Remote) -> None:
    src, copy = tmp_path / "src", tmp_path / "copy"
    make_pond(src, writes=2)
    store = remote.store()
    first = push(src, store)
    restore(copy, store)
    assert pull(copy, store).up_to_date
    blob = os.urandom(BIG)
    write(src, "/more/big", blob)
    write(src, "/more/small", b"small")
    second = push(src, store, since=first.tip)
    pulled = pull(copy, store)
    assert pulled.tip == second.tip == local_tip(copy)
    assert pulled.start == first.tip
    mirror = Pond.open(copy)
    assert mirror.read_bytes("/more/big") == blob
    assert mirror.read_bytes("/more/small") == b"small"
    assert pond_files(copy) == pond_files(src)
    assert pull(copy, store).up_to_date
    assert verify(copy, store).ok


def test_pull_reports_progress_against_a_planned_total(tmp_path: Path) -> None:
    """The progress total is planned before the bytes move (a bar that knows its end:
    the entries and their files up front, the blobs once the rows naming them are in),
    and it is what the pull moves: the last call is (total, total)."""
    src, copy = tmp_path / "src", tmp_path / "copy"
    make_pond(src, writes=1, big=False)
    store = Remote(f"file://{tmp_path / 'remote'}", None).store()
    first = push(src, store)
    restore(copy, store)
    for i in range(3):
        write(src, f"/more/big{i}", os.urandom(BIG))
    push(src, store, since=first.tip)
    calls: list[tuple[int, int]] = []
    report = pull(copy, store, progress=lambda done, total: calls.append((done, total)))
    assert report.entries > 0 and report.bytes > 3 * BIG
    done, total = calls[0]
    assert total > done
    assert any(t >= 3 * BIG > d for d, t in calls)  # the blobs planned before they moved
    assert all(d <= t for d, t in calls)
    assert calls[-1] == (report.bytes, report.bytes)


# -- verify ----------------------------------------------------------------------------


def test_verify_ok_then_behind(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    store = remote.store()
    push(root, store)
    report = verify(root, store)
    assert report.ok and set(statuses(report)) == {"OK"}
    assert "up to date" in report.lines[-1][1]
    write(root, "/x", b"1")
    write(root, "/y", b"2")
    behind = verify(root, store)
    assert behind.ok
    assert any("behind by 2 transactions" in m for _, m in behind.lines)
    assert behind.to_json()["ok"] is True


def test_verify_finds_a_corrupted_and_a_missing_remote_file(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    store = remote.store()
    push(root, store)
    keys = [o.key for o in store.list("")]
    parquet = next(k for k in keys if k.startswith("data/") and k.endswith(".parquet"))
    blob = next(k for k in keys if k.startswith("blobs/"))
    good = store.get(parquet)
    store.put(parquet, good[:-1] + bytes([good[-1] ^ 1]))  # same size, one bit off
    report = verify(root, store)
    assert not report.ok
    assert f"{parquet} is corrupt" in mismatches(report)
    store.put(parquet, good)
    assert verify(root, store).ok
    store.delete(blob)
    report = verify(root, store)
    assert not report.ok and f"{blob} is missing" in mismatches(report)
    with pytest.raises(RemoteNotFound):
        store.get(blob)
    # a blob that does not hash to its name is corrupt, whatever this pond holds
    store.put(blob, b"not the content")
    report = verify(root, store)
    assert not report.ok and f"{blob} is corrupt" in (
        mismatches(report)
    )


def test_verify_finds_a_missing_log_entry(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root, writes=3, big=False)
    store = remote.store()
    push(root, store)
    store.delete(layout.entry_key("data", 2))
    report = verify(root, store)
    missing = "data/_delta_log/00000000000000000002.json is missing"
    assert not report.ok and missing in mismatches(report)


# -- a pruned local log --------------------------------------------------------------------


def test_first_push_of_a_pruned_log_starts_from_a_checkpoint(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY", 4)
    root = tmp_path / "pond"
    make_pond(root, writes=14)
    data = root / "data"
    # prune every entry behind the last checkpoint (what upkeep does over time)
    upkeep.prune_log(data, tableread.last_checkpoint_version(data), "pond_txn")
    local = layout.local_log(data)
    assert local.start > 0 and local.start in local.checkpoints
    store = remote.store()
    first = push(root, store)
    assert verify(root, store).ok
    assert push(root, store).up_to_date
    assert push(root, store, since=first.tip).up_to_date
    write(root, "/later", b"later")
    assert push(root, store, since=first.tip).entries > 0
    dst = tmp_path / "restored"
    restore(dst, store)
    assert history(dst) == history(root)
    assert pond_files(dst).keys() >= {
        k for k in pond_files(root) if not k.startswith("data/part_id")
    }
    for i in range(14):
        assert Pond.open(dst).read_bytes(f"/f{i}") == Pond.open(root).read_bytes(f"/f{i}")
    assert Pond.open(dst).read_bytes("/later") == b"later"


def test_a_remote_left_behind_a_pruned_log_resumes_from_a_checkpoint(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY", 4)
    root, mirror, fresh = tmp_path / "pond", tmp_path / "mirror", tmp_path / "fresh"
    make_pond(root, writes=2)
    store = remote.store()
    first = push(root, store)
    restore(mirror, store)
    for i in range(12):
        write(root, f"/later/f{i}", os.urandom(BIG if i == 5 else 100))
    for table in ("data", "control"):
        path = root / table
        upkeep.prune_log(
            path, tableread.last_checkpoint_version(path), "pond_txn" if table == "data" else None
        )
    assert layout.local_log(root / "data").start > first.tip.data_version + 1
    push(root, store, since=first.tip)
    assert verify(root, store).ok  # a gap below a checkpoint is valid Delta
    # a restore starts from the checkpoint: a contiguous log, the whole history
    restore(fresh, store)
    assert Pond.open(fresh).fsck().problems == []
    assert history(fresh) == history(root)
    # a mirror left behind pulls across the gap the same way
    pulled = pull(mirror, store)
    assert pulled.tip.txn_seq == local_tip(root).txn_seq
    copy = Pond.open(mirror)
    assert copy.fsck().problems == []
    assert history(mirror) == history(root)
    for i in range(12):
        assert copy.read_bytes(f"/later/f{i}") == Pond.open(root).read_bytes(f"/later/f{i}")
    assert verify(mirror, store).ok


def test_a_diverged_copy_with_a_pruned_log_cannot_push(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY", 4)
    src, copy = tmp_path / "src", tmp_path / "copy"
    make_pond(src, writes=1, big=False)
    store = remote.store()
    push(src, store)
    restore(copy, store)
    write(src, "/from-src", b"one")
    push(src, store)
    for i in range(12):
        write(copy, f"/from-copy/f{i}", b"two")
    data, control = copy / "data", copy / "control"
    upkeep.prune_log(data, tableread.last_checkpoint_version(data), "pond_txn")
    from deltalake import DeltaTable

    control_table = DeltaTable(str(control))
    control_table.create_checkpoint()
    upkeep.prune_log(control, control_table.version(), None)
    tip = remote_tip(store)
    assert layout.local_log(data).start > tip.data_version
    assert layout.local_log(control).start > tip.control_version
    before = {o.key: o.size for o in store.list("")}
    with pytest.raises(RemoteError, match="diverged"):
        push(copy, store)
    assert {o.key: o.size for o in store.list("")} == before
    assert verify(src, store).ok


class RecordingStore(FailingStore):
    """A real store that records the order in which log entries land. A data entry lands
    only once the control chain has gone as far as it can without it (it waits at the
    push's gate, or it has finished): the slowest data link there is, so a control entry
    that could overtake the data it records does. Events, not sleeps."""

    def __init__(self, inner: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(inner, ok=1 << 30)
        self.landed: list[str] = []
        self._cond = threading.Condition()
        self._at_gate = False  # the control chain waits at the gate
        self._control_done = False
        module = importlib.import_module("duckpond.remotes.push")
        gate_wait, push_entries = module._Gate.wait, module._push_entries

        def wait(gate: Any, seq: int | None) -> bool:
            with self._cond:
                self._at_gate = True
                self._cond.notify_all()
            try:
                return bool(gate_wait(gate, seq))
            finally:
                with self._cond:
                    self._at_gate = False

        def entries(store: ObjectStore, tp: Any, t: Any, gate: Any) -> int:
            try:
                return int(push_entries(store, tp, t, gate))
            finally:
                if tp.table == "control":
                    with self._cond:
                        self._control_done = True
                        self._cond.notify_all()

        monkeypatch.setattr(module._Gate, "wait", wait)
        monkeypatch.setattr(module, "_push_entries", entries)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key.startswith("data/_delta_log/"):
            with self._cond:
                self._cond.wait_for(lambda: self._at_gate or self._control_done)
        done = self.inner.put_if_absent(key, data)
        with self._cond:
            self.landed.append(key)
        return done


def test_control_entries_never_overtake_the_data_they_record(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    root = tmp_path / "pond"
    make_pond(root, writes=8, big=False)
    store = RecordingStore(remote.store(), monkeypatch)
    push(root, store)
    data_seq = 0
    for key in store.landed:
        if "/_delta_log/" not in key:
            continue  # pond.json
        version = int(key.rsplit("/", 1)[1].split(".")[0])
        body = (root / key).read_bytes()
        entry = layout.parse_entry(body, key)
        if key.startswith("data/"):
            data_seq = max(data_seq, entry.txn_seq or 0)
            continue
        for rel in entry.adds:
            seqs = pq.read_table(root / "control" / rel, columns=["txn_seq"]).column(0)
            recorded = max(x for x in seqs.to_pylist() if x is not None)
            assert recorded <= data_seq, f"control version {version} landed before its data"
    assert data_seq == local_tip(root).txn_seq


# -- crashes -------------------------------------------------------------------------------

# Pushes, and SIGKILLs itself once the K-th object (file or log entry) has landed: a real
# crash at a chosen point of the push, whatever the machine's speed.
PUSHER = """
import json, os, signal, sys, threading
from pathlib import Path
from duckpond.remotes.push import push
from duckpond.storage.objstore import StoreOptions, open_store
url, options, kill_at = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[4])
store = open_store(url, StoreOptions(**options) if options else None)
landed, lock = [0], threading.Lock()
def counted(put):
    def run(*args, **kw):
        out = put(*args, **kw)
        with lock:
            landed[0] += 1
            if landed[0] >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return out
    return run
for name in ("put", "put_file", "put_if_absent"):
    setattr(store, name, counted(getattr(store, name)))
push(Path(sys.argv[3]), store)
print("done")
"""


def _remote_count(store: ObjectStore) -> int:
    return len(store.list(""))


@pytest.fixture(scope="module")
def many_files_pond(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A pond of 30 writes (a few with blobs), and how many files a whole push moves."""
    root = tmp_path_factory.mktemp("many") / "pond"
    pond = Pond.create(root)
    for i in range(30):
        with pond.transaction(args=["test", str(i)]) as tx:
            data = os.urandom(BIG if i % 10 == 0 else 200)
            tx.write_bytes(f"/d{i % 3}/f{i}", data, parents=True)
    scratch = root.parent / "scratch"
    return root, push(root, Remote(f"file://{scratch}", None).store()).files


@pytest.mark.parametrize("fraction", [0.2, 0.6])
def test_push_killed_midway_resumes(
    tmp_path: Path, remote: Remote, fraction: float, many_files_pond: tuple[Path, int]
) -> None:
    root = tmp_path / "pond"
    shutil.copytree(many_files_pond[0], root)
    total = many_files_pond[1]
    store = remote.store()
    options = json.dumps(asdict(remote.options) if remote.options else {})
    kill_at = max(1, int(fraction * total))  # fewer than the files, let alone the entries
    proc = subprocess.run(
        [sys.executable, "-c", PUSHER, remote.url, options, str(root), str(kill_at)],
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert _remote_count(store) >= kill_at
    tip, mine = remote_tip(store), local_tip(root)
    # killed half-way
    assert tip.data_version < mine.data_version or tip.control_version < mine.control_version
    # what is there is a readable prefix: no entry without its files
    if tip.data_version >= 0:
        assert verify(root, store).ok
    # and the remote's control table records no transaction its data table lacks
    if tip.control_version >= 0:
        assert _max_txn_seq(remote.table_uri("control"), remote.storage_options) <= tip.txn_seq
    report = push(root, store)
    assert report.tip == local_tip(root)
    assert verify(root, store).ok
    dst = tmp_path / "restored"
    restore(dst, store)
    assert pond_files(dst) == pond_files(root)


# -- other readers ---------------------------------------------------------------------


def _max_txn_seq(uri: str, storage_options: dict[str, str]) -> int:
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(uri, storage_options=storage_options or None)
    sql = "SELECT max(txn_seq) AS m FROM t"
    top = QueryBuilder().register("t", table).execute(sql).read_all().column("m")[0].as_py()
    return -1 if top is None else int(top)  # None: no rows yet


def _count(uri: str, storage_options: dict[str, str] | None = None) -> int:
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(uri, storage_options=storage_options)
    batches = QueryBuilder().register("t", table).execute("SELECT count(*) AS n FROM t").read_all()
    return int(batches.column("n")[0].as_py())


def test_deltalake_reads_the_remote_with_the_ponds_row_counts(
    tmp_path: Path, remote: Remote
) -> None:
    root = tmp_path / "pond"
    make_pond(root, writes=5)
    push(root, remote.store())
    for table in ("data", "control"):
        local = _count(str(root / table))
        assert local > 0
        assert _count(remote.table_uri(table), remote.storage_options or None) == local


# -- the object store ------------------------------------------------------------------


def test_progress_reports_every_byte_moved(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    calls: list[tuple[int, int]] = []
    report = push(root, remote.store(), progress=lambda d, t: calls.append((d, t)))
    assert calls and all(d <= t for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1][0] == report.bytes


def test_pull_from_a_remote_behind_this_pond_moves_nothing(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    make_pond(root, big=False)
    store = remote.store()
    push(root, store)
    write(root, "/newer", b"n")
    assert pull(root, store).up_to_date  # a backup only behind: nothing to pull
    assert Pond.open(root).read_bytes("/newer") == b"n"


def test_put_if_absent_is_atomic_and_keys_are_checked(remote: Remote) -> None:
    store = remote.store()
    assert store.put_if_absent("a/b.json", b"first")
    assert not store.put_if_absent("a/b.json", b"second")
    assert store.get("a/b.json") == b"first"
    assert store.head("a/b.json") == ObjectInfo("a/b.json", 5)
    assert store.head("a/none") is None
    assert [o.key for o in store.list("a")] == ["a/b.json"]
    for bad in ("../x", "/abs", "a//b", ""):
        with pytest.raises(RemoteError, match="invalid remote key"):
            store.get(bad)


def test_layout_names_match_storage() -> None:
    assert layout.ARCHIVE_DIR == tableread.ARCHIVE_DIR
    modules = "push, pull, restore, verify"
    code = f"import sys; from duckpond.remotes import {modules}; print('deltalake' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.strip() == b"False"  # the remote modules load lazily


def test_bad_urls_are_refused() -> None:
    from duckpond.storage.objstore import open_store

    for url in ("http://x/y", "file://relative/dir", "s3://", "ftp://h/p", "/plain/path"):
        with pytest.raises(RemoteError, match="remote URL|unsupported"):
            open_store(url)


def test_a_down_s3_remote_fails_fast_naming_the_url_not_the_secret(tmp_path: Path) -> None:
    from s3server import ACCESS_KEY, REGION, SECRET_KEY

    from duckpond.storage.objstore import StoreOptions, open_store

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    options = StoreOptions(f"http://127.0.0.1:{port}", REGION, ACCESS_KEY, SECRET_KEY, True)
    store = open_store("s3://down-bucket/pond", options)
    assert SECRET_KEY not in repr(options)
    root = tmp_path / "pond"
    make_pond(root, writes=1, big=False)
    with pytest.raises(RemoteError) as info:
        push(root, store)
    message = str(info.value)
    assert "connection refused" in message.lower()  # failed on connecting, not a timeout
    assert "s3://down-bucket/pond" in message and "\n" not in message
    assert SECRET_KEY not in message
