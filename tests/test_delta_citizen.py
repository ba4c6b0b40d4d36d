"""The pond's tables are good Delta citizens: statistics other engines skip files by,
compaction marked as no data change, honest file names, log entries kept for time travel,
a protocol check before every commit, and a lost put-if-absent race handled. Other
readers (deltalake, DuckDB's delta_scan, Polars) see what the pond sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import run_pond
from deltalake import DeltaTable, QueryBuilder

from duckpond import Pond
from duckpond.errors import PondError
from duckpond.storage import deltacommit, deltalog, parquetwrite, tableread, upkeep


def log_actions(table: Path, kind: str) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(version, commitInfo, action) of every `kind` action in the table's log entries."""
    out = []
    for path in sorted((table / "_delta_log").glob("*.json")):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        info = next((a["commitInfo"] for a in lines if "commitInfo" in a), {})
        out += [(int(path.name[:20]), info, a[kind]) for a in lines if kind in a]
    return out


def live_rows(table: Path) -> int:
    """Rows in the table's latest snapshot, read as the pond reads them (its files)."""
    dt = DeltaTable(str(table))
    paths = tableread.add_actions(dt).column("path").to_pylist()
    return sum(pq.ParquetFile(table / p).metadata.num_rows for p in paths)


# -- statistics, compaction, names ---------------------------------------------------------------
def test_add_actions_carry_the_files_statistics(tmp_path: Path) -> None:
    pond = Pond.create(tmp_path / "p")
    with pond.transaction(["t"]) as tx:
        tx.write_bytes("/a", b"x" * 100, parents=True)
        tx.write_bytes("/b/c", b"y" * 10, parents=True)
    for table in ("data", "control"):
        tdir = tmp_path / "p" / table
        version, _, add = log_actions(tdir, "add")[-1]
        stats = json.loads(add["stats"])
        t = pq.read_table(tdir / add["path"])
        assert stats["numRecords"] == t.num_rows
        assert "content" not in stats["minValues"] and "content" not in stats["nullCount"]
        assert "part_id" not in stats["minValues"]  # a partition column: its value is the path
        for col in ("txn_seq", "timestamp"):
            assert stats["minValues"][col] is not None
        assert stats["minValues"]["txn_seq"] == pc.min(t["txn_seq"]).as_py()
        assert stats["maxValues"]["txn_seq"] == pc.max(t["txn_seq"]).as_py()
        ts_max = pc.max(t["timestamp"]).as_py()
        assert stats["maxValues"]["timestamp"] == ts_max.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for col, nulls in stats["nullCount"].items():
            assert nulls == t[col].null_count, (table, col)


def test_free_text_and_hashes_get_null_counts_but_no_bounds(tmp_path: Path) -> None:
    """Bounds (add action and Parquet footer) on the columns readers filter by; none on free
    text and hashes, whose bounds prune nothing; null counts on all of them."""
    pond = Pond.create(tmp_path / "p")
    with pond.transaction(["w", "one"], {"x": "v" * 40}) as tx:
        tx.write_bytes("/d/a", b"a" * 100, parents=True)
    with pond.transaction(["w", "two"]) as tx:  # a directory delta: extended_attributes
        tx.write_bytes("/d/b", b"b")
    with pytest.raises(RuntimeError), pond.transaction(["w", "three"]) as tx:
        raise RuntimeError("a failed write: an error_message")
    text = {
        "data": ("content_hash", "extended_attributes"),
        "control": ("cli_args", "vars", "error_message"),
    }
    bounded = {
        "data": ("node_id", "file_type", "version", "timestamp", "size", "txn_seq"),
        "control": ("txn_seq", "txn_id", "record_type", "transaction_type", "timestamp"),
    }
    for table, cols in text.items():
        tdir = tmp_path / "p" / table
        seen = dict.fromkeys(cols, False)
        for _, _, add in log_actions(tdir, "add"):
            stats = json.loads(add["stats"])
            pf = pq.ParquetFile(tdir / add["path"])
            t = pf.read()
            for col in cols:
                seen[col] |= t[col].null_count < t.num_rows
                assert col not in stats.get("minValues", {}), (table, col)
                assert col not in stats.get("maxValues", {}), (table, col)
                assert stats["nullCount"][col] == t[col].null_count, (table, col)
                footer = pf.metadata.row_group(0).column(t.schema.get_field_index(col))
                assert footer.statistics is None or not footer.statistics.has_min_max
            for col in bounded[table]:
                values = [v for v in t[col].to_pylist() if v is not None]
                lo, hi = stats["minValues"][col], stats["maxValues"][col]
                if col == "timestamp":
                    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
                    assert (lo, hi) == (min(values).strftime(fmt), max(values).strftime(fmt))
                elif isinstance(values[0], str):
                    assert lo == min(values)[:32] and hi >= max(values), (table, col)
                else:
                    assert (lo, hi) == (min(values), max(values)), (table, col)
        assert all(seen.values()), seen  # each column held a value somewhere: a real absence
        # an add rebuilt from the file alone (fsck's repair) carries the same statistics
        _, _, add = log_actions(tdir, "add")[-1]
        rebuilt = parquetwrite.action_for_file(tdir, add["path"], add["partitionValues"])
        assert rebuilt.stats == json.loads(add["stats"])


