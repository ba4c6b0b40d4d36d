"""Directories stored as deltas with snapshots, the one path walk, and bounded read caches.

Sizes stay small here (a few hundred entries, enough to cross several snapshots);
the scaling figures are in bench/dirs.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import cli_env, run_pond

from duckpond import nodes
from duckpond.errors import InvalidPathError, NotFoundError
from duckpond.pond import Pond
from duckpond.storage import (
    datalayout,
    datatable,
    direntries,
    dirstate,
    parquetwrite,
    partindex,
    staging,
)
from duckpond.storage.direntries import DELTA_ATTRS
from duckpond.storage.fs import PondFS
from duckpond.storage.staging import StagedTxn


def listing(pond: Pond, pattern: str = "/**") -> dict[str, tuple[str, int]]:
    return {e.path: (e.type, e.version) for e in pond.list(pattern)}


def contents(pond: Pond, prefix: str) -> dict[str, bytes]:
    return {
        e.path: pond.read_bytes(e.path)
        for e in pond.list(prefix + "/*")
        if nodes.is_file(e.type) or e.type == nodes.SYMLINK
    }


def storage_txn(pond: Pond, change: Callable[[StagedTxn], None]) -> None:
    """A transaction through the storage layer alone (removal has no pond command yet)."""
    pond.refresh()
    staged = StagedTxn(PondFS(pond.data, pond.blobs), pond.data.last_txn_seq() + 1)
    change(staged)
    pond.data.commit(staged.rows(), {"txn_seq": staged.txn_seq, "txn_id": nodes.uuid7()})


def data_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "data").rglob("*.parquet"))


# -- one path walk -----------------------------------------------------------------------


def test_write_through_a_symlinked_directory(pond_dir: Path, tmp_path: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.mkdir("/real")
        tx.write_bytes("/real/x", b"x")
        tx.symlink("/link", "/real")
        tx.symlink("/rel", "real")  # relative to the link's directory
    assert pond.read_bytes("/link/x") == b"x"
    with pond.transaction() as tx:
        tx.write_bytes("/link/y", b"y")
        tx.write_bytes("/rel/z", b"z")
        assert tx.read_bytes("/link/y") == b"y"  # the transaction sees it the same way
        assert tx.exists("/rel/x")
    assert contents(pond, "/real") == {"/real/x": b"x", "/real/y": b"y", "/real/z": b"z"}
    host = tmp_path / "w"
    host.write_bytes(b"w")
    run_pond("copy", f"host://{host}", "/link/w", pond=pond_dir)
    assert Pond.open(pond_dir).read_bytes("/real/w") == b"w"
    # the link itself stays a link: writing over it as a file is refused
    with pytest.raises(InvalidPathError, match="symlink"):
        with pond.transaction() as tx:
            tx.write_bytes("/link", b"no")


def test_symlink_loops_and_files_as_directories(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.symlink("/a", "/b")
        tx.symlink("/b", "/a")
        tx.write_bytes("/f", b"f")
    for call in (lambda: pond.read_bytes("/a/x"), lambda: pond.lookup("/a/x")):
        with pytest.raises(InvalidPathError, match="too many levels"):
            call()
    with pytest.raises(InvalidPathError, match="too many levels"):
        with pond.transaction() as tx:
            tx.write_bytes("/a/x", b"x")
    with pytest.raises((InvalidPathError, NotFoundError), match="not a directory: /f"):
        with pond.transaction() as tx:
            tx.write_bytes("/f/x", b"x")


def test_lookup_returns_a_named_type(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/d/f", b"1", parents=True)
    loc = pond.lookup("/d/f")
    assert loc is not None and loc.path == "/d/f" and loc.file_type == nodes.FILE_DATA
    assert loc.row.version == 1 and loc.part_id == pond.lookup("/d").node_id


# -- directories as deltas ---------------------------------------------------------------


@pytest.mark.parametrize("scan", ["python", "arrow"])
def test_big_directory_add_overwrite_remove_symlink(
    pond_dir: Path, scan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several snapshots' worth of single-entry writes, with every kind of change; a
    fresh handle, the long-lived one, and the CLI agree with a model at every stage.
    Small directories and partitions are merged and searched in Python, big ones with
    pyarrow.compute: "arrow" sends these through the big ones' code."""
    if scan == "arrow":
        monkeypatch.setattr(direntries, "SMALL_DIR_ENTRIES", 0)
        monkeypatch.setattr(partindex, "SCAN_IN_PYTHON_ROWS", 0)
        monkeypatch.setattr(partindex, "PYTHON_UNTIL_LOADED_ROWS", 0)
    pond = Pond.open(pond_dir)
    model: dict[str, bytes] = {}
    dir_versions = 1
    with pond.transaction() as tx:
        tx.mkdir("/big")
    n = 3 * staging.SNAPSHOT_MIN_DELTAS + 10
    for i in range(n):
        with pond.transaction() as tx:
            tx.write_bytes(f"/big/f{i:04d}", f"v1 {i}".encode())
        model[f"/big/f{i:04d}"] = f"v1 {i}".encode()
        dir_versions += 1
        if i % 20 == 7:  # a new version of an existing file: no new directory version
            with pond.transaction() as tx:
                tx.write_bytes(f"/big/f{i // 2:04d}", f"v2 {i}".encode())
            model[f"/big/f{i // 2:04d}"] = f"v2 {i}".encode()
    with pond.transaction() as tx:  # several changes in one transaction: one version
        tx.symlink("/big/link", "f0001")
        tx.mknod("/big/f0004", "test-executor", nodes.FILE_DATA_DYNAMIC, b"message: hi\n", True)
    storage_txn(pond, lambda st: st.remove("/big/f0002"))
    dir_versions += 2
    model["/big/link"] = model["/big/f0001"]
    del model["/big/f0002"]
    del model["/big/f0004"]

    def check(p: Pond) -> None:
        got = listing(p, "/big/*")
        assert set(got) == set(model) | {"/big/f0004"}
        assert got["/big/link"][0] == nodes.SYMLINK
        assert got["/big/f0004"][0] == nodes.FILE_DATA_DYNAMIC
        assert contents(p, "/big") == model | {"/big/f0004": b"message: hi\n"}
        versions = p.versions("/big")
        assert [v.version for v in versions] == list(range(1, dir_versions + 1))
        # an earlier version of a file is still readable
        assert p.read_bytes("/big/f0003", version=1) == b"v1 3"

    check(pond)
    check(Pond.open(pond_dir))
    out = json.loads(run_pond("list", "/big/*", "--format", "json", pond=pond_dir).stdout)
    assert {e["path"] for e in out} == set(model) | {"/big/f0004"}
    # most directory versions record only their change; some are snapshots
    rows = Pond.open(pond_dir).versions("/big")
    deltas = [r for r in rows if r.extended_attributes == DELTA_ATTRS]
    assert len(rows) - 1 > len(deltas) >= len(rows) - 6
    assert max(r.size for r in deltas) < 200
    # maintenance (compaction + checkpoint) changes nothing anyone sees
    before = listing(Pond.open(pond_dir))
    pond.maintain(retention_hours=0)
    for p in (pond, Pond.open(pond_dir)):
        p.refresh()
        assert listing(p) == before
        check(p)


