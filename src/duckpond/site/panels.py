"""Which columns a series page charts, in which panel, in which colour.

A page has one panel (a chart of its own y axis) per unit, per group of the `charts:` rule of
site.yaml that matches the series, or, for columns without a unit, per group of columns
whose values are of comparable size. All panels share the time axis.

- Charted columns: the rule's `columns`; else, when the rule has `panels`, their columns;
  else every numeric column but the time column and calendar integers (an integer column
  named year, month, day, hour, minute, second, week, weekday, quarter, doy or dow, alone
  or as the first or last `_`/`.`/`-`/space-separated word of its name: `year`, `e_year`).
- Panels, in order: the rule's `panels`; then one per unit (a column's unit from the rule's
  `units`, else the series' unit from the top-level `units`), columns of one unit sharing
  it; then the columns left, grouped by size: a column joins the first panel where, with it,
  every line still spans at least half of the panel's value range (a line's range: the
  1st to 99th percentile of its values in the finest tier), at most 10 lines a panel.
- Colours: Category10 (Category20 for a panel of more than 10 lines; cycled past 20),
  distinct within a panel.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ChartRule, SiteConfig

if TYPE_CHECKING:
    from .collect import Series

log = logging.getLogger("pond")

CALENDAR = frozenset(
    ("year", "month", "day", "hour", "minute", "second", "week", "weekday", "quarter", "doy", "dow")
)
SHARE = 2.0  # each line of an automatic panel spans at least 1/SHARE of its value range
MAX_AUTO_LINES = 10
CATEGORY10 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
CATEGORY20 = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
    "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2",
    "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip


@dataclass
class _Group:
    title: str
    unit: str
    lines: list[str]
    auto: bool = False
    lo: float | None = None  # automatic panels: the value range of their lines
    hi: float | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)


def plan(s: Series, cfg: SiteConfig) -> list[dict[str, Any]]:
    """The panels of `s`'s page: [{title, unit, lines, colors}], lines being base columns."""
    rule = cfg.chart_rule(s.path)
    bases = s.bases
    charted = _charted(s, bases, rule)
    units = dict(rule.units) if rule else {}
    series_unit = cfg.units.get(s.path, "")
    groups: list[_Group] = []
    placed: set[str] = set()
    for p in rule.panels if rule else ():
        lines = [c for c in p.columns if c in bases and c not in placed]
        if lines:
            shared = {units.get(c, series_unit) for c in lines}
            groups.append(_Group(p.title, shared.pop() if len(shared) == 1 else "", lines))
            placed.update(lines)
    by_unit: dict[str, _Group] = {}
    rest: list[str] = []
    for c in charted:
        if c in placed:
            continue
        unit = units.get(c, series_unit)
        if not unit:
            rest.append(c)
        elif unit in by_unit:
            by_unit[unit].lines.append(c)
        else:
            by_unit[unit] = _Group(unit, unit, [c])
            groups.append(by_unit[unit])
    spans = _spans(s, rest)
    for c in rest:
        _place(groups, c, spans[c])
    if not groups:
        groups.append(_Group("", series_unit, []))
    out = []
    for g in groups:
        palette = CATEGORY10 if len(g.lines) <= len(CATEGORY10) else CATEGORY20
        title = g.title if not g.auto else _auto_title(g.lines)
        out.append(
            {
                "title": title,
                "unit": g.unit,
                "lines": g.lines,
                "colors": [palette[i % len(palette)] for i in range(len(g.lines))],
            }
        )
    return out


def _charted(s: Series, bases: list[str], rule: ChartRule | None) -> list[str]:
    if rule is not None and (rule.columns is not None or rule.panels):
        wanted = rule.columns if rule.columns is not None else [
            c for p in rule.panels for c in p.columns
        ]  # fmt: skip
        missing = [c for c in wanted if c not in bases]
        if missing:
            log.warning("site: %s has no column(s) %s to chart", s.path, ", ".join(missing))
        return [c for c in dict.fromkeys(wanted) if c in bases]
    integers = _integer_columns(s)
    out = [b for b in bases if not (b in integers and _calendar(b))]
    return out or bases  # nothing but calendar columns: chart them after all


def _calendar(name: str) -> bool:
    words = [w for w in re.split(r"[_.\s-]+", name.lower()) if w]
    return bool(words) and (words[0] in CALENDAR or words[-1] in CALENDAR)


def _integer_columns(s: Series) -> set[str]:
    import pyarrow as pa

    return {f.name for f in s.node.schema() if pa.types.is_integer(f.type)}


def _spans(s: Series, names: list[str]) -> dict[str, tuple[float, float] | None]:
    """Each column's 1st to 99th percentile in the finest tier that has it (None: no
    value); an outlier does not decide a panel."""
    import numpy as np

    out: dict[str, tuple[float, float] | None] = {}
    for name in names:
        out[name] = None
        for t in s.tiers:
            line = t.lines.get(name)
            if line is None:
                continue
            values = t.columns[line["mid"]]
            values = values[np.isfinite(values)]
            if len(values):
                lo, hi = np.percentile(values, [1, 99])
                out[name] = (float(lo), float(hi))
            break
    return out


def _place(groups: list[_Group], name: str, span: tuple[float, float] | None) -> None:
    for g in groups:
        if not g.auto or len(g.lines) >= MAX_AUTO_LINES:
            continue
        if span is None:
            g.lines.append(name)  # no values: it draws nothing anywhere
            return
        lo = span[0] if g.lo is None else min(g.lo, span[0])
        hi = span[1] if g.hi is None else max(g.hi, span[1])
        if _fits(g, span, lo, hi):
            g.lines.append(name)
            g.lo, g.hi = lo, hi
            g.spans.append(span)
            return
    g = _Group("", "", [name], auto=True)
    if span is not None:
        g.lo, g.hi = span
        g.spans.append(span)
    groups.append(g)


def _fits(g: _Group, span: tuple[float, float], lo: float, hi: float) -> bool:
    """Every line of `g`, and the new one, still spans 1/SHARE of [lo, hi] (a constant line
    fits where it does not widen the range)."""
    width = hi - lo
    if width == 0:
        return True
    return all(
        (b - a) * SHARE >= width or (a == b and g.lo is not None and lo == g.lo and hi == g.hi)
        for a, b in [*g.spans, span]
    )


def _auto_title(lines: list[str]) -> str:
    return ", ".join(lines[:3]) + (f" +{len(lines) - 3} more" if len(lines) > 3 else "")