def test_compaction_is_no_data_change_and_removes_carry_sizes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    pond = Pond.create(root)
    for i in range(4):
        with pond.transaction(["w", str(i)]) as tx:
            tx.write_bytes(f"/f{i}", b"v%d" % i)
    data = root / "data"
    adds = {a["path"]: a for _, _, a in log_actions(data, "add")}
    assert all(p.endswith(".uncompressed.parquet") for p in adds)  # small appends
    pond.maintain()
    compactions = [
        (v, a) for v, info, a in log_actions(data, "add") if info["operation"] == "OPTIMIZE"
    ]
    assert compactions
    for _, add in compactions:
        assert add["dataChange"] is False
    removes = [r for _, info, r in log_actions(data, "remove") if info["operation"] == "OPTIMIZE"]
    assert removes
    for r in removes:
        assert r["dataChange"] is False
        assert r["size"] == adds[r["path"]]["size"] > 0
        assert r["partitionValues"] == adds[r["path"]]["partitionValues"]


def test_file_names_say_the_data_columns_codec(tmp_path: Path) -> None:
    root = tmp_path / "p"
    pond = Pond.create(root)
    with pond.transaction(["w"]) as tx:
        tx.write_bytes("/small", b"s")
    with pond.transaction(["w"]) as tx:  # > 64 rows: the compressed layout
        for i in range(70):
            tx.write_bytes(f"/many/f{i}", b"m", parents=True)
    names = set()
    for table in ("data", "control"):
        for _, _, add in log_actions(root / table, "add"):
            md = pq.ParquetFile(root / table / add["path"]).metadata
            codecs = {
                md.row_group(0).column(i).compression
                for i in range(md.num_columns)
                if md.row_group(0).column(i).path_in_schema != "content"
            }
            name = add["path"].rsplit(".", 2)[1]
            assert codecs == {name.upper()}, add["path"]
            names.add(name)
    assert names == {"uncompressed", "zstd"}


def test_log_entries_are_kept_for_the_log_retention(tmp_path: Path, monkeypatch: Any) -> None:
    root = tmp_path / "p"
    pond = Pond.create(root)
    assert (
        DeltaTable(str(root / "data")).metadata().configuration["delta.logRetentionDuration"]
        == "interval 3600 seconds"  # the retention window
    )
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY", 20)  # upkeep sooner: a fast test
    monkeypatch.setattr(upkeep, "LOG_KEEP_MAX_VERSIONS", 30)  # (legacy tables only)
    for i in range(90):  # four automatic checkpoints of the data table
        with pond.transaction(["w", str(i)]) as tx:
            tx.write_bytes(f"/f{i % 5}", b"v%d" % i)
    log = root / "data" / "_delta_log"
    assert tableread.last_checkpoint_version(root / "data") >= 80
    assert (log / f"{1:020d}.json").exists()  # nothing pruned within the hour
    old = DeltaTable(str(root / "data"), version=5)
    n = QueryBuilder().register("t", old).execute("select count(*) as n from t").read_all()
    # version 5 = init (the root) + 4 writes (a file and the root each): still readable
    assert n.column("n")[0].as_py() == 1 + 2 * 4
    # a table with the property older ponds wrote keeps at most ~LOG_KEEP_MAX_VERSIONS
    DeltaTable(str(root / "data")).alter.set_table_properties(
        {"delta.logRetentionDuration": upkeep.LEGACY_LOG_RETENTION}
    )
    pond.refresh()
    for i in range(40):
        with pond.transaction(["w", str(i)]) as tx:
            tx.write_bytes(f"/f{i % 5}", b"w%d" % i)
    tip = DeltaTable(str(root / "data")).version()
    kept = sorted(int(p.name[:20]) for p in log.glob("*.json"))
    # checkpoints every CHECKPOINT_EVERY versions: the bound holds to that granularity
    assert kept[0] > 1 and tip - kept[0] < 30 + 2 * 20
    assert (log / f"{kept[0]:020d}.checkpoint.parquet").exists()  # the oldest is rebuildable


