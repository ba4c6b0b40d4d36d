"""`pond set-temporal-bounds` and `pond detect-overlaps`: series over time (docs/series.md).
`pond maintain --collapse-versions N` is an option of `maintain` (cli/steward.py)."""

from __future__ import annotations

import click

from ..errors import PondUsageError
from .app import FORMATS, State, cli


@cli.command("set-temporal-bounds")
@click.argument("path")
@click.option("--min-time", help="Show no row before this time (ISO 8601 or µs since epoch).")
@click.option("--max-time", help="Show no row after this time (inclusive).")
@click.option("--clear", is_flag=True, help="Remove the bounds: show every row again.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def set_temporal_bounds(
    st: State, path: str, min_time: str | None, max_time: str | None, clear: bool, fmt: str
) -> None:
    """Limit what a stored series shows to [--min-time, --max-time], as a new version.

    The bounds replace any earlier ones (a bound not given is open) and stay in force
    after later appends; --clear removes them."""
    from . import render

    if clear and (min_time is not None or max_time is not None):
        raise PondUsageError("--clear takes no --min-time or --max-time")
    if not clear and min_time is None and max_time is None:
        raise PondUsageError("give --min-time and/or --max-time, or --clear")
    result = st.open().set_temporal_bounds(path, min_time, max_time, args=st.argv, vars=st.vars)
    if fmt == "json":
        render.print_json(result.to_json())
        return
    data = result.to_json()
    shown = f"{data['min_time'] or 'open'} .. {data['max_time'] or 'open'}"
    if result.min_time is None and result.max_time is None:
        shown = "none"
    what = f"version {result.version}" if result.changed else "unchanged"
    render.console().print(f"{result.path}: bounds {shown} ({what})", markup=False)


@cli.command("detect-overlaps")
@click.argument("patterns", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["summary", "full", "json"]),
    default="summary",
    help="summary: one line per series; full: also each pair of versions; json.",
)
@click.pass_obj
def detect_overlaps(st: State, patterns: tuple[str, ...], fmt: str) -> None:
    """Versions of stored series that cover the same times (re-ingested or duplicated
    data): the shared ranges, the rows in them, the timestamps both versions hold."""
    from . import render

    report = st.open().detect_overlaps(list(patterns))
    if fmt == "json":
        render.print_json(report.to_json())
        return
    c = render.console()
    for s in report.series:
        if not s.overlaps:
            c.print(f"{s.path}: {s.versions} version(s), no overlaps", markup=False)
            continue
        c.print(
            f"{s.path}: {s.versions} version(s), {len(s.overlaps)} overlap(s), "
            f"{s.overlapping_rows} row(s) in shared ranges",
            markup=False,
        )
        if fmt == "full":
            for o in s.overlaps:
                j = o.to_json()
                c.print(
                    f"  v{o.first} and v{o.second}: {j['start']} .. {j['end']}: "
                    f"{o.first_rows} and {o.second_rows} row(s), {o.same_times} same time(s)",
                    markup=False,
                )
