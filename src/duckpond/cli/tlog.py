"""`pond tlog show` and `pond tlog verify`: the tamper-evident transaction log."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .app import FORMATS, State, cli

if TYPE_CHECKING:
    from ..storage.tlogcheck import TlogReport, TlogShow

SHORT = 16  # hex digits of a leaf hash or root shown in the table (JSON has them whole)


@cli.group()
def tlog() -> None:
    """The tamper-evident log: a Merkle tree over every data commit."""


def _show_table(s: TlogShow) -> None:
    click.echo(f"tree size {s.size}, root {s.root}")
    if s.unrecorded:
        click.echo(
            f"{s.unrecorded} newer transaction(s) not in the log yet (written before it was "
            "kept; the next write records them)"
        )
    if not s.leaves:
        return
    click.echo(f"{'leaf':>6}  {'txn_seq':>8}  {'version':>8}  {'leaf hash':<{SHORT}}  root")
    for leaf in s.leaves:
        h = leaf.leaf[:SHORT] if leaf.leaf else "-"
        r = leaf.root[:SHORT] if leaf.root else "(before the log)"
        click.echo(f"{leaf.index:>6}  {leaf.txn_seq:>8}  {leaf.data_version:>8}  {h:<{SHORT}}  {r}")


@tlog.command(name="show")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def tlog_show(st: State, fmt: str) -> None:
    """The newest tree head and every leaf, as the commits recorded them."""
    s = st.open().tlog_show()
    if fmt == "json":
        from . import render

        render.print_json(s.to_json())
    else:
        _show_table(s)


def _verdict(r: TlogReport) -> None:
    for note in r.notes:
        click.echo(f"note: {note}")
    if r.ok:
        click.echo(f"intact: {r.size} transaction(s), root {r.root}")
    else:
        click.echo(f"tampered: {r.problem}")


@tlog.command(name="verify")
@click.option("--remote", "remote", default=None, help="Check this remote's copy instead.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def tlog_verify(st: State, remote: str | None, fmt: str) -> None:
    """Recompute the tree from the data; exit 1 naming the first changed transaction."""
    r = st.open().tlog_verify(remote)
    if fmt == "json":
        from . import render

        render.print_json(r.to_json())
    else:
        _verdict(r)
    if not r.ok:
        sys.exit(1)
