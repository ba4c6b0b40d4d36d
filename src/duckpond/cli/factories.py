"""`pond mknod`, `run`, `apply` and `list-factories`: factory nodes and declared state."""

from __future__ import annotations

import click

from ..errors import PondError
from .app import FORMATS, State, cli


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
    from ..apply import apply as apply_docs
    from . import render

    plan = apply_docs(st.open(), list(files), dry_run=dry_run, args=st.argv, vars=st.vars)
    if fmt == "json":
        render.print_json([p.to_json() for p in plan])
    else:
        render.apply_plan(plan, dry_run)


@cli.command(name="list-factories")
@click.option("--format", "fmt", type=FORMATS, default="table")
def list_factories(fmt: str) -> None:
    """The registered factories: name, kind, the package that provides it, what it does."""
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
    else:
        render.factories(facs)
