"""`pond` commands (SPEC §7). Each command parses its arguments, calls the library, renders."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from .. import nodes, paths
from ..errors import InvalidPathError, PondError, PondUsageError
from ..factories import registry
from ..pond import Pond, pond_path_from_env, register_source
from ..query import limits, output
from ..query.urls import parse_source
from . import keep_pandas_out, render

FORMATS = click.Choice(["table", "json"])


class State:
    def __init__(self, pond: str | None, vars: dict[str, str], wait: float) -> None:
        self.pond_arg = pond
        self.vars = vars
        self.wait = wait
        self.argv = ["pond", *sys.argv[1:]]

    def path(self) -> Path:
        return pond_path_from_env(self.pond_arg)

    def open(self) -> Pond:
        return Pond.open(self.path(), wait=self.wait)


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        if "=" not in v:
            raise PondUsageError(f"--var wants KEY=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k] = val
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--pond", "pond_path", metavar="PATH", help="The pond directory (else $POND).")
@click.option(
    "-v",
    "--var",
    "vars_",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template variable, recorded with the transaction (repeatable).",
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for another writer's lock instead of failing.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(
    ctx: click.Context, pond_path: str | None, vars_: tuple[str, ...], wait: float, quiet: bool
) -> None:
    """pond: a versioned, SQL-queryable data store on Delta Lake."""
    _setup_logging(quiet)
    ctx.obj = State(pond_path, _parse_vars(vars_), wait)


def _setup_logging(quiet: bool) -> None:
    class Fmt(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            msg = record.getMessage()
            return f"warning: {msg}" if record.levelno >= logging.WARNING else msg

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Fmt())
    logger = logging.getLogger("pond")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


# -- pond init / mkdir ------------------------------------------------------------------------
@cli.command()
@click.pass_obj
def init(st: State) -> None:
    """Create a pond (error if one exists)."""
    pond = Pond.create(st.path(), wait=st.wait, args=st.argv)
    logging.getLogger("pond").info("created pond at %s", pond.root)


@cli.command()
@click.option("-p", "--parents", is_flag=True, help="Make parents; no error if it exists.")
@click.argument("path")
@click.pass_obj
def mkdir(st: State, parents: bool, path: str) -> None:
    """Create a directory."""
    pond = st.open()
    with pond.transaction(st.argv, st.vars) as tx:
        tx.mkdir(path, parents=parents)


# -- pond copy --------------------------------------------------------------------------------
@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.argument("dest")
@click.option("--time-column", help="The event-time column of a series (else detected).")
@click.pass_obj
def copy(st: State, sources: tuple[str, ...], dest: str, time_column: str | None) -> None:
    """Copy host files into the pond, or pond files out to a host directory.

    \b
    host -> pond:  pond copy host:///data/a.csv host+csv+table:///data/b.csv /dir/
    pond -> host:  pond copy '/dir/**' host:///tmp/out
    """
    if dest.startswith("host"):
        _copy_out(st, sources, dest)
        return
    parsed = [parse_source(s) for s in sources]
    for s in parsed:
        if s.scheme != "host":
            raise PondUsageError(
                f"copy into the pond reads host files: use host:///abs/path, not {s.path!r}"
            )
    pond = st.open()
    dest_norm = paths.normalize(dest)
    with pond.transaction(st.argv, st.vars) as tx:
        into_dir = (
            dest.endswith("/")
            or len(parsed) > 1
            or (tx.exists(dest_norm) and _is_dir(pond, dest_norm))
        )
        if len(parsed) > 1 and not (tx.exists(dest_norm) and _is_dir(pond, dest_norm)):
            raise InvalidPathError(f"copying several files needs a directory: {dest_norm}")
        sizes = [_size(s.path) for s in parsed]
        targets = [
            paths.join(dest_norm, Path(s.path).name) if into_dir else dest_norm for s in parsed
        ]
        for i, target in enumerate(targets):
            if target in targets[:i]:
                raise InvalidPathError(f"two sources would be copied to {target}")
        with _progress(sum(sizes)) as advance:
            for s, size, target in zip(parsed, sizes, targets, strict=True):
                if s.fmt == "raw" and not s.compression:
                    tx.write_host_file(target, s.path, progress=advance)
                else:
                    _copy_in(tx, s, target, time_column)
                    advance(size)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _is_dir(pond: Pond, path: str) -> bool:
    loc = pond.lookup(path)
    return loc is not None and nodes.is_dir(loc.file_type)


def _copy_in(tx: Any, s: Any, target: str, time_column: str | None) -> None:
    series = s.entry == "series"
    if s.fmt == "csv":
        if s.entry is None:
            raise PondUsageError("say how to store a CSV: host+csv+table:// or host+csv+series://")
        tx.write_csv_file(
            target, s.path, series=series, time_column=time_column, compression=s.compression
        )
    elif s.fmt in ("table", "series") or s.entry in ("table", "series"):
        tx.write_parquet_file(
            target,
            s.path,
            series=series or s.fmt == "series",
            time_column=time_column,
            compression=s.compression,
        )
    else:
        if s.compression:
            from ..query import ingest

            tx.write_bytes(target, ingest.read_host_bytes(s.path, s.compression))
        else:
            tx.write_host_file(target, s.path)


class _progress:
    """A byte-count progress bar on a terminal for large copies; silent otherwise."""

    MIN_BYTES = 16 << 20

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if self.total >= self.MIN_BYTES and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("copying"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=render.err_console(),
                transient=True,
            )
            self.bar.start()
            task = self.bar.add_task("copying", total=self.total)
            return lambda n: self.bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _copy_out(st: State, patterns: tuple[str, ...], dest: str) -> None:
    target = parse_source(dest)
    if target.scheme != "host" or target.fmt != "raw":
        raise PondUsageError(f"copy out of the pond goes to host:///dir, not {dest}")
    pond = st.open()
    out_dir = Path(target.path)
    count = 0
    for pattern in patterns:
        prefix = paths.compile_glob(pattern).literal_prefix
        matches = pond.list(pattern)
        if not matches:
            raise PondError(f"no pond files match {pattern}")
        for e in matches:
            if not e.type.startswith("file:"):
                continue
            if nodes.is_dynamic(e.type) and pond.derived(e.path) is None:
                continue  # an executor factory's node: a job, not data
            rel = e.path[len(prefix) :].lstrip("/") if e.path != prefix else Path(e.path).name
            host = out_dir / rel
            host.parent.mkdir(parents=True, exist_ok=True)
            if nodes.is_series(e.type) and e.version > 1:
                # a series is the union of its versions, not its latest one
                host.write_bytes(output.to_parquet_bytes(pond.read_table(e.path)))
            else:
                host.write_bytes(pond.read_bytes(e.path))
            count += 1
    logging.getLogger("pond").info("copied %d file(s) to %s", count, out_dir)


# -- pond list / describe / cat ---------------------------------------------------------------
@cli.command(name="list")
@click.option("-l", "long", is_flag=True, help="Show type, version and size.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.argument("pattern", required=False, default="/**/*")
@click.pass_obj
def list_(st: State, long: bool, fmt: str, pattern: str) -> None:
    """Entries matching a glob (default: everything)."""
    entries = st.open().list(pattern)
    if fmt == "json":
        render.print_json([e.to_json() for e in entries])
        return
    for e in entries:
        if long:
            click.echo(f"{e.type:<22} v{e.version:<5} {e.size:>12}  {e.path}")
        else:
            click.echo(e.path)


@cli.command()
@click.argument("path")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def describe(st: State, path: str, fmt: str) -> None:
    """Type, size, schema and versions of a pond file."""
    if path.startswith("host"):
        from ..query import sql

        ctx = sql.make_context()
        register_source(ctx, path, None)
        table = sql.run_sql(ctx, "SELECT * FROM source LIMIT 0")
        d: dict[str, Any] = {
            "path": path,
            "type": "host",
            "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        }
    else:
        d = st.open().describe(parse_source(path).path)
    if fmt == "json":
        render.print_json(d)
        return
    c = render.console()
    c.print(f"[bold]{d['path']}[/bold]  {d['type']}  {render.human_size(d.get('size', 0))}")
    if d.get("factory"):
        c.print(f"factory: {d['factory']}")
    if d.get("schema"):
        c.print("schema:")
        for f in d["schema"]:
            c.print(f"  {f['name']}: {f['type']}")
    if d.get("versions"):
        c.print("versions:")
        for v in d["versions"]:
            span = ""
            if v.get("min_event_time"):
                span = f"  events {v['min_event_time']} .. {v['max_event_time']}"
            c.print(
                f"  v{v['version']}  txn {v['txn_seq']}  {v['timestamp']}  "
                f"{render.human_size(v['size'])}{span}"
            )


def parse_time(value: str | None) -> int | None:
    """ISO 8601 (UTC unless an offset is given) or an integer of µs since the epoch."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PondUsageError(f"not a time: {value!r} (use ISO 8601 or µs since epoch)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000)


