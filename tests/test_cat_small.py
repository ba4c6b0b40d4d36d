"""`pond cat --sql` of a small result without pyarrow (query/rows.py, issue 19 goal 1).

The small path must write the very bytes the Arrow path (output.py) writes, and leave every
other result to it: more rows than SMALL_ROWS, a type it does not hold, a value Python
cannot hold exactly (infinite or BC dates and timestamps)."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CLI, cli_env, run_pond
from rich.console import Console

from duckpond.query import output, rows
from duckpond.query.relations import Part, register_parts
from duckpond.query.sql import make_context, stream_sql

T0 = 1_700_000_000_000_000


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    """20,000 rows: a timestamp, a sensor, a value (more than SMALL_ROWS)."""
    n = 20_000
    table = pa.table(
        {
            "timestamp": pa.array(
                [T0 + i * 1_000_000 for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "sensor": pa.array([i % 4 for i in range(n)], pa.int32()),
            "value": pa.array([i / 8 for i in range(n)], pa.float64()),
        }
    )
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    return path


def both(path: Path, query: str) -> tuple[rows.Rows | None, list[pa.RecordBatch]]:
    """The small path's result and the Arrow path's batches for one query."""
    small_ctx, arrow_ctx = make_context(), make_context()
    try:
        for ctx in (small_ctx, arrow_ctx):
            register_parts(ctx, [Part(path=str(path))])
        small = rows.small_result(small_ctx, query, None)
        batches = list(stream_sql(arrow_ctx, query, None))
    finally:
        small_ctx.close()
        arrow_ctx.close()
    return small, batches


def written(small: rows.Rows, batches: list[pa.RecordBatch]) -> dict[str, tuple[str, str]]:
    """Each format's text from the small path and from the Arrow path."""
    out = {}
    a, b = io.BytesIO(), io.BytesIO()
    rows.write_csv(small, a)
    output.write_csv_stream(batches, b)
    out["csv"] = (a.getvalue().decode(), b.getvalue().decode())
    s, t = io.StringIO(), io.StringIO()
    rows.write_json(small, s)
    output.write_json_stream(batches, t)
    out["json"] = (s.getvalue(), t.getvalue())
    c1, c2 = (Console(file=io.StringIO(), width=200, color_system=None) for _ in range(2))
    values = rows.values(small)
    rows.print_rows(small.names, rows.numeric(small), values[:100], len(values), c1)
    output.print_table(pa.Table.from_batches(batches), c2)
    out["table"] = (c1.file.getvalue(), c2.file.getvalue())  # type: ignore[attr-defined]
    return out


MATRIX = [
    "SELECT 1::INTEGER AS i, 2.5::DOUBLE AS d, 0.1::DOUBLE + 0.2 AS f, 1e20 AS big, 1e-7 AS small, "
    "100.0::DOUBLE AS hund, 'a\"b,c' AS s, NULL::VARCHAR AS n, '' AS e, true AS b, "
    "false AS b2, DATE '2024-01-02' AS dt, TIMESTAMP '2024-01-02 03:04:05' AS ts, "
    "TIMESTAMPTZ '2024-01-02 03:04:05.5+00' AS tz, 'nan'::DOUBLE AS nan, "
    "'-inf'::DOUBLE AS inf, -0.0::DOUBLE AS nz, 123456789012.0::DOUBLE AS mid, 1e15::DOUBLE AS e15",
    # a duplicate name, text with a newline and non-ASCII, times before 1970 and year 5
    "SELECT 1 AS a, 2 AS a, 'line\none, ü \"q\"' AS t, TIMESTAMP '1969-12-31 23:59:59.999999' "
    "AS early, DATE '0005-01-01' AS d5, TIMESTAMPTZ '0005-06-07 08:09:10+00' AS t5",
    # HUGEINT: int64 where it fits, a decimal (text in JSON) once one value does not
    "SELECT sensor, sum(sensor) AS s FROM source GROUP BY sensor ORDER BY sensor",
    "SELECT x, sum(9223372036854775807) + x AS h FROM (VALUES (1), (2)) v(x) GROUP BY x ORDER BY x",
    "SELECT sensor, count(*) AS n, avg(value) AS a, min(timestamp) AS t0, "
    "max(timestamp) AS t1 FROM source GROUP BY sensor ORDER BY sensor",
    "SELECT * FROM source WHERE sensor = 9",  # no rows: a header, [], an empty table
    "SELECT * FROM source ORDER BY timestamp LIMIT 150",  # a table shows 100 of them
    "SELECT 255::UTINYINT AS u, -5::TINYINT AS t, 18446744073709551615::UBIGINT AS ub, "
    "NULL::BIGINT AS nb, NULL::DOUBLE AS nd, NULL::DATE AS ndt, NULL::TIMESTAMPTZ AS nts",
]


