"""`pond backup`, `remote`, `push`, `pull`, `restore`, `verify` and `status`: the pond's
remotes (see remotes/)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .app import FORMATS, State, cli, log, s3_options
from .progress import progress_bar

if TYPE_CHECKING:
    from ..remotes.info import RemoteInfo, Transfer
    from ..storage.objstore import StoreOptions


def _print_transfers(transfers: list[Transfer], fmt: str) -> None:
    from . import render

    if fmt == "json":
        render.print_json([t.to_json() for t in transfers])
    else:
        render.transfers(transfers)


def _print_remotes(infos: list[RemoteInfo], fmt: str) -> None:
    from . import render

    if fmt == "json":
        render.print_json([r.to_json() for r in infos])
    else:
        render.remotes(infos)


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
    with progress_bar("pushing") as bar:
        transfer = pond.backup_add(
            name,
            url,
            bidirectional=bidirectional,
            options=options,
            progress=bar.update if bar else None,
            args=st.argv,
            vars=st.vars,
        )
    if transfer is not None:
        click.echo(transfer.message())
    mark = next((r for r in pond.remote_list() if r.name == name), None)
    seq = "-" if mark is None or mark.pushed_txn_seq is None else mark.pushed_txn_seq
    log().info("backup %s attached: %s (pushed up to txn_seq %s)", name, url, seq)


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
    log().info("remote %s attached (%s); `pond pull %s` fetches it", name, what, name)


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
    log().info("remote %s removed", name)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def push(st: State, name: str | None, fmt: str) -> None:
    """Push to the backups (or NAME) what they lack; idempotent."""
    with progress_bar("pushing") as bar:
        transfers = st.open().push(name, progress=bar.update if bar else None)
    _print_transfers(transfers, fmt)


@cli.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def pull(st: State, name: str | None, fmt: str) -> None:
    """Fast-forward from the pull-mode remotes (or NAME); idempotent."""
    with progress_bar("pulling") as bar:
        transfers = st.open().pull(name, progress=bar.update if bar else None)
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

    with progress_bar("restoring") as bar:
        _pond, transfer = Pond.restore(
            st.path(),
            name,
            url,
            options=options,
            progress=bar.update if bar else None,
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
        render.verifications(results)
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
    else:
        render.pond_status(s)