def test_stored_deltas_answer_lookups_without_decoding_new_names() -> None:
    """A stored delta is decoded only when a looked-up name may be in it; every answer is
    the decoded delta's, for names JSON spells with escapes too."""
    tricky = ['a"b', "back\\slash", "ünï", "changes", "x],[y", "tab\tname", "file:data"]
    node = nodes.uuid7()
    changes: dict[str, direntries.Entry | None] = {
        n: direntries.Entry(n, nodes.uuid7(), nodes.FILE_DATA) for n in tricky
    }
    changes["plain"] = direntries.Entry("plain", node, nodes.FILE_DATA)
    changes["gone"] = None
    raw = direntries.encode_delta(changes)
    probes = [*changes, "pla", "lain", node, "absent", "gon", "a", "b"]
    for name in probes:
        lazy = direntries.DeltaChanges(raw)
        assert (name in lazy) == (name in changes), name
        if name in changes:
            assert lazy[name] == changes[name]
    assert direntries.DeltaChanges(raw).bound() >= len(changes) == len(direntries.DeltaChanges(raw))
    # a delta without escapes answers a new plain name from its bytes alone
    f1 = direntries.Entry("f1", node, nodes.FILE_DATA)
    plain = direntries.DeltaChanges(direntries.encode_delta({"f1": f1}))
    assert "f2" not in plain and plain.bound() == 1
    assert plain._changes is None
    assert "f1" in plain and dict(plain) == {"f1": f1}
    # the directory's merged view agrees with the decoded layers
    layers = ({"plain": None}, direntries.DeltaChanges(raw))  # newest first
    entries = direntries.DirEntries(None, layers)
    assert entries.get("plain") is None and entries.get(tricky[0]) == changes[tricky[0]]
    assert entries.changed_count == len(changes) + 1 <= entries.changed_bound


