"""Storage invariants of SPEC §2 and §4 on real Delta tables: blobs, one Delta version per
write transaction, failed and no-op writes, maintenance, automatic upkeep, cache coherence."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import run_pond
from deltalake import DeltaTable

from duckpond import nodes
from duckpond.errors import PondError
from duckpond.pond import Pond

THRESHOLD = 64 * 1024


def delta_version(root: Path, table: str = "data") -> int:
    """The Delta version as a fresh reader sees it."""
    return DeltaTable(str(root / table)).version()


def blob_files(root: Path) -> set[Path]:
    return {p for p in (root / "blobs").rglob("*") if p.is_file()}


def parquet_files(table_dir: Path) -> set[Path]:
    return {p for p in table_dir.rglob("*.parquet") if "_delta_log" not in p.parts}


def data_bytes_on_disk(root: Path) -> int:
    return sum(p.stat().st_size for p in parquet_files(root / "data"))


def everything(pond: Pond) -> dict[str, list[bytes]]:
    """Every file's every version, as bytes."""
    out = {}
    for e in pond.list():
        if nodes.is_file(e.type):
            out[e.path] = [
                pond.read_bytes(e.path, version=v.version) for v in pond.versions(e.path)
            ]
    return out


# -- blobs -----------------------------------------------------------------------------------


def test_large_contents_live_in_blobs(pond_dir: Path, tmp_path: Path) -> None:
    pond = Pond.open(pond_dir)
    big = os.urandom(THRESHOLD)  # exactly the threshold: a blob
    small = os.urandom(THRESHOLD - 1)  # one byte less: inline
    host = tmp_path / "host.bin"
    host_data = os.urandom(300_000)
    host.write_bytes(host_data)
    with pond.transaction() as tx:
        tx.write_bytes("/big", big)
        tx.write_bytes("/small", small)
        tx.write_host_file("/host", host)
        tx.write_bytes("/same", big)  # same content: the same blob

    assert pond.read_bytes("/big") == big
    assert pond.read_bytes("/small") == small
    assert pond.read_bytes("/host") == host_data
    blobs = blob_files(pond_dir)
    for path, data in (("/big", big), ("/host", host_data)):
        digest = hashlib.sha256(data).hexdigest()
        blob = pond_dir / "blobs" / digest[:2] / digest
        assert blob in blobs and blob.read_bytes() == data
        row = pond.versions(path)[-1]
        assert row.content is None and row.content_hash == digest and row.size == len(data)
    assert len(blobs) == 2
    assert pond.versions("/small")[-1].content == small
    # the rows do not carry the big contents: the data table is much smaller than they are
    assert data_bytes_on_disk(pond_dir) < THRESHOLD + 60_000
    assert {e.path: e.size for e in pond.list()} == {
        "/big": THRESHOLD,
        "/small": THRESHOLD - 1,
        "/host": 300_000,
        "/same": THRESHOLD,
    }


