"""Benchmark 16: other engines skip the pond's files by their Delta statistics.

A pond of 1,000 real write transactions (one small file each, round-robin over 10
directories; automatic upkeep only, so files are small appends and compacted tiers). DuckDB's
`delta_scan` (the `duckdb-extension-delta` package, loaded offline) then counts the rows of
the newest 1 % of transactions (`txn_seq > N - 10`) in the data and the control table.

Files read are DuckDB's own count: `EXPLAIN ANALYZE` prints `Scanning Files: READ/LIVE` for
the Delta scan (the files left after skipping by the add actions' min/max statistics, out
of the snapshot's live files). Times: the filtered query vs the same count without a filter
(interleaved, medians).
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
RECENT = 10  # the newest 1 % of transactions


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


def run(work: Path, quick: bool) -> Result:
    txns = 200 if quick else TXNS
    root = work / f"pond-{txns}"
    log(f"16: building a pond of {txns} write transactions")
    pond = Pond.create(root)  # txn 1
    for i in range(txns - 1):
        path = f"/d{i % 10}/f{i}"
        with pond.transaction(args=["pond", "copy", f"host:///f{i}", path]) as tx:
            tx.write_bytes(path, b"x" * 100, parents=True)
    last = pond.data.last_txn_seq()
    con = _duckdb()
    rows: list[Row] = []
    t = Timer(warmup=1)
    for key, table in (("16a", "data"), ("16b", "control")):
        scan = f"delta_scan('{root / table}')"
        recent = f"SELECT count(*) FROM {scan} WHERE txn_seq > {last - RECENT}"
        everything = f"SELECT count(*) FROM {scan}"
        read, live = files_scanned(con, recent)
        got = con.execute(recent).fetchone()[0]
        want = con.execute(f"{everything} WHERE txn_seq > {last - RECENT}").fetchone()
        assert got == want[0] and got > 0
        share = read / live
        rows.append(
            Row(
                key,
                f"DuckDB delta_scan, txn_seq filter (newest 1%), {table} table of {txns:,} txns:"
                " files read",
                f"{read} of {live} files",
                f"{live} files",
                f"{share:.1%}",
                "≤ 10%",
                "yes" if share <= 0.10 else "no",
                {"files_read": read, "files_live": live, "share": share, "rows": got},
            )
        )
        for _ in range(16 if quick else 41):
            t.run(f"{table}_recent", lambda q=recent: con.execute(q).fetchone())
            t.run(f"{table}_all", lambda q=everything: con.execute(q).fetchone())
        rows.append(
            ratio_row(
                f"{key}t",
                f"  same query's time vs the unfiltered count ({table})",
                t.median(f"{table}_recent"),
                t.median(f"{table}_all"),
                None,
            )
        )
    return Result(rows, [f"16: {txns:,} transactions; txn_seq > {last - RECENT}"])
