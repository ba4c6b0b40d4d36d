"""Other engines read what `pond export` wrote: DuckDB, Polars and Daft, each in a
subprocess (their runtimes stay out of the test process), on Hive Parquet and on Delta,
and get exactly the rows the pond reads. A filter on the partition columns provably skips
files: the partition the filter excludes is overwritten with garbage first, so an engine
that opened it would fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PondTemplates, run_pond
from export_helpers import build_pond48, pond_rows

ENGINES = r"""
import datetime, glob, json, os, sys
import pyarrow as pa
where, fmt, day = sys.argv[1], sys.argv[2], int(sys.argv[3])  # day 0: read everything
opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None

def rows(table):
    keep = [c for c in table.column_names if c not in ("year", "month", "day")]
    table = table.select(keep)
    t = table.column("timestamp").cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    table = table.set_column(keep.index("timestamp"), "timestamp", t)
    return table.sort_by("timestamp").to_pylist()

out = {}
if opts is None:  # DuckDB reads local files (its S3 support is an extension download)
    import duckdb, duckdb_extension_delta
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    base = os.path.dirname(duckdb_extension_delta.__file__)
    ext = glob.glob(f"{base}/extensions/v{duckdb.__version__}/delta.duckdb_extension")
    con.execute(f"LOAD '{ext[0]}'")
    src = (f"read_parquet('{where}/**/*.parquet', hive_partitioning=true)" if fmt == "parquet"
           else f"delta_scan('{where}')")
    if not day:
        out["duckdb"] = {
            "rows": rows(con.sql(f"select * from {src}").arrow().read_all()),
            "types": [str(t) for t in con.sql(f"select year, month, day from {src}").types],
        }
    else:
        q = f"select * from {src} where day = {day}"
        plan = con.sql(f"explain analyze {q}").fetchall()[0][1]
        out["duckdb"] = {
            "rows": rows(con.sql(q).arrow().read_all()),
            "files_read": [l.strip(" │") for l in plan.splitlines() if "Total Files Read" in l],
        }

import polars as pl
storage = None if opts is None else {
    "aws_endpoint_url": opts["endpoint"], "aws_region": opts["region"], "aws_allow_http": "true",
    "aws_access_key_id": opts["key"], "aws_secret_access_key": opts["secret"],
}
if fmt == "parquet":
    lf = pl.scan_parquet(f"{where}/**/*.parquet", hive_partitioning=True, storage_options=storage)
else:
    lf = pl.scan_delta(where, storage_options=storage)
out["polars"] = {
    "rows": rows((lf.filter(pl.col("day") == day) if day else lf).collect().to_arrow()),
    "types": [str(lf.collect_schema()[c]) for c in ("year", "month", "day")],
}

import daft
io = None
if opts is not None:
    from daft.io import IOConfig, S3Config
    io = IOConfig(s3=S3Config(endpoint_url=opts["endpoint"], region_name=opts["region"],
        key_id=opts["key"], access_key=opts["secret"], use_ssl=False))
if fmt == "parquet":
    # Daft infers the schema from whichever file it lists first (any order): a reader who
    # knows the export's schema passes it, so the skipped partition is never opened
    schema = None
    if day and opts is None:
        import pyarrow.parquet as pq
        (known,) = glob.glob(f"{where}/year=*/month=*/day={day}/*.parquet")
        schema = {f.name: daft.DataType.from_arrow_type(f.type) for f in pq.read_schema(known)}
    df = daft.read_parquet(f"{where}/**/*.parquet", hive_partitioning=True, io_config=io,
                           schema=schema, infer_schema=schema is None)
else:
    df = daft.read_deltalake(where, io_config=io)
out["daft"] = {
    "rows": rows((df.where(daft.col("day") == day) if day else df).to_arrow()),
    "types": [str(df.schema()[c].dtype) for c in ("year", "month", "day")],
}
# the engines' Rust runtimes (deltalake 1.6.6, Daft, Polars) can crash while the
# interpreter tears down (SIGSEGV after this line, CI stop 26): the reads are done
print(json.dumps(out), flush=True)
os._exit(0)
"""


def engines(where: str, fmt: str, day: int, opts: dict[str, str] | None = None) -> Any:
    argv = [sys.executable, "-c", ENGINES, where, fmt, str(day)]
    if opts is not None:
        argv.append(json.dumps(opts))
    proc = subprocess.run(argv, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return json.loads(proc.stdout.decode().splitlines()[-1])


@pytest.fixture
def pond2(pond_templates: PondTemplates, tmp_path: Path) -> Path:
    """/s/temp: 48 hourly rows over 2024-01-01 and 02 in two versions (a copy of one built
    per test process by the CLI)."""
    return pond_templates.copy("pond48", tmp_path / "pond", build_pond48)


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_duckdb_polars_and_daft_read_the_ponds_rows(pond2: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out"
    run_pond(
        "export",
        "/s/temp",
        "--dir",
        out,
        "--format",
        fmt,
        "--temporal",
        "year,month,day",
        pond=pond2,
    )
    want = pond_rows(pond2, "/s/temp")
    assert len(want) == 48 and want[0] == {
        "timestamp": 1704067200000000,
        "v": 0,
        "f": 0.0,
        "name": "h0",
    }
    series = out / "s/temp"
    full = engines(str(series), fmt, 0)  # first, every file whole
    # day 1 is read and day 2's file is garbage: only an engine that skips it succeeds
    for files in series.glob("year=2024/month=1/day=2/*.parquet"):
        files.write_bytes(b"not parquet")
    filtered = engines(str(series), fmt, 1)
    ints = (
        {"duckdb": "INTEGER", "polars": "Int32", "daft": "Int32"}
        if fmt == "delta"
        else {"duckdb": "BIGINT", "polars": "Int64", "daft": "Int64"}
    )
    for name in ("duckdb", "polars", "daft"):
        assert full[name]["rows"] == want, name
        assert full[name]["types"] == [ints[name]] * 3, name  # whole numbers everywhere
        assert filtered[name]["rows"] == want[:24], name
    assert filtered["duckdb"]["files_read"] == ["Total Files Read: 1"]


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_an_s3_export_is_read_by_polars_and_daft(pond2: Path, s3_remote: Any, fmt: str) -> None:
    opts = s3_remote.options
    env = {"EXPORT_SECRET": opts.secret_access_key}
    run_pond(
        "export",
        "/s/temp",
        "--dir",
        s3_remote.url,
        "--format",
        fmt,
        "--temporal",
        "year,month,day",
        "--endpoint",
        opts.endpoint,
        "--region",
        opts.region,
        "--access-key-id",
        opts.access_key_id,
        "--secret-access-key",
        "${env:EXPORT_SECRET}",
        "--allow-http",
        pond=pond2,
        env=env,
    )
    where = f"{s3_remote.url}/s/temp"
    creds = {
        "endpoint": opts.endpoint,
        "region": opts.region,
        "key": opts.access_key_id,
        "secret": opts.secret_access_key,
    }
    want = pond_rows(pond2, "/s/temp")
    full, day1 = engines(where, fmt, 0, creds), engines(where, fmt, 1, creds)
    for name in ("polars", "daft"):
        assert full[name]["rows"] == want, name
        assert day1[name]["rows"] == want[:24], name
