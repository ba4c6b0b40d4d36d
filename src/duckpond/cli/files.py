"""`pond init`, `mkdir`, `copy`, `list`, `describe` and `cat`: the pond's files."""

from __future__ import annotations

import os
import sys

import click

from ..errors import InvalidPathError, PondUsageError
from .app import FORMATS, State, cli, log, query_limits

# A copy shows its bar from this many bytes: a smaller one is over before a bar helps.
COPY_BAR_BYTES = 16 << 20


@cli.command()
@click.pass_obj
def init(st: State) -> None:
    """Create a pond (error if one exists)."""
    from ..pond import Pond

    pond = Pond.create(st.path(), wait=st.wait, args=st.argv)
    log().info("created pond at %s", pond.root)


@cli.command()
@click.option("-p", "--parents", is_flag=True, help="Make parents; no error if it exists.")
@click.argument("path")
@click.pass_obj
def mkdir(st: State, parents: bool, path: str) -> None:
    """Create a directory."""
    pond = st.open()
    with pond.transaction(st.argv, st.vars) as tx:
        tx.mkdir(path, parents=parents)


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.argument("dest")
@click.option("--time-column", help="The event-time column of a series (else detected).")
@click.option(
    "--time-format",
    metavar="FMT",
    help="How a CSV writes its times when not ISO 8601 (strptime: %Y/%m/%d %H:%M).",
)
@click.option("-p", "--parents", is_flag=True, help="Create missing directories on the way.")
@click.pass_obj
def copy(
    st: State,
    sources: tuple[str, ...],
    dest: str,
    time_column: str | None,
    time_format: str | None,
    parents: bool,
) -> None:
    """Copy host files into the pond, or pond files out to a host directory.

    \b
    host -> pond:  pond copy host:///data/a.csv host+csv+table:///data/b.csv /dir/
    pond -> host:  pond copy '/dir/**' host:///tmp/out
    """
    from ..query.urls import is_host, parse_source

    if is_host(dest):
        target = parse_source(dest)
        if target.fmt != "raw":
            raise PondUsageError(f"copy out of the pond goes to host:///dir, not {dest}")
        written = st.open().copy_out(sources, target.path)
        log().info("copied %d file(s) to %s", len(written), target.path)
        return
    from .progress import progress_bar

    total = 0
    for s in sources:
        src = parse_source(s)
        if src.scheme == "host":
            try:
                total += os.stat(src.path).st_size
            except OSError:
                pass
    with progress_bar("copying", total, min_total=COPY_BAR_BYTES) as bar:
        st.open().copy_in(
            sources,
            dest,
            time_column=time_column,
            time_format=time_format,
            parents=parents,
            args=st.argv,
            vars=st.vars,
            progress=bar.advance if bar else None,
        )


@cli.command(name="list")
@click.option("-l", "long", is_flag=True, help="Show type, version and size.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.argument("pattern", required=False, default="/**/*")
@click.pass_obj
def list_(st: State, long: bool, fmt: str, pattern: str) -> None:
    """Entries matching a glob (default: everything)."""
    from . import render

    entries = st.open().list(pattern)
    if fmt == "json":
        render.print_json([e.to_json() for e in entries])
    else:
        render.entries(entries, long)


@cli.command()
@click.argument("path")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def describe(st: State, path: str, fmt: str) -> None:
    """Type, size, schema and versions of a pond file."""
    from ..pond import describe_source
    from ..query.urls import is_host
    from . import render

    d = describe_source(path, None if is_host(path) else st.open())
    if fmt == "json":
        render.print_json(d.to_json())
    else:
        render.describe(d)


@cli.command()
@click.argument("path")
@click.option("--sql", "query", help="A read-only SQL query over the file as `source`.")
@click.option("--version", type=int, help="Read this version instead of the latest.")
@click.option("--time-start", help="Series: first event time (ISO 8601 or µs).")
@click.option("--time-end", help="Series: last event time (ISO 8601 or µs).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet", "raw"]),
    help="Output format (terminal: table; pipe: raw bytes or Parquet).",
)
@query_limits
@click.pass_obj
def cat(
    st: State,
    path: str,
    query: str | None,
    version: int | None,
    time_start: str | None,
    time_end: str | None,
    fmt: str | None,
    timeout: float | None,
    memory_limit: int | None,
) -> None:
    """Raw bytes of a file, or a table/series/query result."""
    from ..query.urls import is_host

    pond = None if is_host(path) else st.open()
    if pond is not None and query is None and fmt in (None, "raw") and pond.is_raw(path):
        if fmt is None and sys.stdout.isatty():
            if pond.node_type(path).startswith("dir:"):
                raise InvalidPathError(f"is a directory: {path}")
        sys.stdout.buffer.write(pond.read_bytes(path, version))
        sys.stdout.flush()
        return
    if fmt == "raw":
        raise PondUsageError(
            "--format raw is for raw files; tables print as table/csv/json/parquet"
        )
    from . import render

    fmt = fmt or ("table" if sys.stdout.isatty() else "parquet")
    window = (time_start, time_end)
    if fmt == "parquet":  # to a file or pipe: streamed, in bounded memory whatever its size
        if pond is None:  # a host URL: the query layer alone (no pond, storage or steward)
            from ..query.sources import stream_source

            batches = stream_source(path, None, None, query, version, window, timeout, memory_limit)
        else:
            batches = pond.read_batches(
                path, query, version, window, timeout=timeout, memory_limit=memory_limit
            )
        render.batches(batches, fmt)
        return
    # CSV, JSON, a table: a small result is written without loading pyarrow (query/rows.py)
    if pond is None:
        from ..query.sources import read_for_output

        result = read_for_output(path, None, None, query, version, window, timeout, memory_limit)
    else:
        result = pond.read_for_output(
            path, query, version, window, timeout=timeout, memory_limit=memory_limit
        )
    from ..query.rows import Rows

    if isinstance(result, Rows):
        render.small(result, fmt)
    elif fmt != "table":  # streamed, in bounded memory whatever its size
        render.batches(result, fmt)
    else:
        render.table(render.collect(result), fmt)