# -- protocol check ----------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["data", "control"])
def test_a_table_with_a_constraint_is_refused_and_left_unchanged(
    tmp_path: Path, table: str
) -> None:
    root = tmp_path / "p"
    run_pond("init", pond=root)
    src = tmp_path / "ten.bin"
    src.write_bytes(b"0123456789")
    run_pond("copy", f"host://{src}", "/first", pond=root)
    # holds for txns 1 (init) and 2; the next write (txn 3) would violate it
    DeltaTable(str(root / table)).alter.add_constraint({"early": "txn_seq < 3"})
    assert DeltaTable(str(root / table)).protocol().min_writer_version >= 3
    before = {t: DeltaTable(str(root / t)).version() for t in ("data", "control")}
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    proc = run_pond("copy", f"host://{src}", "/second", pond=root, check=1)
    err = proc.stderr.decode().strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    assert f"the {table} table has CHECK constraint early (txn_seq < 3)" in err
    assert "does not write" in err
    assert {t: DeltaTable(str(root / t)).version() for t in ("data", "control")} == before
    assert sorted(str(p) for p in root.rglob("*") if p.is_file()) == files
    # once the constraint is dropped, the pond writes again
    DeltaTable(str(root / table)).alter.drop_constraint("early")
    run_pond("copy", f"host://{src}", "/second", pond=root)
    assert run_pond("cat", "/second", pond=root).stdout == b"0123456789"