def query_limits(f: Any) -> Any:
    """`--timeout` and `--memory-limit` (SPEC §7), parsed to seconds/bytes (None = no limit)."""
    f = click.option(
        "--memory-limit",
        metavar="SIZE",
        default=limits.format_size(limits.DEFAULT_MEMORY_LIMIT),
        show_default=True,
        callback=lambda _c, _p, v: limits.parse_size(v),
        help="Memory a query may use (512M, 2G; 0 = no limit); beyond it, spill or fail.",
    )(f)
    return click.option(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=limits.DEFAULT_TIMEOUT,
        show_default=True,
        callback=lambda _c, _p, v: limits.check_timeout(v),
        help="Seconds a query may run (0 = no limit).",
    )(f)


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
    src = parse_source(path)
    pond = None if src.scheme == "host" else st.open()
    t0, t1 = parse_time(time_start), parse_time(time_end)
    if pond is not None and src.scheme == "pond" and query is None and fmt in (None, "raw"):
        ftype = pond.node_type(src.path)
        if not (nodes.is_table(ftype) or nodes.is_series(ftype)):
            if fmt is None and sys.stdout.isatty() and nodes.is_dir(ftype):
                raise InvalidPathError(f"is a directory: {paths.normalize(src.path)}")
            sys.stdout.buffer.write(pond.read_bytes(src.path, version))
            sys.stdout.flush()
            return
    if fmt == "raw":
        raise PondUsageError(
            "--format raw is for raw files; tables print as table/csv/json/parquet"
        )
    from ..query import sql

    ctx = sql.make_context(memory_limit)
    register_source(ctx, path, pond, version, t0, t1)
    table = sql.run_sql(ctx, query or "SELECT * FROM source", timeout)
    fmt = fmt or ("table" if sys.stdout.isatty() else "parquet")
    if fmt == "table":
        output.print_table(table, render.console())
    elif fmt == "csv":
        sys.stdout.buffer.write(output.to_csv_bytes(table))
    elif fmt == "json":
        sys.stdout.write(output.to_json_text(table).rstrip("\n") + "\n")
    else:
        sys.stdout.buffer.write(output.to_parquet_bytes(table))
    sys.stdout.flush()


