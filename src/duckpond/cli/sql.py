"""`pond sql`: read-only SQL across pond files (`Pond.sql`), from the argument, from stdin,
or typed into the interactive shell (shell.py) when stdin is a terminal."""

from __future__ import annotations

import sys

import click

from ..errors import PondUsageError
from .app import State, cli, query_limits
from .sqlrun import SqlRun, run_statement

OUTPUT_FORMATS = ["table", "csv", "json", "parquet"]


@cli.command(name="sql")
@click.argument("query", required=False)
@click.option("--time-start", help="First event time of every series read (ISO 8601 or µs).")
@click.option("--time-end", help="Last event time of every series read, inclusive.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OUTPUT_FORMATS),
    help="Output format (terminal: table; pipe: Parquet).",
)
@query_limits
@click.pass_obj
def sql_command(
    st: State,
    query: str | None,
    time_start: str | None,
    time_end: str | None,
    fmt: str | None,
    timeout: float | None,
    memory_limit: int | None,
) -> None:
    """Read-only SQL across pond files: each quoted pond path is a table.

    \b
    pond sql "SELECT * FROM '/weather/EWR' AS e JOIN '/weather/JFK' AS j USING (time_hour)"
    pond sql "SELECT filename, count(*) FROM '/weather/*' GROUP BY ALL"
    pond sql "SELECT * FROM 'csv:///data/readings.csv'"
    echo "SELECT 1;" | pond sql        (statements from stdin)
    pond sql                           (on a terminal: the interactive shell)
    """
    from ..query.multisql import split_statements

    run = SqlRun(time_start, time_end, timeout, memory_limit, fmt)
    if query is not None:
        run_statement(st, query, run)
        return
    if sys.stdin.isatty():
        from .shell import Shell

        if fmt == "parquet":
            raise PondUsageError("the shell prints table, csv or json, not parquet")
        st.open()  # a missing pond is an error now, not at the first statement
        Shell(st, run).loop()
        return
    statements = split_statements(sys.stdin.read())
    if not statements:
        raise PondUsageError("no SQL given: pond sql QUERY, or statements on stdin")
    if len(statements) > 1 and (fmt or ("table" if sys.stdout.isatty() else "parquet")) == (
        "parquet"
    ):
        raise PondUsageError(
            f"{len(statements)} statements cannot be one Parquet stream: use --format csv or json"
        )
    for statement in statements:
        run_statement(st, statement, run)