@pytest.mark.parametrize("query", MATRIX)
def test_small_path_writes_what_arrow_writes(parquet: Path, query: str) -> None:
    small, batches = both(parquet, query)
    assert small is not None
    for fmt, (lean, arrow) in written(small, batches).items():
        assert lean == arrow, fmt


def test_doubles_spelled_as_pyarrow_spells_them(parquet: Path) -> None:
    rng = random.Random(5)
    values = [0.1, 1e-6, 1.5e-6, 1e-5, 9999999999.0, 1e10, 12345678901.0, 2.0**53, 5e-324]
    values += [1.7976931348623157e308, 1234567890.5, 1e-4, 0.000123]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 14) for _ in range(2_000)]
    values += [float(rng.randint(-(10**12), 10**12)) for _ in range(500)]
    got = [rows.arrow_float(v) for v in values]
    buf = io.BytesIO()
    pa.csv.write_csv(pa.table({"x": pa.array(values, pa.float64())}), buf)
    assert got == buf.getvalue().decode().split("\n")[1:-1]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM source",  # 20,000 rows: more than SMALL_ROWS
        "SELECT 0.5::FLOAT AS f",  # float32: Python would widen it
        "SELECT 'x'::BLOB AS b",
        "SELECT [1, 2] AS l",
        "SELECT 1.50::DECIMAL(4, 2) AS d",
        "SELECT 'infinity'::TIMESTAMP AS t",
        "SELECT '-infinity'::DATE AS d",
        "SELECT DATE '0001-01-01' - 10 AS d",  # BC
        "EXPLAIN SELECT 1",
    ],
)
def test_left_to_arrow(parquet: Path, query: str) -> None:
    small, batches = both(parquet, query)
    assert small is None
    assert sum(b.num_rows for b in batches) >= 1


def test_limit_is_exact(parquet: Path) -> None:
    """SMALL_ROWS rows are small, one more is not."""
    query = f"SELECT * FROM source LIMIT {rows.SMALL_ROWS}"
    small, _ = both(parquet, query)
    assert small is not None and len(small.rows) == rows.SMALL_ROWS
    small, _ = both(parquet, f"SELECT * FROM source LIMIT {rows.SMALL_ROWS + 1}")
    assert small is None


def test_cli_small_result_never_loads_pyarrow(parquet: Path) -> None:
    query = "SELECT sensor, count(*) AS n, avg(value) AS a FROM source GROUP BY 1 ORDER BY 1"
    for fmt, expected in [
        (
            "csv",
            '"sensor","n","a"\n0,5000,1249.75\n1,5000,1249.875\n2,5000,1250\n3,5000,1250.125\n',
        ),
        (
            "json",
            '[{"sensor": 0, "n": 5000, "a": 1249.75}, {"sensor": 1, "n": 5000, "a": 1249.875}, '
            '{"sensor": 2, "n": 5000, "a": 1250.0}, {"sensor": 3, "n": 5000, "a": 1250.125}]\n',
        ),
    ]:
        argv = [sys.executable, "-X", "importtime", *CLI[1:]]
        argv += ["cat", f"host+table://{parquet}", "--sql", query, "--format", fmt]
        proc = subprocess.run(argv, env=cli_env(), capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert proc.stdout.decode() == expected
        imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines()]
        assert "duckdb" in imported
        assert not [m for m in imported if m.split(".")[0] in ("pyarrow", "numpy", "rich")]


