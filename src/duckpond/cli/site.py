"""`pond site build`: the pond's static, offline web site (see site/)."""

from __future__ import annotations

import click

from .app import FORMATS, State, cli


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
        from . import render

        render.site_report(report)
