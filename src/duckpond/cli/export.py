"""`pond export`: publish series and tables for other engines (see export/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .app import State, cli, s3_options

if TYPE_CHECKING:
    from ..storage.objstore import StoreOptions


@cli.command(name="export")
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@click.option(
    "--dir",
    "out_dir",
    required=True,
    metavar="DIR",
    help="A directory, file:///dir or s3://bucket/prefix.",
)
@click.option(
    "--temporal",
    metavar="PARTS",
    help="Partition by UTC time: a prefix of year,month,day,hour (default year,month), or none.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "delta"]),
    default="parquet",
    help="Hive-partitioned Parquet files, or one Delta table per series.",
)
@click.option("--rebuild", is_flag=True, help="Rewrite every series, changed or not.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@s3_options
@click.pass_obj
def export_cmd(
    st: State,
    patterns: tuple[str, ...],
    out_dir: str,
    temporal: str | None,
    fmt: str,
    rebuild: bool,
    as_json: bool,
    options: StoreOptions,
) -> None:
    """Write the series and tables matching PATTERN... into DIR, read at one pond version;
    series unchanged since the last export into DIR are left as they are."""
    report = st.open().export(
        list(patterns), out_dir, format=fmt, temporal=temporal, options=options, rebuild=rebuild
    )
    if as_json:
        from . import render

        render.print_json(report.to_json())
        return
    for s in report.series:
        if s.status == "removed":
            click.echo(f"removed    {s.path}")
            continue
        parts = f", {s.partitions} partitions" if s.partitions else ""
        click.echo(f"{s.status:<10} {s.path}: {s.rows} rows, {s.files} files{parts} -> {s.target}")
    click.echo(f"pond txn_seq {report.txn_seq} in {report.dir} ({report.format})")