def test_cli_big_result_streams_through_arrow_within_a_small_limit(parquet: Path) -> None:
    """Past SMALL_ROWS the query runs again through Arrow, pyarrow loaded after the process
    bound of a 32M limit was set."""
    proc = run_pond(
        "cat",
        f"host+table://{parquet}",
        "--sql",
        "SELECT sensor, value FROM source ORDER BY value DESC",
        "--format",
        "csv",
        "--memory-limit",
        "32M",
        exec=True,  # pyarrow must load after the bound is set: not preloaded
    )
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 20_001
    assert lines[:3] == ['"sensor","value"', "3,2499.875", "2,2499.75"]
    assert lines[-1] == "0,0"


def test_cli_table_small_and_big(parquet: Path) -> None:
    small = run_pond(
        "cat",
        f"host+table://{parquet}",
        "--sql",
        "SELECT count(*) AS n FROM source",
        "--format",
        "table",
    ).stdout.decode()
    assert small.split() == [
        "┏━━━━━━━┓",
        "┃",
        "n",
        "┃",
        "┡━━━━━━━┩",
        "│",
        "20000",
        "│",
        "└───────┘",
        "1",
        "row",
    ]
    big = run_pond("cat", f"host+table://{parquet}", "--format", "table").stdout.decode()
    assert big.rstrip().endswith("100 of 20000 rows shown")


def test_cli_small_result_errors_and_timeout(parquet: Path) -> None:
    proc = run_pond(
        "cat",
        f"host+table://{parquet}",
        "--sql",
        "SELECT nope FROM source",
        "--format",
        "csv",
        check=1,
    )
    assert proc.stdout == b""
    assert proc.stderr.decode().startswith('error: query failed: Referenced column "nope"')
    proc = run_pond(
        "cat",
        f"host+table://{parquet}",
        "--sql",
        "SELECT count(*) FROM range(1000000000000) a",
        "--format",
        "csv",
        "--timeout",
        "0.5",
        check=1,
    )
    assert proc.stdout == b""
    assert proc.stderr.decode() == (
        "error: query exceeded the time limit of 0.5s (raise it with --timeout SECONDS)\n"
    )


BOUND_CHILD = """
import sys
from duckpond.query import limits
def data():
    lines = open('/proc/self/status').read().splitlines()
    return next(int(l.split()[1]) * 1024 for l in lines if l.startswith('VmData:'))
import resource, duckdb
limits.bound_process_memory(32 << 20)
cap = limits.apply_process_bound()
room = cap - data()
limits.import_outside_bound('pyarrow', 'pyarrow.csv')
soft = resource.getrlimit(resource.RLIMIT_DATA)[0]
print(room, soft - data(), soft == limits.apply_process_bound(), 'pyarrow' in sys.modules)
"""


def test_pyarrow_loaded_outside_the_process_bound() -> None:
    """Loading pyarrow after the bound was set (a result too big for the small path) leaves
    the query the room the bound gave it: 2 x 32M + 64M, not that less ~100 MB."""
    proc = subprocess.run(
        [sys.executable, "-c", BOUND_CHILD], capture_output=True, timeout=120, env=cli_env()
    )
    assert proc.returncode == 0, proc.stderr.decode()
    room, after, recorded, loaded = proc.stdout.decode().split()
    assert int(room) >= 128 << 20
    assert int(after) >= int(room) - (4 << 20)  # what the import itself allocated and kept
    assert (recorded, loaded) == ("True", "True")
