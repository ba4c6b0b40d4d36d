"""Benchmark 16: other engines skip the pond's files by their Delta statistics.

Two ponds of 1,000 real write transactions, one small file each: all in one directory,
and round-robin over 10 directories (automatic upkeep only, so files are small appends and
compacted tiers). DuckDB's `delta_scan` (the `duckdb-extension-delta` package, loaded
offline) counts the rows of a band of 1 % of the transactions in the middle of the history
(`txn_seq BETWEEN a AND b`), in the data table of each and the control table.

Files read are DuckDB's own count: `EXPLAIN ANALYZE` prints `Scanning Files: READ/LIVE` for
the Delta scan (the files left after skipping by the add actions' min/max statistics, out
of the snapshot's live files). Times: the query vs the same query with DuckDB's filter
pushdown off, which opens every file (interleaved, medians). "hold rows" is the number of
files that hold a matching row (`delta_scan(..., filename => true)`), the fewest any reader
must open.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from duckpond.pond import Pond

from .common import Result, Row, Timer, log, ratio_row

TXNS = 1_000


def _duckdb() -> Any:
    import duckdb
    import duckdb_extension_delta

    base = os.path.dirname(duckdb_extension_delta.__file__)
    ext = glob.glob(f"{base}/extensions/v{duckdb.__version__}/delta.duckdb_extension")
    if not ext:
        raise RuntimeError(f"no delta extension for duckdb {duckdb.__version__} in {base}")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext[0]}'")
    return con


def files_scanned(con: Any, sql: str) -> tuple[int, int]:
    """(files read, live files) of the query's Delta scan, from EXPLAIN ANALYZE."""
    plan = "\n".join(str(r[1]) for r in con.execute(f"EXPLAIN ANALYZE {sql}").fetchall())
    m = re.search(r"Scanning Files:\s*(\d+)\s*/\s*(\d+)", plan)
    if m is None:
        raise RuntimeError(f"no `Scanning Files` in the plan:\n{plan}")
    return int(m.group(1)), int(m.group(2))


def holding_files(con: Any, scan_args: str, where: str) -> int:
    """How many live files hold a matching row: the fewest any reader must open."""
    sql = f"SELECT count(DISTINCT filename) FROM delta_scan({scan_args}, filename => true) {where}"
    return int(con.execute(sql).fetchone()[0])


def build(root: Path, txns: int, ndirs: int) -> int:
    """A pond of `txns` real write transactions, one small file each, round-robin over
    `ndirs` directories; returns the last txn_seq."""
    pond = Pond.create(root)  # txn 1
    for i in range(txns - 1):
        path = f"/d{i % ndirs}/f{i}"
        with pond.transaction(args=["pond", "copy", f"host:///f{i}", path]) as tx:
            tx.write_bytes(path, b"x" * 100, parents=True)
    return int(pond.data.last_txn_seq())


def run(work: Path, quick: bool) -> Result:
    txns = 200 if quick else TXNS
    width = max(1, txns // 100)  # 1 % of the transactions
    con = _duckdb()
    rows: list[Row] = []
    notes: list[str] = []
    t = Timer(warmup=1)
    cases = (("16a", "data", 1), ("16b", "data", 10), ("16c", "control", 10))
    built: dict[int, tuple[Path, int]] = {}
    for key, table, ndirs in cases:
        if ndirs not in built:
            log(f"16: building a pond of {txns} write transactions over {ndirs} directories")
            root = work / f"pond-{ndirs}dirs"
            built[ndirs] = (root, build(root, txns, ndirs))
        root, last = built[ndirs]
        middle = last // 2
        where = f"WHERE txn_seq BETWEEN {middle} AND {middle + width - 1}"
        args = f"'{root / table}'"
        everything = f"SELECT count(*) FROM delta_scan({args})"
        query = f"{everything} {where}"
        read, live = files_scanned(con, query)
        need = holding_files(con, args, where)
        got = con.execute(query).fetchone()[0]
        assert got > 0
        share = read / live
        dirs = "1 directory" if ndirs == 1 else f"{ndirs} directories round-robin"
        rows.append(
            Row(
                key,
                f"DuckDB delta_scan, 1% of txn_seq: {table} files read, {txns:,} txns, {dirs}",
                f"{read} of {live}",
                f"{need} hold rows",
                f"{share:.1%}",
                "≤ 10%",
                "yes" if share <= 0.10 else "no",
                {"files_read": read, "files_live": live, "files_holding": need, "rows": got},
            )
        )
        notes.append(f"16{key[-1]}: `{where}` -> {got} rows")
        # the same query with DuckDB's filter pushdown off: every file is opened
        unskipped = f"SELECT count(*) FROM delta_scan({args}, pushdown_filters => 'none') {where}"
        assert con.execute(unskipped).fetchone()[0] == got
        for _ in range(16 if quick else 41):
            t.run(f"{key}_skip", lambda q=query: con.execute(q).fetchone())
            t.run(f"{key}_noskip", lambda q=unskipped: con.execute(q).fetchone())
        rows.append(
            ratio_row(
                f"{key}t",
                "  the same query's time vs with pushdown off (`pushdown_filters => 'none'`)",
                t.median(f"{key}_skip"),
                t.median(f"{key}_noskip"),
                None,
            )
        )
    return Result(rows, notes)