def test_protocol_problems_are_named(tmp_path: Path) -> None:
    table = tmp_path / "t"
    DeltaTable.create(str(table), pa.schema([("x", pa.int64())]))
    dt = DeltaTable(str(table))
    assert deltacommit.protocol_problem(dt) is None
    dt.alter.set_table_properties({"delta.appendOnly": "true"})
    assert deltacommit.protocol_problem(dt) == "is append-only (delta.appendOnly)"
    cdf = tmp_path / "cdf"
    DeltaTable.create(
        str(cdf),
        pa.schema([("x", pa.int64())]),
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    problem = deltacommit.protocol_problem(DeltaTable(str(cdf)))
    assert problem is not None and "writer" in problem or "change data feed" in str(problem)
    constrained = tmp_path / "constrained"
    DeltaTable.create(str(constrained), pa.schema([("x", pa.int64())]))
    DeltaTable(str(constrained)).alter.add_constraint({"pos": "x > 0"})
    # The pond's own log reader, which its tables commit through, finds the same problems.
    for path in (table, cdf, constrained):
        own = _view(path, "snapshot").write_problem()
        assert own == deltacommit.protocol_problem(DeltaTable(str(path)))
    assert _view(constrained, "snapshot").write_problem() == "has CHECK constraint pos (x > 0)"


# -- losing the put-if-absent race -------------------------------------------------------------
def _table(tmp_path: Path) -> Path:
    path = tmp_path / "t"
    DeltaTable.create(str(path), pa.schema([("x", pa.int64())]))
    return path


def _append(view: deltacommit.LogView, path: Path, xs: list[int], **kw: Any) -> int:
    action = parquetwrite.write_file(path, pa.table({"x": pa.array(xs, pa.int64())}))
    return deltacommit.commit(view, path, [action], log=deltacommit.TableLog(path), **kw)


# A commit checks against either reader's view of the log: a bare delta-rs handle, or the
# pond's own snapshot reader, which the pond's tables write through.
VIEWS = ["delta-rs", "snapshot"]


def _view(path: Path, kind: str) -> deltacommit.LogView:
    if kind == "delta-rs":
        return deltacommit.DeltaView(DeltaTable(str(path)))
    return deltalog.SnapshotThenDelta(path, None, deltalog.Snapshot.load(path))


def _count(path: Path) -> int:
    q = QueryBuilder().register("t", DeltaTable(str(path)))
    return q.execute("select count(*) as n from t").read_all().column("n")[0].as_py()


@pytest.mark.parametrize("kind", VIEWS)
def test_an_append_that_loses_the_race_lands_after_the_winner(tmp_path: Path, kind: str) -> None:
    path = _table(tmp_path)
    stale = _view(path, kind)
    assert _append(_view(path, kind), path, [1]) == 1
    assert _append(stale, path, [2, 3]) == 2  # version 1 taken: the winner only added
    assert _count(path) == 3


@pytest.mark.parametrize("kind", VIEWS)
def test_a_compaction_never_re_adds_files_another_writer_removed(tmp_path: Path, kind: str) -> None:
    path = _table(tmp_path)
    _append(_view(path, kind), path, [1])
    _append(_view(path, kind), path, [2])
    stale = _view(path, kind)
    files = tableread.add_actions(DeltaTable(str(path))).column("path").to_pylist()
    merged = pa.table({"x": pa.array([1, 2], pa.int64())})
    v, _ = upkeep.compact(_view(path, kind), path, files, merged)
    with pytest.raises(deltacommit.CommitConflict, match="another writer removed"):
        upkeep.compact(stale, path, files, merged, log=deltacommit.TableLog(path))
    assert DeltaTable(str(path)).version() == v
    assert _count(path) == 2  # no row twice


@pytest.mark.parametrize("kind", VIEWS)
def test_a_transaction_number_taken_by_the_winner_is_a_conflict(tmp_path: Path, kind: str) -> None:
    path = _table(tmp_path)
    stale = _view(path, kind)
    _append(_view(path, kind), path, [1], app_txn=("pond", 7))
    with pytest.raises(deltacommit.CommitConflict, match="transaction 7"):
        _append(stale, path, [2], app_txn=("pond", 7))
    assert _count(path) == 1


@pytest.mark.parametrize("kind", VIEWS)
def test_a_winner_that_adds_a_constraint_makes_the_commit_refuse(tmp_path: Path, kind: str) -> None:
    path = _table(tmp_path)
    stale = _view(path, kind)
    log = deltacommit.TableLog(path)
    log.check_writable(stale)  # checked before the other writer moved
    DeltaTable(str(path)).alter.add_constraint({"pos": "x > 0"})
    action = parquetwrite.write_file(path, pa.table({"x": pa.array([-1], pa.int64())}))
    with pytest.raises(PondError, match="CHECK constraint pos"):
        deltacommit.commit(stale, path, [action], log=log)
    assert _count(path) == 0


# -- other readers on a pond made by the real CLI --------------------------------------------
READERS = r"""
import datetime, glob, json, os, sys
from pathlib import Path
root, plan = Path(sys.argv[1]), json.loads(sys.argv[2])
out = {}
try:
    from deltalake import DeltaTable, QueryBuilder
except ImportError as e:
    out["deltalake"] = f"skip: {e}"
else:
    def dl(table, at=None):
        dt = DeltaTable(str(root / table))
        if at is not None:
            dt.load_as_version(at)
        q = QueryBuilder().register("t", dt).execute("select count(*) as n from t")
        return q.read_all().column("n")[0].as_py()
    out["deltalake"] = {t: dl(t) for t in ("data", "control")}
    out["deltalake"]["version"] = dl("data", plan["version"])
    out["deltalake"]["timestamp"] = dl("data", datetime.datetime.fromisoformat(plan["ts"]))
    out["deltalake"]["seq_filter"] = QueryBuilder().register(
        "t", DeltaTable(str(root / "control"))
    ).execute("select count(*) as n from t where txn_seq >= 3").read_all().column("n")[0].as_py()
try:
    import duckdb, duckdb_extension_delta
except ImportError as e:
    out["duckdb"] = f"skip: {e}"
else:
    base = os.path.dirname(duckdb_extension_delta.__file__)
    ext = glob.glob(f"{base}/extensions/v{duckdb.__version__}/delta.duckdb_extension")
    if not ext:
        out["duckdb"] = f"skip: no delta extension for duckdb {duckdb.__version__} in {base}"
    else:
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{ext[0]}'")
        def dd(table, extra="", where=""):
            sql = f"select count(*) from delta_scan('{root / table}'{extra}) {where}"
            return con.execute(sql).fetchone()[0]
        out["duckdb"] = {t: dd(t) for t in ("data", "control")}
        out["duckdb"]["version"] = dd("data", f", version => {plan['version']}")
        out["duckdb"]["seq_filter"] = dd("control", where="where txn_seq >= 3")
try:
    import polars as pl
except ImportError as e:
    out["polars"] = f"skip: {e}"
else:
    def po(table, version=None):
        return pl.scan_delta(str(root / table), version=version).select(pl.len()).collect().item()
    out["polars"] = {t: po(t) for t in ("data", "control")}
    out["polars"]["version"] = po("data", plan["version"])
    out["polars"]["timestamp"] = po("data", datetime.datetime.fromisoformat(plan["ts"]))
    out["polars"]["seq_filter"] = (
        pl.scan_delta(str(root / "control")).filter(pl.col("txn_seq") >= 3)
        .select(pl.len()).collect().item()
    )
# the engines' Rust runtimes (deltalake 1.6.6, Daft, Polars) can crash while the
# interpreter tears down (SIGSEGV after this line, CI stop 26): the reads are done
print(json.dumps(out), flush=True)
os._exit(0)
"""


class ReadersPond:
    """The pond the other readers read, built once (see `readers_pond`)."""

    def __init__(self, root: Path, version: int, rows_then: int, moment: datetime) -> None:
        self.root = root
        self.version = version  # the data table's version to travel back to
        self.rows_then = rows_then  # its live rows at that version
        self.moment = moment  # a moment after that version and before the next write


@pytest.fixture(scope="module")
def readers_pond(tmp_path_factory: pytest.TempPathFactory) -> ReadersPond:
    """A pond made by the real CLI (files, series, a compaction, a checkpoint, writes
    after them), built once for the three readers tests (its 2.2 s of waiting and ~20
    `pond` commands included); each test reads or pushes its own copy (copytree keeps
    the files' times, which time travel by timestamp may read)."""
    tmp_path = tmp_path_factory.mktemp("readers")
    root = tmp_path / "p"
    run_pond("init", pond=root)
    csv = tmp_path / "t.csv"
    for i in range(3):
        src = tmp_path / f"f{i}.txt"
        src.write_bytes(b"file %d\n" % i)
        run_pond("mkdir", "-p", f"/d{i % 2}", pond=root)
        run_pond("copy", f"host://{src}", f"/d{i % 2}/f{i}", pond=root)
        csv.write_text(
            f"timestamp,v\n2026-01-0{i + 1}T00:00:00Z,{i}\n2026-01-0{i + 1}T01:00:00Z,1\n"
        )
        run_pond("mkdir", "-p", "/s", pond=root)
        run_pond("copy", f"host+csv+series://{csv}", "/s/temps", pond=root)
    # the point to travel back to: this version's rows, then a moment before the next write
    version = DeltaTable(str(root / "data")).version()
    rows_then = live_rows(root / "data")
    time.sleep(1.1)
    moment = datetime.now(UTC)
    time.sleep(1.1)
    run_pond("maintain", pond=root)  # compaction (dataChange false) and a checkpoint
    for i in range(3, 5):
        src = tmp_path / f"f{i}.txt"
        src.write_bytes(b"file %d\n" % i)
        run_pond("copy", f"host://{src}", f"/d0/f{i}", pond=root)
    assert log_actions(root / "data", "remove"), "maintain should have compacted"
    assert (root / "data" / "_delta_log" / f"{version:020d}.json").exists()
    return ReadersPond(root, version, rows_then, moment)


@pytest.mark.parametrize("where", ["pond", "remote", "restored"])
def test_other_readers_see_the_ponds_rows_and_time_travel(
    tmp_path: Path, readers_pond: ReadersPond, where: str
) -> None:
    """`remote`: the same readers on a `file://` backup the pond pushed (issue 8: a remote
    is a standard Delta layout with the pond's rows); `restored`: on a pond restored from
    it. Copies of log entries keep their commit's time (time travel by timestamp)."""
    root = tmp_path / "p"
    shutil.copytree(readers_pond.root, root, symlinks=True)
    version, rows_then, moment = readers_pond.version, readers_pond.rows_then, readers_pond.moment
    pond = Pond.open(root)
    want = {"data": live_rows(root / "data"), "control": pond.control.read_all().num_rows}
    assert want["data"] > rows_then
    seq3 = sum(1 for s in pond.control.read_all(columns=["txn_seq"])["txn_seq"] if s.as_py() >= 3)
    plan = {"version": version, "ts": moment.isoformat()}
    read_root = root
    if where != "pond":
        from duckpond.remotes.push import push
        from duckpond.remotes.restore import restore
        from duckpond.storage.objstore import open_store

        read_root = tmp_path / "backup"
        push(root, open_store(f"file://{read_root}"))
        assert sorted(p.name for p in (read_root / "data").rglob("*.parquet"))
        if where == "restored":
            restore(tmp_path / "restored", open_store(f"file://{read_root}"))
            read_root = tmp_path / "restored"
    proc = subprocess.run(
        [sys.executable, "-c", READERS, str(read_root), json.dumps(plan)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    seen = json.loads(proc.stdout)
    skipped = {k: v for k, v in seen.items() if isinstance(v, str)}
    for reader, counts in seen.items():
        if isinstance(counts, str):
            continue
        assert counts["data"] == want["data"], reader
        assert counts["control"] == want["control"], reader
        assert counts["version"] == rows_then, reader
        assert counts.get("timestamp", rows_then) == rows_then, reader
        assert counts["seq_filter"] == seq3, reader
    if skipped:
        pytest.skip(f"readers not installed: {skipped}")
