"""`pond` commands (SPEC §7). Each command parses its arguments, calls the library, renders."""

from __future__ import annotations

import errno
import functools
import gc
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import InvalidPathError, PondError, PondUsageError
from ..query import limits
from . import keep_pandas_out

if TYPE_CHECKING:
    import logging
    from pathlib import Path

    from ..pond import Pond
    from ..storage.objstore import StoreOptions

# Only click is imported up front: pyarrow, deltalake, DataFusion, numpy and yaml load when
# a command needs them, so `pond --help` and `pond list` start fast (bench group `startup`).

FORMATS = click.Choice(["table", "json"])


class State:
    def __init__(self, pond: str | None, vars: dict[str, str], wait: float) -> None:
        self.pond_arg = pond
        self.vars = vars
        self.wait = wait
        self.argv = ["pond", *sys.argv[1:]]

    def path(self) -> Path:
        from ..pond import pond_path_from_env

        return pond_path_from_env(self.pond_arg)

    def open(self) -> Pond:
        from ..pond import Pond

        return Pond.open(self.path(), wait=self.wait)


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        if "=" not in v:
            raise PondUsageError(f"--var wants KEY=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k] = val
    return out


class _BrokenPipe(Exception):
    """An EPIPE carried past click (which would exit 1 without a word), with whether it
    was stdout's reader that left (`pond cat ... | head`)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.stdout_closed = _stdout_closed()


class PondGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise _BrokenPipe(e) from None
            raise


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports POLLERR on it), so an
    EPIPE elsewhere (a socket, a child's pipe) stays an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


@click.group(cls=PondGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pond", message="%(prog)s %(version)s")
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


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("pond")


def _setup_logging(quiet: bool) -> None:
    import logging

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
    from ..pond import Pond

    pond = Pond.create(st.path(), wait=st.wait, args=st.argv)
    _log().info("created pond at %s", pond.root)


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
    from ..query.urls import is_host, parse_source

    if is_host(dest):
        target = parse_source(dest)
        if target.fmt != "raw":
            raise PondUsageError(f"copy out of the pond goes to host:///dir, not {dest}")
        written = st.open().copy_out(sources, target.path)
        _log().info("copied %d file(s) to %s", len(written), target.path)
        return
    total = 0
    for s in sources:
        src = parse_source(s)
        if src.scheme == "host":
            try:
                total += os.stat(src.path).st_size
            except OSError:
                pass
    with _progress(total) as advance:
        st.open().copy_in(
            sources, dest, time_column=time_column, args=st.argv, vars=st.vars, progress=advance
        )


class _progress:
    """A byte-count progress bar on a terminal for large copies; silent otherwise."""

    MIN_BYTES = 16 << 20

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if self.total >= self.MIN_BYTES and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            from . import render

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
        from . import render

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
    from ..pond import describe_source
    from ..query.urls import is_host
    from . import render

    d = describe_source(path, None if is_host(path) else st.open())
    if fmt == "json":
        render.print_json(d.to_json())
    else:
        render.describe(d)


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
    from ..pond import read_source
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
    table = read_source(
        path,
        pond,
        sql=query,
        version=version,
        time_range=(time_start, time_end),
        timeout=timeout,
        memory_limit=memory_limit,
    )
    _print_table(table, fmt or ("table" if sys.stdout.isatty() else "parquet"))


def _print_table(table: Any, fmt: str) -> None:
    from ..query import output

    if fmt == "table":
        from . import render

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
        with open(config_path, "rb") as f:
            config = f.read()
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
    import logging

    from ..apply import apply as apply_docs
    from . import render

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
    from ..factories import registry
    from . import render

    facs = registry.listing()  # a plugin that fails to load: one warning line, left out
    if fmt == "json":
        render.print_json(
            [
                {"name": f.name, "kind": f.kind, "package": pkg, "description": f.description}
                for f, pkg in facs
            ]
        )
        return
    for f, pkg in facs:
        render.console().print(f"[bold]{f.name}[/bold] ({f.kind}, {pkg})\n    {f.description}")


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
        _print_table(
            ctx.obj.open().control_sql(query, timeout=timeout, memory_limit=memory_limit), fmt
        )
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
    from . import render

    if _fmt(ctx, fmt) == "json":
        render.print_json([t.to_json() for t in txns])
    else:
        render.control_recent(txns, pond.identity())


@control.command()
@click.argument("seq", type=int, required=False, metavar="[TXN_SEQ]")
@click.option("--txn-seq", type=int, default=None, help="The same, as an option.")
@click.option("--format", "fmt", type=FORMATS, default=None)
@click.pass_context
def detail(ctx: click.Context, seq: int | None, txn_seq: int | None, fmt: str | None) -> None:
    """The full lifecycle of one transaction and its tasks: `detail N` or `--txn-seq N`."""
    if (seq is None) == (txn_seq is None):
        raise PondUsageError("give the transaction number once: `detail N` or `--txn-seq N`")
    d = ctx.obj.open().control_detail(seq if txn_seq is None else txn_seq)
    from . import render

    if _fmt(ctx, fmt) == "json":
        render.print_json(d.to_json())
    else:
        render.control_detail(d)


@control.command()
@click.option("--format", "fmt", type=FORMATS, default=None)
@click.pass_context
def incomplete(ctx: click.Context, fmt: str | None) -> None:
    """What a crash left unfinished."""
    d = ctx.obj.open().control_incomplete()
    from . import render

    if _fmt(ctx, fmt) == "json":
        render.print_json(d.to_json())
    else:
        render.control_incomplete(d)


@cli.command()
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also re-run failed post-commit tasks (exit 1 when one fails again).",
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def recover(st: State, retry_failed: bool, fmt: str) -> None:
    """Finish what crashes interrupted."""
    from . import render

    report = st.open().recover(retry_failed=retry_failed)
    if fmt == "json":
        render.print_json(report.to_json())
    else:
        render.recover(report)
    if retry_failed and report.failed:
        # Asked to retry: a task that failed again is this command's failure (exit 1).
        t = report.failed[0]
        more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
        raise PondError(
            f"task {t.parent_txn_seq}.{t.execution_seq} {t.config_path} failed again "
            f"(attempt {t.attempt}): {t.error}{more}"
        )


@cli.command(name="rebuild-control")
@click.option("--force", is_flag=True, help="Move an existing control table aside first.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def rebuild_control(st: State, force: bool, fmt: str) -> None:
    """Rebuild a lost control table from the data table."""
    from ..pond import Pond
    from . import render

    report = Pond.open(st.path(), wait=st.wait).rebuild_control(force=force)
    if fmt == "json":
        render.print_json(report.to_json())
        return
    for line in report.messages:
        render.console().print(line)


@cli.command()
@click.option(
    "--retention-hours",
    type=float,
    default=None,
    help="Keep unreferenced files younger than this (default: the pond's retention window).",
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def maintain(st: State, retention_hours: float | None, fmt: str) -> None:
    """Compact, checkpoint and clean both tables and the blob store."""
    from . import render

    report = st.open().maintain(retention_hours=retention_hours)
    if fmt == "json":
        render.print_json(report.to_json())
    else:
        render.maintain(report)


@cli.command()
@click.option("--repair", is_flag=True, help="Repair what is safe and say what was lost.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def fsck(st: State, repair: bool, fmt: str) -> None:
    """Check every log entry, live file and blob, and the data/control agreement.

    Exits 1 when problems were found and not all of them were repaired."""
    from . import render

    result = st.open().fsck(repair=repair)
    if fmt == "json":
        render.print_json(result.to_json())
    else:
        out = render.console()
        for p in result.problems:
            state = f" [repaired: {p.action}]" if p.repaired else ""
            if p.action and not p.repaired:
                state = f" [not repaired: {p.action}]"
            out.print(f"{p.table} {p.kind}: {p.message}{state}", markup=False)
            for path in p.paths:
                out.print(f"  {path}", markup=False)
            if p.txn_seqs:
                out.print(f"  txn_seq {', '.join(map(str, p.txn_seqs))}", markup=False)
        for line in result.lost:
            out.print(f"lost: {line}", markup=False)
        if result.lost_found:
            out.print(f"damaged files moved to {result.lost_found}", markup=False)
        for line in result.notes:
            out.print(line, markup=False)
        fixed = sum(p.repaired for p in result.problems)
        out.print(
            "no problems found"
            if not result.problems
            else f"{len(result.problems)} problem(s), {fixed} repaired",
            markup=False,
        )
    if not result.ok:
        sys.exit(1)  # click swallows Exit codes outside standalone mode


@cli.command()
@click.argument("seconds", type=float, required=False)
@click.pass_obj
def retention(st: State, seconds: float | None) -> None:
    """Show or set the retention window: how many seconds files no version needs any
    more stay on disk for readers still using them (default 3600)."""
    pond = st.open()
    if seconds is not None:
        pond.set_retention(seconds)
    click.echo(f"{pond.retention():g}")


# -- remotes: backup / remote / push / pull / restore / verify / status (issue 8) ------------
def s3_options(f: Any) -> Any:
    """The S3 connection options of `backup add`, `remote add` and `restore`, handed to
    the command as one `options: StoreOptions`."""

    @functools.wraps(f)
    def command(
        *args: Any,
        endpoint: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        allow_http: bool,
        timeout: float | None,
        **kwargs: Any,
    ) -> Any:
        from ..storage.objstore import StoreOptions

        options = StoreOptions(
            endpoint, region, access_key_id, secret_access_key, allow_http, timeout
        )
        return f(*args, options=options, **kwargs)

    for decorator in reversed(
        [
            click.option("--endpoint", help="S3 endpoint URL (MinIO, R2, a local server)."),
            click.option("--region", help="S3 region."),
            click.option("--access-key-id", help="S3 access key id (or ${env:NAME})."),
            click.option(
                "--secret-access-key",
                metavar="${env:NAME}",
                help="S3 secret: an ${env:NAME} reference, resolved at use, never stored.",
            ),
            click.option("--allow-http", is_flag=True, help="Allow plain http to the endpoint."),
            click.option(
                "--timeout",
                type=float,
                metavar="SECONDS",
                help="Seconds each S3 request may take before it fails (default 30).",
            ),
        ]
    ):
        command = decorator(command)
    return command


class _transfer_bar:
    """A rich progress bar on stderr for pushes, pulls and restores, on a terminal only."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        from . import render

        self.bar = Progress(
            TextColumn(self.label),
            BarColumn(),
            DownloadColumn(),
            console=render.err_console(),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=None)

        def update(done: int, total: int) -> None:
            self.bar.update(self.task, completed=done, total=total or None)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_transfers(transfers: list[Any], fmt: str) -> None:
    from . import render

    if fmt == "json":
        render.print_json([t.to_json() for t in transfers])
        return
    for t in transfers:
        click.echo(t.message())


def _print_remotes(infos: list[Any], fmt: str) -> None:
    from . import render

    if fmt == "json":
        render.print_json([r.to_json() for r in infos])
        return
    if not infos:
        _log().info("no remotes")
        return
    rows = [("NAME", "URL", "MODE", "MOUNT", "PUSHED", "PULLED")]
    for r in infos:
        rows.append(
            (
                r.name,
                r.url,
                r.mode,
                r.mount or "-",
                "-" if r.pushed_txn_seq is None else str(r.pushed_txn_seq),
                "-" if r.pulled_txn_seq is None else str(r.pulled_txn_seq),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for r in infos:
        if r.last_error:
            _log().warning("%s: last error: %s", r.name, r.last_error)


@cli.group()
def backup() -> None:
    """Backups: remotes this pond pushes to after every write."""


@backup.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--bidirectional", is_flag=True, help="Also `pond pull` from this backup.")
@s3_options
@click.pass_obj
def backup_add(
    st: State,
    name: str,
    url: str,
    bidirectional: bool,
    options: StoreOptions,
) -> None:
    """Attach a backup (file:///dir or s3://bucket/prefix) and push the whole pond."""
    pond = st.open()
    with _transfer_bar("pushing") as progress:
        transfer = pond.backup_add(
            name,
            url,
            bidirectional=bidirectional,
            options=options,
            progress=progress,
            args=st.argv,
            vars=st.vars,
        )
    if transfer is not None:
        click.echo(transfer.message())
    mark = next((r for r in pond.remote_list() if r.name == name), None)
    seq = "-" if mark is None or mark.pushed_txn_seq is None else mark.pushed_txn_seq
    _log().info("backup %s attached: %s (pushed up to txn_seq %s)", name, url, seq)


@backup.command(name="list")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def backup_list(st: State, fmt: str) -> None:
    """The backups (push-mode remotes) and their watermarks."""
    _print_remotes(st.open().remote_list(push_only=True), fmt)


@cli.group()
def remote() -> None:
    """Remotes: backups, mirrors and imported ponds."""


@remote.command(name="add")
@click.argument("name")
@click.argument("url")
@click.argument("path")
@s3_options
@click.pass_obj
def remote_add(
    st: State,
    name: str,
    url: str,
    path: str,
    options: StoreOptions,
) -> None:
    """Attach a pull-mode remote: PATH / follows this pond's own backup (read-only
    mirror); any other PATH imports another pond read-only there (after `pond pull`)."""
    att = st.open().remote_add(
        name,
        url,
        path,
        options=options,
        args=st.argv,
        vars=st.vars,
    )
    what = "mirror of /" if att.mount == "/" else f"import at {att.mount}"
    _log().info("remote %s attached (%s); `pond pull %s` fetches it", name, what, name)


@remote.command(name="list")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def remote_list(st: State, fmt: str) -> None:
    """Every remote: NAME, URL, MODE, MOUNT, last pushed and pulled txn_seq."""
    _print_remotes(st.open().remote_list(), fmt)


@remote.command(name="remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also remove an import's mount and local copy.")
@click.pass_obj
def remote_remove(st: State, name: str, purge: bool) -> None:
    """Detach a remote (the remote itself is left as it is)."""
    st.open().remote_remove(name, purge=purge, args=st.argv, vars=st.vars)
    _log().info("remote %s removed", name)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def push(st: State, name: str | None, fmt: str) -> None:
    """Push to the backups (or NAME) what they lack; idempotent."""
    with _transfer_bar("pushing") as progress:
        transfers = st.open().push(name, progress=progress)
    _print_transfers(transfers, fmt)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def pull(st: State, name: str | None, fmt: str) -> None:
    """Fast-forward from the pull-mode remotes (or NAME); idempotent."""
    with _transfer_bar("pulling") as progress:
        transfers = st.open().pull(name, progress=progress)
    _print_transfers(transfers, fmt)


@cli.command()
@click.argument("name")
@click.argument("url")
@s3_options
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def restore(
    st: State,
    name: str,
    url: str,
    options: StoreOptions,
    fmt: str,
) -> None:
    """Create the pond at $POND (absent or empty) from a backup; NAME stays attached as
    a read-only mirror (`pond pull NAME` follows it)."""
    from ..pond import Pond

    with _transfer_bar("restoring") as progress:
        _pond, transfer = Pond.restore(
            st.path(),
            name,
            url,
            options=options,
            progress=progress,
            wait=st.wait,
        )
    _print_transfers([transfer], fmt)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def verify(st: State, name: str | None, fmt: str) -> None:
    """Compare local and remote content; exit 1 on a mismatch (behind is OK)."""
    from . import render

    results = st.open().verify(name)
    if fmt == "json":
        render.print_json([v.to_json() for v in results])
    else:
        for v in results:
            for status, message in v.report.lines:
                click.echo(f"[{status}] {v.name}: {message}")
    if not all(v.ok for v in results):
        sys.exit(1)


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def status(st: State, fmt: str) -> None:
    """Pond id, last txn_seq, unfinished work, remotes and their watermarks (local only)."""
    from . import render

    s = st.open().status()
    if fmt == "json":
        render.print_json(s.to_json())
        return
    click.echo(f"pond {s.pond_id}")
    click.echo(f"last txn_seq {s.last_txn_seq}")
    # A mirror's unfinished rows are its source's (recorded before that push ended): only
    # the source can finish them, so `pond recover` (refused here) is no hint.
    hint = " (the source's; a later pull brings them)" if s.mirror_of else " (`pond recover`)"
    click.echo(f"incomplete {s.incomplete}" + (hint if s.incomplete else ""))
    if s.mirror_of:
        click.echo(f"read-only mirror of {s.mirror_of}")
    if s.remotes:
        click.echo("")
        _print_remotes(s.remotes, "table")
# -- pond site --------------------------------------------------------------------------------
@cli.group()
def site() -> None:
    """A static, offline web site of the pond."""


@site.command(name="build")
@click.argument("out_dir", metavar="OUTDIR")
@click.option("--config", "config_path", metavar="FILE", help="A site.yaml (else defaults).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def site_build(st: State, out_dir: str, config_path: str | None, fmt: str) -> None:
    """Write the site to OUTDIR (only files earlier builds wrote are replaced): charts, status."""
    report = st.open().site_build(out_dir, config_path)
    if fmt == "json":
        import json

        click.echo(json.dumps(report.to_json()))
    else:
        n = len(report.series)
        click.echo(f"{report.out_dir}/index.html ({n} series, {report.bytes} bytes)")


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
    from ..query.limits import remove_spill_dirs

    remove_spill_dirs()  # os._exit skips atexit: no query's spill files outlive it
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _run(argv: list[str] | None) -> None:
    keep_pandas_out()
    # A command that lists or reads many entries allocates an object or more per entry;
    # with the default thresholds the cyclic GC walks them (and every module's objects)
    # over and over: ~20 % of `pond list '/**'` over 100,000 files (bench 11b).
    gc.set_threshold(50_000, 20, 10)
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
    except (_BrokenPipe, BrokenPipeError) as e:
        if not (e.stdout_closed if isinstance(e, _BrokenPipe) else _stdout_closed()):
            click.echo(f"error: {e}", err=True)  # another pipe (a child's, a socket)
            sys.exit(1)
        # The reader stopped reading (`pond cat ... | head`): it has what it wanted, so
        # exit 0, quietly (pipefail scripts do not fail on it); the rest is discarded.
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