# -- factories --------------------------------------------------------------------------------
@cli.command()
@click.argument("factory")
@click.argument("path")
@click.option(
    "--config-path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The factory's YAML config on the host.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing node.")
@click.pass_obj
def mknod(st: State, factory: str, path: str, config_path: str, overwrite: bool) -> None:
    """Create a factory node from a YAML config (validated first)."""
    try:
        config = Path(config_path).read_bytes()
    except FileNotFoundError:
        raise PondError(f"no such config file: {config_path}") from None
    st.open().mknod(factory, path, config, overwrite=overwrite, args=st.argv, vars=st.vars)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("path")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(st: State, path: str, args: tuple[str, ...]) -> None:
    """Run a factory node's job in one write transaction."""
    st.open().run(path, list(args), args=st.argv, vars=st.vars)


@cli.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A YAML file of documents (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def apply(st: State, files: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """Declare directories, copies and factory nodes in YAML; one transaction, idempotent."""
    from ..apply import apply as apply_docs

    plan = apply_docs(st.open(), list(files), dry_run=dry_run, args=st.argv, vars=st.vars)
    if fmt == "json":
        render.print_json([p.to_json() for p in plan])
        return
    for p in plan:
        click.echo(f"{p.action:<10} {p.kind:<6} {p.path}")
    changed = sum(p.action != "unchanged" for p in plan)
    if dry_run:
        logging.getLogger("pond").info("dry run: %d change(s) planned, nothing written", changed)
    elif not changed:
        logging.getLogger("pond").info("everything unchanged: nothing committed")


@cli.command(name="list-factories")
@click.option("--format", "fmt", type=FORMATS, default="table")
def list_factories(fmt: str) -> None:
    """The registered factories and what each does."""
    facs = registry.all_factories()
    if fmt == "json":
        render.print_json(
            [{"name": f.name, "kind": f.kind, "description": f.description} for f in facs]
        )
        return
    for f in facs:
        render.console().print(f"[bold]{f.name}[/bold] ({f.kind})\n    {f.description}")


# -- control / recover / rebuild / maintain ---------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--sql", "query", help="SQL over `control_table`.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, help="How many transactions (recent)."
)
@query_limits
@click.pass_context
def control(
    ctx: click.Context,
    query: str | None,
    fmt: str,
    limit: int,
    timeout: float | None,
    memory_limit: int | None,
) -> None:
    """Transaction summaries, newest last (see the subcommands)."""
    ctx.ensure_object(State)
    ctx.meta["control_fmt"] = fmt
    if query is not None:
        if ctx.invoked_subcommand is not None:
            raise PondUsageError("--sql is used on its own, without a subcommand")
        from ..steward.queries import control_sql

        table = control_sql(ctx.obj.open(), query, timeout, memory_limit)
        if fmt == "json":
            sys.stdout.write(output.to_json_text(table).rstrip("\n") + "\n")
        else:
            output.print_table(table, render.console())
        return
    if ctx.invoked_subcommand is None:
        ctx.invoke(recent, limit=limit, fmt=fmt)


def _fmt(ctx: click.Context, fmt: str | None) -> str:
    return fmt or ctx.meta.get("control_fmt") or "table"


@control.command()
@click.option("--limit", type=click.IntRange(min=0), default=20)
@click.option("--format", "fmt", type=FORMATS, default=None)
@click.pass_context
def recent(ctx: click.Context, limit: int, fmt: str | None) -> None:
    """The latest write transactions with their post-commit tasks."""
    pond = ctx.obj.open()
    txns = pond.control_recent(limit)
    if _fmt(ctx, fmt) == "json":
        render.print_json(txns)
    else:
        render.control_recent(txns, pond.identity())


@control.command()
@click.option("--txn-seq", type=int, required=True)
@click.option("--format", "fmt", type=FORMATS, default=None)
@click.pass_context
def detail(ctx: click.Context, txn_seq: int, fmt: str | None) -> None:
    """The full lifecycle of one transaction and its tasks."""
    d = ctx.obj.open().control_detail(txn_seq)
    if _fmt(ctx, fmt) == "json":
        render.print_json(d)
    else:
        render.control_detail(d)


@control.command()
@click.option("--format", "fmt", type=FORMATS, default=None)
@click.pass_context
def incomplete(ctx: click.Context, fmt: str | None) -> None:
    """What a crash left unfinished."""
    d = ctx.obj.open().control_incomplete()
    if _fmt(ctx, fmt) == "json":
        render.print_json(d)
    else:
        render.control_incomplete(d)


@cli.command()
@click.option("--retry-failed", is_flag=True, help="Also re-run failed post-commit tasks.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def recover(st: State, retry_failed: bool, fmt: str) -> None:
    """Finish what crashes interrupted."""
    report = st.open().recover(retry_failed=retry_failed)
    if fmt == "json":
        render.print_json(report)
        return
    if not report["transactions"] and not report["tasks"]:
        render.console().print("nothing to recover")
    for t in report["transactions"]:
        render.console().print(f"txn {t['txn_seq']}: {t['action']}")
    for t in report["tasks"]:
        render.console().print(
            f"task {t['parent_txn_seq']}.{t['execution_seq']} {t['config_path']} "
            f"attempt {t['attempt']}: {render.status(t['outcome'].split()[0])}"
            + (t["outcome"][len(t["outcome"].split()[0]) :])
        )


@cli.command(name="rebuild-control")
@click.option("--force", is_flag=True, help="Move an existing control table aside first.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def rebuild_control(st: State, force: bool, fmt: str) -> None:
    """Rebuild a lost control table from the data table."""
    from ..steward.rebuild import rebuild_control as rebuild

    report = rebuild(st.path(), force=force, wait=st.wait)
    if fmt == "json":
        render.print_json(report)
        return
    for line in report["messages"]:
        render.console().print(line)


@cli.command()
@click.option(
    "--retention-hours",
    type=float,
    default=1.0,
    show_default=True,
    help="Keep files replaced within this window for readers still using them.",
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def maintain(st: State, retention_hours: float, fmt: str) -> None:
    """Checkpoint, compact and clean both tables."""
    report = st.open().maintain(retention_hours=retention_hours)
    if fmt == "json":
        render.print_json(report)
    else:
        for k, v in report.items():
            render.console().print(f"{k}: {json.dumps(v)}")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and end the process without interpreter teardown.

    Native libraries (deltalake, DataFusion) keep runtime threads that, destroyed during
    interpreter shutdown, occasionally abort the process ("terminate called without an
    active exception", exit 134) after the command's work is done. Every exit path flushes
    the standard streams and leaves with os._exit, so the exit code is always the command's.
    """
    try:
        _run(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    else:
        code = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _run(argv: list[str] | None) -> None:
    keep_pandas_out()
    try:
        cli.main(args=argv, prog_name="pond", standalone_mode=False)
    except click.UsageError as e:
        if type(e).__name__.startswith("NoArgsIsHelp"):
            click.echo(e.ctx.get_help() if e.ctx else e.format_message())
            sys.exit(0)
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except PondError as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # A closed pipe (`pond cat ... | head`) is not an error worth a trace.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except OSError as e:
        click.echo(
            f"error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": "), err=True
        )
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - the last resort still prints one line
        if os.environ.get("POND_DEBUG"):
            raise
        click.echo(
            f"error: internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            " (POND_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)