@pytest.mark.parametrize("stats", ["log", "footer", "none"])
def test_a_fresh_handle_reads_only_the_files_since_the_directory_snapshot(
    pond_dir: Path, stats: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh process writing into a big directory reads the key columns only of the
    files that can hold the directory's rows since its snapshot (by their txn_seq
    statistics, from the log or the footers); without statistics it reads them all.
    Either way it sees exactly what a long-lived handle sees."""
    if stats != "log":  # statistics from the footers, or none at all
        monkeypatch.setattr(datatable, "_spans", lambda actions, paths: {})
    if stats == "none":
        real = datatable.DataTable.span
        monkeypatch.setattr(
            datatable.DataTable, "span", lambda self, rel: (real(self, rel)[0], None, None)
        )
    pond = Pond.open(pond_dir)
    model: set[str] = set()
    # batches big enough to take a snapshot every other transaction (blobs and inline)
    for t in range(10):
        with pond.transaction() as tx:
            for i in range(600):
                tx.write_bytes(f"/big/b{t}-{i:03d}", b"x", parents=True)
                model.add(f"/big/b{t}-{i:03d}")
    for i in range(5):  # single-entry deltas on top of the last snapshot
        with pond.transaction() as tx:
            tx.write_bytes(f"/big/s{i}", b"s")
        model.add(f"/big/s{i}")
    fresh = Pond.open(pond_dir)
    with fresh.transaction() as tx:
        assert not tx.exists("/big/new")
        tx.write_bytes("/big/new", b"new")
    model.add("/big/new")
    big = fresh.lookup("/big").node_id
    files = fresh.data.partition_files(big)
    read = [f for f in files if f in fresh.data._metas]
    if stats == "none":
        assert len(read) == len(files)
    else:
        # the last snapshot is 6 transactions back (the single writes are compacted into
        # one file with older batches): 4 files of 9, each holding a later row
        assert len(files) >= 8 and len(read) <= len(files) // 2, (len(read), len(files))
    for p in (fresh, pond, Pond.open(pond_dir)):
        p.refresh()
        assert set(listing(p, "/big/*")) == model
        assert p.read_bytes("/big/new") == b"new" and p.read_bytes("/big/b0-001") == b"x"
        assert [v.version for v in p.versions("/big")] == list(range(1, 17))


def test_a_big_directorys_own_rows_have_a_row_group_of_their_own(pond_dir: Path) -> None:
    """A file of more than OWN_GROUP_MIN_ROWS rows of a directory's partition keeps the
    directory's own rows first, in a row group of their own (commits and compactions):
    a fresh handle folding the directory's versions reads those groups only, and sees
    what a handle that read every row sees."""
    import pyarrow.parquet as pq

    pond = Pond.open(pond_dir)
    n = datalayout.OWN_GROUP_MIN_ROWS + 100
    for t in range(3):
        with pond.transaction() as tx:
            for i in range(n):
                tx.write_bytes(f"/big/b{t}-{i:04d}", b"%d" % i, parents=True)
    with pond.transaction() as tx:  # a small commit: one row group
        tx.write_bytes("/big/small", b"s")
    big = pond.lookup("/big").node_id

    def layout(p: Pond) -> list[list[tuple[int, bool]]]:
        """Per file: (rows, holds only the directory's rows) per row group."""
        out = []
        for f in p.data.partition_files(big):
            md = pq.ParquetFile(pond_dir / "data" / f).metadata
            col = md.schema.names.index("node_id")
            groups = []
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                groups.append((md.row_group(g).num_rows, st.min == st.max == big))
            out.append(groups)
        return out

    assert sorted(layout(pond)) == [[(1, True), (n, False)]] * 3 + [[(2, False)]]
    fresh = Pond.open(pond_dir)
    assert fresh.lookup("/big/missing") is None
    assert not any(f in fresh.data._metas for f in fresh.data.partition_files(big)[:3])
    assert [v.version for v in fresh.versions("/big")] == [1, 2, 3, 4]
    pond.maintain()  # one compacted file, the directory's rows still first
    assert layout(pond) == [[(4, True), (3 * n + 1, False)]]
    for p in (Pond.open(pond_dir), pond):
        p.refresh()
        assert len(listing(p, "/big/*")) == 3 * n + 1
        assert p.read_bytes("/big/b2-0007") == b"7" and p.read_bytes("/big/small") == b"s"
        assert [v.version for v in p.versions("/big")] == [1, 2, 3, 4]


def test_row_groups_hold_a_bounded_amount_of_contents(
    pond_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data file of many inline bodies splits them into row groups of at most
    ROW_GROUP_CONTENT_BYTES of contents (here 128 KiB), in commits and in compactions:
    reading one body decodes one such group, not the whole file's (a long-lived pond
    keeps what it read, bench 12)."""
    import pyarrow.parquet as pq

    bound = 128 * 1024
    monkeypatch.setattr(parquetwrite, "ROW_GROUP_CONTENT_BYTES", bound)
    bodies = {f"/many/f{i:03d}": bytes([i % 251]) * 4096 + b"%d" % i for i in range(150)}
    pond = Pond.open(pond_dir)
    for half in (list(bodies)[:75], list(bodies)[75:]):
        with pond.transaction() as tx:
            for path in half:
                tx.write_bytes(path, bodies[path], parents=True)
    part = pond.lookup("/many").node_id

    def groups() -> list[list[int]]:
        """Per file: the bytes of contents in each row group."""
        out = []
        for f in pond.data.partition_files(part):
            pf = pq.ParquetFile(pond_dir / "data" / f)
            out.append(
                [
                    sum(len(v or b"") for v in pf.read_row_group(g, ["content"])[0].to_pylist())
                    for g in range(pf.num_row_groups)
                ]
            )
        return out

    def check() -> None:
        for p in (pond, Pond.open(pond_dir)):
            assert all(p.read_bytes(path) == body for path, body in bodies.items())

    per_file = groups()
    assert len(per_file) == 2 and all(len(g) >= 2 for g in per_file)
    assert all(0 < size <= bound for g in per_file for size in g)
    check()
    pond.maintain()  # one compacted file, still in bounded groups
    (compacted,) = groups()
    assert len(compacted) >= 3 and all(size <= bound for size in compacted)
    assert sum(compacted) == sum(sum(g) for g in per_file)
    check()


def test_removed_entries_and_new_directories_in_one_transaction(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/d/a", b"a", parents=True)
        tx.write_bytes("/d/b", b"b")

    def change(st: StagedTxn) -> None:
        st.remove("/d/a")
        assert not st.exists("/d/a")
        st.write("/d/a", nodes.FILE_DATA, b"new a")  # a new node under the old name
        st.mkdir("/d/sub/deeper", parents=True)
        st.write("/d/sub/deeper/x", nodes.FILE_DATA, b"x")

    storage_txn(pond, change)
    fresh = Pond.open(pond_dir)
    assert listing(fresh, "/d/**/*") == {
        "/d/a": (nodes.FILE_DATA, 1),
        "/d/b": (nodes.FILE_DATA, 1),
        "/d/sub": (nodes.DIR_PHYSICAL, 1),
        "/d/sub/deeper": (nodes.DIR_PHYSICAL, 1),
        "/d/sub/deeper/x": (nodes.FILE_DATA, 1),
    }
    assert fresh.read_bytes("/d/a") == b"new a"
    with pytest.raises(NotFoundError):
        storage_txn(pond, lambda st: st.remove("/d/nope"))


def test_a_write_into_a_big_directory_stores_only_its_change(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        for i in range(3000):
            tx.write_bytes(f"/big/f{i:05d}", b"x", parents=True)
    small = _added_bytes(pond, pond_dir, "/small")
    big = _added_bytes(pond, pond_dir, "/big")
    # a snapshot of 3,000 entries is ~200 KB; a delta is a few hundred bytes
    assert big < small + 2_000, (big, small)


def _added_bytes(pond: Pond, root: Path, d: str) -> int:
    with pond.transaction() as tx:
        tx.mkdir(d, parents=True)
        tx.write_bytes(f"{d}/first", b"x")
    before = data_bytes(root) + sum(p.stat().st_size for p in (root / "blobs").rglob("*"))
    with pond.transaction() as tx:
        tx.write_bytes(f"{d}/one-more", os.urandom(1024))
    after = data_bytes(root) + sum(p.stat().st_size for p in (root / "blobs").rglob("*"))
    return after - before


def test_crash_mid_write_leaves_the_old_listing(pond_dir: Path, tmp_path: Path) -> None:
    pond = Pond.open(pond_dir)
    for i in range(staging.SNAPSHOT_MIN_DELTAS - 1):  # the next write into /d is a snapshot
        with pond.transaction() as tx:
            tx.write_bytes(f"/d/f{i}", b"x", parents=True)
    before = listing(Pond.open(pond_dir))
    host = tmp_path / "h"
    host.write_bytes(b"h")
    for point in ("before_data_commit", "after_data_commit"):
        proc = run_pond(
            "copy",
            f"host://{host}",
            f"/d/crash-{point}",
            pond=pond_dir,
            env={"POND_CRASH_AT": point},
            check=None,
        )
        assert proc.returncode != 0
        run_pond("recover", pond=pond_dir)
        got = listing(Pond.open(pond_dir))
        if point == "before_data_commit":
            assert got == before
        else:  # the commit landed: the whole change is there
            assert got["/d/crash-after_data_commit"] == (nodes.FILE_DATA, 1)
            assert {k: v for k, v in got.items() if "crash" not in k and k != "/d"} == {
                k: v for k, v in before.items() if k != "/d"
            }
    with pond.transaction() as tx:
        tx.write_bytes("/d/after", b"a")
    assert Pond.open(pond_dir).read_bytes("/d/after") == b"a"


def test_ponds_with_json_snapshots_still_read_and_write(pond_dir: Path) -> None:
    """Directory versions written before deltas hold a JSON snapshot of all entries."""
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/old/a", b"a", parents=True)
        tx.write_bytes("/old/b", b"b")
    loc = pond.lookup("/old")
    entries = PondFS(pond.data, pond.blobs).dir_entries(loc.node_id).entries()
    legacy = json.dumps(
        {"entries": [[e.name, e.node_id, e.file_type] for e in entries]}, separators=(",", ":")
    ).encode()
    # a directory version as the previous format wrote it: the full JSON snapshot
    prev = pond.versions("/old")[-1]
    row = prev.with_changes(
        version=prev.version + 1, content=legacy, size=len(legacy), extended_attributes={}
    )
    seq = pond.data.last_txn_seq() + 1
    pond.data.commit([row.with_changes(txn_seq=seq)], {"txn_seq": seq, "txn_id": nodes.uuid7()})
    direntries.decode_dir(legacy)  # both forms decode
    for p in (pond, Pond.open(pond_dir)):
        p.refresh()
        assert contents(p, "/old") == {"/old/a": b"a", "/old/b": b"b"}
    with pond.transaction() as tx:
        tx.write_bytes("/old/c", b"c")
    assert contents(Pond.open(pond_dir), "/old") == {
        "/old/a": b"a",
        "/old/b": b"b",
        "/old/c": b"c",
    }


# -- bounded caches ----------------------------------------------------------------------


def test_read_caches_stay_bounded(pond_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datatable, "CONTENT_CACHE_BYTES", 64 * 1024)
    pond = Pond.open(pond_dir)
    payload = {i: os.urandom(8 * 1024) for i in range(60)}
    for i, data in payload.items():
        with pond.transaction() as tx:
            tx.write_bytes(f"/d{i % 3}/f{i}", data, parents=True)
        assert pond.read_bytes(f"/d{i % 3}/f{i}") == data
        sizes = pond.data.cache_size()
        assert sizes["content_bytes"] <= 64 * 1024
        # only live files are indexed: compacted-away files leave the cache
        assert sizes["indexed_files"] <= pond.data.file_count()
    for i, data in payload.items():  # everything still reads back, in any order
        assert pond.read_bytes(f"/d{i % 3}/f{i}") == data
    assert pond.data.cache_size()["content_bytes"] <= 64 * 1024


def test_directory_entry_sets_stay_bounded_by_size(
    pond_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cached entry sets are bounded by their entries in all, not only by their number:
    the least recently used go first, the one in use always stays."""
    monkeypatch.setattr(dirstate, "DIR_CACHE_ENTRIES", 250)
    pond = Pond.open(pond_dir)
    for d in range(4):
        with pond.transaction() as tx:
            for i in range(100):
                tx.write_bytes(f"/d{d}/f{i}", b"%d/%d" % (d, i), parents=True)

    def cached() -> dict[str, int]:
        states = pond.data.derived.items()
        return {k: dirstate._entry_count(s) for k, s in states if isinstance(s, dirstate.DirState)}

    for rep in range(2):
        for d in range(4):
            assert pond.read_bytes(f"/d{d}/f{rep + d}") == b"%d/%d" % (d, rep + d)
            held = cached()
            assert sum(held.values()) <= 250, held
            assert 100 in held.values()  # the directory just read is kept
    monkeypatch.setattr(dirstate, "DIR_CACHE_ENTRIES", 50)  # smaller than one directory: kept
    assert pond.read_bytes("/d0/f7") == b"0/7"
    assert list(cached().values()) == [100]


def test_a_process_reading_a_big_directory_does_not_import_pyarrow_compute(
    pond_dir: Path,
) -> None:
    """Start-up: a fresh `pond` process looks up and lists a directory beyond the small
    partition size in Python (importing pyarrow.compute costs ~50 ms of every process)."""
    pond = Pond.open(pond_dir)
    n = partindex.SCAN_IN_PYTHON_ROWS + 100
    with pond.transaction() as tx:
        for i in range(n):
            tx.write_bytes(f"/big/f{i:05d}", b"%d" % i, parents=True)
    with pond.transaction() as tx:  # a change on top of the directory's snapshot
        tx.write_bytes("/big/late", b"late")
    timed = [sys.executable, "-X", "importtime", "-m", "duckpond.cli", "--pond", str(pond_dir)]
    cat = subprocess.run([*timed, "cat", "/big/f00007"], capture_output=True, env=cli_env())
    assert cat.returncode == 0 and cat.stdout == b"7"
    assert b"pyarrow.compute" not in cat.stderr
    ls = subprocess.run([*timed, "list", "/big/*"], capture_output=True, env=cli_env())
    assert ls.returncode == 0
    assert ls.stdout.split() == sorted(
        [f"/big/f{i:05d}".encode() for i in range(n)] + [b"/big/late"]
    )
    assert b"pyarrow.compute" not in ls.stderr