def test_large_table_lives_in_a_blob_and_queries(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    n = 50_000
    table = pa.table({"i": pa.array(range(n), pa.int64()), "r": pa.array(os.urandom(n))})
    with pond.transaction() as tx:
        tx.write_table("/t", table)
    row = pond.versions("/t")[-1]
    assert row.content is None and row.size >= THRESHOLD
    assert (pond_dir / "blobs" / row.content_hash[:2] / row.content_hash).is_file()
    got = pond.sql("SELECT count(*) AS n, sum(i) AS s FROM source", path="/t")
    assert got.to_pylist() == [{"n": n, "s": n * (n - 1) // 2}]


# -- one Delta version per transaction; failed and no-op writes ------------------------------


def test_each_write_is_one_delta_commit_with_pond_txn(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    v0 = delta_version(pond_dir)
    with pond.transaction(args=["pond", "test"], vars={"k": "v"}) as tx:
        tx.mkdir("/a/b", parents=True)
        tx.write_bytes("/a/b/f", b"1")
        tx.write_table("/a/t", pa.table({"x": [1]}))
        seq = tx.txn_seq
    assert delta_version(pond_dir) == v0 + 1
    assert seq == 2  # init committed seq 1
    latest_version, meta = pond.data.pond_txns(limit=1)[0]
    assert latest_version == v0 + 1
    assert meta["txn_seq"] == seq and meta["args"] == ["pond", "test"]
    assert meta["vars"] == {"k": "v"} and meta["txn_id"]
    assert Pond.open(pond_dir).data.last_txn_seq() == seq


def test_failed_transaction_changes_nothing(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/keep", b"kept")
    before_version = delta_version(pond_dir)
    before_list = pond.list()

    with pytest.raises(RuntimeError, match="boom"):
        with pond.transaction() as tx:
            tx.mkdir("/new/dir", parents=True)
            tx.write_bytes("/keep", b"changed")
            tx.write_bytes("/new/big", os.urandom(THRESHOLD * 2))
            raise RuntimeError("boom")
    with pytest.raises(PondError):
        with pond.transaction() as tx:
            tx.write_bytes("/keep2", b"x")
            tx.mkdir("/keep")  # fails mid-way: a file exists there

    for p in (pond, Pond.open(pond_dir)):
        p.refresh()
        assert p.list() == before_list
        assert p.read_bytes("/keep") == b"kept"
        assert [v.version for v in p.versions("/keep")] == [1]
    assert delta_version(pond_dir) == before_version
    # the sequence continues after the failures
    with pond.transaction() as tx:
        tx.write_bytes("/after", b"ok")
    assert delta_version(pond_dir) == before_version + 1


def test_noop_write_commits_no_data_version(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.mkdir("/a/b", parents=True)
    before = delta_version(pond_dir)
    with pond.transaction() as tx:
        tx.mkdir("/a/b", parents=True)
        tx.mkdir("/a", parents=True)
        assert not tx.changed
    with pond.transaction():
        pass
    assert delta_version(pond_dir) == before
    run_pond("mkdir", "-p", "/a/b", pond=pond_dir)
    assert delta_version(pond_dir) == before


# -- maintenance -----------------------------------------------------------------------------


def test_maintain_keeps_every_version_blob_and_lock(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    for i in range(12):
        with pond.transaction() as tx:
            tx.write_bytes(f"/d{i % 2}/f", f"v{i}".encode(), parents=True)
            if i % 4 == 0:
                tx.write_bytes(f"/big{i}", os.urandom(THRESHOLD + i))
            tx.write_series(
                "/s",
                pa.table({"t": pa.array([i * 1_000_000], pa.timestamp("us", tz="UTC")), "v": [i]}),
            )
    before = everything(pond)
    blobs = {p: p.read_bytes() for p in blob_files(pond_dir)}
    live_before = pond.data.file_count()
    on_disk_before = len(parquet_files(pond_dir / "data"))
    assert (pond_dir / "write.lock").exists()

    report = pond.maintain(retention_hours=0)
    assert report.data["files_after"] < report.data["files_before"]

    fresh = Pond.open(pond_dir)
    assert everything(fresh) == before
    assert everything(pond) == before
    assert {p: p.read_bytes() for p in blob_files(pond_dir)} == blobs
    assert (pond_dir / "write.lock").exists()
    assert fresh.data.file_count() < live_before
    assert len(parquet_files(pond_dir / "data")) < on_disk_before  # vacuumed
    got = fresh.sql("SELECT count(*) AS n FROM source", path="/s")
    assert got.to_pylist() == [{"n": 12}]
    # the pond still takes writes, and the CLI can read it
    with fresh.transaction() as tx:
        tx.write_bytes("/d0/f", b"after")
    assert [v.version for v in Pond.open(pond_dir).versions("/d0/f")] == list(range(1, 8))
    out = run_pond("cat", "/d0/f", "--version", "1", pond=pond_dir)
    assert out.stdout == b"v0"


def test_automatic_upkeep_with_many_writes(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    n = 200
    for i in range(n):
        with pond.transaction() as tx:
            tx.write_bytes(f"/d{i % 2}/f", f"v{i}".encode(), parents=True)
    log = pond_dir / "data" / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet")), "no checkpoint after many writes"
    fresh = Pond.open(pond_dir)
    # compaction keeps partitions small without anyone running maintain
    assert fresh.data.file_count() < n // 2
    for d in (0, 1):
        versions = fresh.versions(f"/d{d}/f")
        assert [v.version for v in versions] == list(range(1, n // 2 + 1))
        for v in versions:
            assert (
                fresh.read_bytes(f"/d{d}/f", version=v.version)
                == f"v{2 * (v.version - 1) + d}".encode()
            )
    assert fresh.data.last_txn_seq() == n + 1


# -- cache coherence -------------------------------------------------------------------------


def test_a_reader_sees_other_writers_after_refresh(pond_dir: Path) -> None:
    reader = Pond.open(pond_dir)
    with reader.transaction() as tx:
        tx.write_bytes("/f", b"one")
    assert reader.read_bytes("/f") == b"one"
    reader.list()  # warm its caches

    writer = Pond.open(pond_dir)
    with writer.transaction() as tx:
        tx.write_bytes("/f", b"two")
        tx.write_bytes("/g", b"new")
    reader.refresh()
    assert reader.read_bytes("/f") == b"two"
    assert reader.read_bytes("/g") == b"new"
    assert [e.path for e in reader.list()] == ["/f", "/g"]

    # another process's write
    run_pond("mkdir", "/from-cli", pond=pond_dir)
    reader.refresh()
    assert "/from-cli" in [e.path for e in reader.list()]
    # and the reader can still write after the others (the sequence is read, not guessed)
    with reader.transaction() as tx:
        tx.write_bytes("/f", b"three")
        seq = tx.txn_seq
    assert seq == 5
    out = run_pond("list", "--format", "json", pond=pond_dir)
    listed = {e["path"]: e["version"] for e in json.loads(out.stdout)}
    assert listed == {"/f": 3, "/g": 1, "/from-cli": 1}


def test_a_reader_after_another_process_maintains(pond_dir: Path) -> None:
    reader = Pond.open(pond_dir)
    for i in range(6):
        with reader.transaction() as tx:
            tx.write_bytes("/f", f"v{i}".encode())
    before = everything(reader)
    files_before = reader.data.file_count()
    run_pond("maintain", "--retention-hours", "0", pond=pond_dir)
    reader.refresh()
    assert everything(reader) == before
    assert reader.data.file_count() < files_before
    with reader.transaction() as tx:
        tx.write_bytes("/f", b"v6")
    assert [v.version for v in Pond.open(pond_dir).versions("/f")] == list(range(1, 8))
