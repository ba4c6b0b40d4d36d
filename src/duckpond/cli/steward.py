"""`pond control` (recent, detail, incomplete, --sql), `recover`, `rebuild-control`,
`maintain`, `fsck` and `retention`: the steward's record and the pond's upkeep."""

from __future__ import annotations

import sys

import click

from ..errors import PondError, PondUsageError
from .app import FORMATS, State, cli, query_limits


@cli.group(invoke_without_command=True)
@click.option("--sql", "query", help="SQL over `control_table`.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "parquet"]),
    default="table",
    help="table or json; an --sql result also csv or parquet, as `cat` prints.",
)
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
    if query is None and fmt in ("csv", "parquet"):
        raise PondUsageError(
            f"--format {fmt} is for --sql results; summaries print as table or json"
        )
    if query is not None:
        if ctx.invoked_subcommand is not None:
            raise PondUsageError("--sql is used on its own, without a subcommand")
        from . import render

        render.table(
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
@click.option(
    "--collapse-versions",
    "collapse",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="First fold each series with more than N live versions into one (docs/series.md).",
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def maintain(st: State, retention_hours: float | None, collapse: int | None, fmt: str) -> None:
    """Compact, checkpoint and clean both tables and the blob store."""
    from . import render

    pond = st.open()
    # collapsing first lets this run's compaction take in the new versions
    folded = pond.collapse_versions(collapse, args=st.argv) if collapse is not None else None
    report = pond.maintain(retention_hours=retention_hours)
    if fmt == "json":
        out = report.to_json()
        if folded is not None:
            out["collapse"] = folded.to_json()
        render.print_json(out)
    else:
        render.maintain(report)
        if folded is not None:
            render.console().print(folded.line(), markup=False)


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
        render.fsck(result)
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
