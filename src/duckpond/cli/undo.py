"""`pond rm`, `mv`, `revert`, `diff` and `log`: undo and move (each one library call)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from .app import FORMATS, State, cli, log

if TYPE_CHECKING:
    from ..steward.undo import EntryDiff, VersionDiff


@cli.command()
@click.option("-r", "--recursive", is_flag=True, help="Remove directories and all below them.")
@click.argument("targets", nargs=-1, required=True)
@click.pass_obj
def rm(st: State, recursive: bool, targets: tuple[str, ...]) -> None:
    """Remove files, factory nodes, jobs and (-r) directories; earlier versions stay
    readable and `pond revert` puts them back."""
    seq = st.open().rm(list(targets), recursive=recursive, args=st.argv, vars=st.vars)
    log().info("removed %d path(s) in txn %d", len(targets), seq)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Replace a file at the destination.")
@click.argument("src")
@click.argument("dst")
@click.pass_obj
def mv(st: State, force: bool, src: str, dst: str) -> None:
    """Move or rename a file, directory or factory node (its versions go with it)."""
    st.open().mv(src, dst, overwrite=force, args=st.argv, vars=st.vars)


@cli.command()
@click.option(
    "--force", is_flag=True, help="Revert even when later transactions changed the same nodes."
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.argument("txn_seq", type=int)
@click.pass_obj
def revert(st: State, force: bool, fmt: str, txn_seq: int) -> None:
    """Undo what one earlier user transaction did, in a new transaction."""
    result = st.open().revert(txn_seq, force=force, args=st.argv, vars=st.vars)
    if fmt == "json":
        from . import render

        render.print_json(dataclasses.asdict(result))
        return
    click.echo(f"txn {result.txn_seq} reverts txn {result.reverted}")
    _changes(result.entries, result.versions)


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.argument("start", type=int)
@click.argument("end", type=int, required=False)
@click.pass_obj
def diff(st: State, fmt: str, start: int, end: int | None) -> None:
    """What changed from transaction START to END (default: the newest)."""
    d = st.open().diff(start, end)
    if fmt == "json":
        from . import render

        render.print_json(dataclasses.asdict(d))
        return
    click.echo(f"txn {d.start} -> {d.end}")
    _changes(d.entries, d.versions)


@cli.command(name="log")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.argument("path")
@click.pass_obj
def log_cmd(st: State, fmt: str, path: str) -> None:
    """The transactions that touched PATH, newest first, with their command lines."""
    entries = st.open().log(path)
    if fmt == "json":
        from . import render

        render.print_json([dataclasses.asdict(e) for e in entries])
        return
    for e in entries:
        job = f" (job of txn {e.post_commit_of})" if e.post_commit_of is not None else ""
        click.echo(f"txn {e.txn_seq}  {e.time or ''}  {' '.join(e.command)}{job}")
        for c in e.changes:
            click.echo(f"    {c}")


def _changes(entries: list[EntryDiff], versions: list[VersionDiff]) -> None:
    for e in entries:
        moved = f" (from {e.from_path})" if e.from_path else ""
        click.echo(f"{e.kind:<9} {e.path}{moved}  {e.file_type}")
    for v in versions:
        if v.reverts is not None:
            what = f"drops version(s) {', '.join(map(str, v.reverts))}"
        else:
            rows = f", {v.rows} rows" if v.rows is not None else ""
            what = f"{v.size} B{rows}"
        click.echo(f"version   {v.path} v{v.version} (txn {v.txn_seq}): {what}")
