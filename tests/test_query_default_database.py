"""The CLI's first query context uses the database DuckDB opened at import (its default
connection's) instead of opening a second one (limits.use_default_database, issue 19 goal
1); it is configured and locked as a context of its own would be, later contexts of the
process open their own, and a library user's default connection is never touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import cli_env

SETTINGS = (
    "SELECT current_setting('memory_limit') AS m, current_setting('TimeZone') AS tz, "
    "current_setting('lock_configuration') AS locked, "
    "current_setting('temp_directory') = {spill} AS own_spill, "
    "(SELECT count(*) FROM source) AS n FROM source LIMIT 1"
)


def _probe(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter (the default database's state is per process);
    the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, object] = json.loads(proc.stdout.decode().splitlines()[-1])
    return result


def _code(parquet: Path, claim: bool) -> str:
    return f"""
import json, duckdb
from duckpond.query import limits, sql, sqltext
from duckpond.query.relations import Part, register_parts
from duckpond.query.rows import small_result
from duckpond.errors import QueryError
if {claim!r}:
    limits.use_default_database()
out = {{}}

def context(limit, key):
    ctx = sql.make_context(limit)
    register_parts(ctx, [Part(path={str(parquet)!r})])
    q = {SETTINGS!r}.format(spill=sqltext.literal(ctx.spill))
    out[key] = small_result(ctx, q, None).rows[0]
    try:
        small_result(ctx, "SELECT * FROM read_csv('/etc/passwd')", None)
    except QueryError as e:
        out[key + "_guard"] = str(e)
    return ctx

first = context(100 << 20, "first")
second = context(200 << 20, "second")
first.close()
second.close()
default = duckdb.default_connection()
out["default_locked"] = default.sql("SELECT current_setting('lock_configuration')").fetchone()[0]
try:
    default.execute("SET memory_limit = '1GB'")
    out["default_set"] = "ok"
except duckdb.Error as e:
    out["default_set"] = str(e)
print(json.dumps(out))
"""


GUARD = (
    "only read-only queries are allowed: reading other files or URLs is refused (Cannot "
    'access file "/etc/passwd" - file system operations are disabled by configuration)'
)


def _assert_contexts_are_their_own(out: dict[str, object]) -> None:
    """Each context has its own limit, zone, spill directory and guard."""
    assert out["first"] == ["100.0 MiB", "UTC", True, True, 3]
    assert out["second"] == ["200.0 MiB", "UTC", True, True, 3]
    assert out["first_guard"] == GUARD
    assert out["second_guard"] == GUARD


def test_the_first_context_uses_the_default_database_configured_and_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3]}), path)
    out = _probe(_code(path, claim=True))
    # the first on the default database (locked with it: it can no longer be
    # reconfigured), the second on a database of its own
    _assert_contexts_are_their_own(out)
    assert out["default_locked"] is True
    assert out["default_set"] == (
        'Invalid Input Error: Cannot change configuration option "memory_limit" - the '
        "configuration has been locked"
    )


def test_a_library_users_default_connection_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3]}), path)
    out = _probe(_code(path, claim=False))
    _assert_contexts_are_their_own(out)
    assert out["default_locked"] is False
    assert out["default_set"] == "ok"
