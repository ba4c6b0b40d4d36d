"""`site.yaml`: what the static site shows. Unknown keys are refused (a typo is an error)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import FactoryError, PondUsageError

PRESETS = ("1D", "1W", "1M", "1Y", "All")
TIME_ZONES = ("UTC", "viewer")
DEFAULT_TARGET_POINTS = 1_500
KEYS = (
    "title",
    "series",
    "labels",
    "units",
    "default_range",
    "time_zone",
    "target_points",
    "status_page",
    "charts",
    "pages",
)


@dataclass(frozen=True)
class Panel:
    title: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ChartRule:
    """How the series a glob matches are charted (`charts:` in site.yaml; site/panels.py)."""

    glob: str
    columns: tuple[str, ...] | None = None  # what to chart (None: the default rule)
    panels: tuple[Panel, ...] = ()
    units: dict[str, str] = field(default_factory=dict)  # column -> unit

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"units": dict(sorted(self.units.items()))}
        if self.columns is not None:
            out["columns"] = list(self.columns)
        if self.panels:
            out["panels"] = [{"title": p.title, "columns": list(p.columns)} for p in self.panels]
        return out


@dataclass(frozen=True)
class PageSpec:
    """One `pages:` entry: Markdown file(s) of the pond shown as pages of the site."""

    path: str  # a pond path or glob of .md files
    title: str | None = None  # else the first heading, else the file name
    slug: str | None = None  # the page's file name in the site (pages/SLUG.html)
    nav: bool = True  # listed in every page's header

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "title": self.title, "slug": self.slug, "nav": self.nav}


# A slug is one file name: no separators, no dots (so no `..`), nothing to escape.
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class SiteConfig:
    title: str = "pond"
    series: tuple[str, ...] = ("/**/*",)  # pond globs of the series to chart
    labels: dict[str, str] = field(default_factory=dict)  # pond path -> label
    units: dict[str, str] = field(default_factory=dict)  # pond path -> unit
    default_range: str = "All"  # one of PRESETS
    time_zone: str = "UTC"  # UTC | viewer (the browser's zone)
    target_points: int = DEFAULT_TARGET_POINTS
    status_page: bool = True
    charts: tuple[ChartRule, ...] = ()  # the first rule whose glob matches a series applies
    pages: tuple[PageSpec, ...] = ()  # Markdown pages from the pond (site/pages.py)

    def chart_rule(self, path: str) -> ChartRule | None:
        from .. import paths

        return next((r for r in self.charts if paths.compile_glob(r.glob).match(path)), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "series": list(self.series),
            "labels": dict(sorted(self.labels.items())),
            "units": dict(sorted(self.units.items())),
            "default_range": self.default_range,
            "time_zone": self.time_zone,
            "target_points": self.target_points,
            "status_page": self.status_page,
            "charts": {r.glob: r.to_json() for r in self.charts},
            "pages": [p.to_json() for p in self.pages],
        }


def parse(
    raw: dict[str, Any], what: str = "site config", extra: tuple[str, ...] = ()
) -> SiteConfig:
    """A SiteConfig from a parsed YAML mapping; keys in `extra` are allowed and ignored
    (the sitegen factory's `out_dir`)."""
    from ..factories.base import Fields

    f = Fields(what, {k: v for k, v in raw.items() if k not in extra})
    title = f.get("title", str, "pond")
    series = f.get("series", (list, str), ["/**/*"])
    labels = f.get("labels", dict, {})
    units = f.get("units", dict, {})
    default_range = f.get("default_range", str, "All")
    time_zone = f.get("time_zone", str, "UTC")
    target = f.get("target_points", int, DEFAULT_TARGET_POINTS)
    status_page = f.get("status_page", bool, True)
    charts = f.get("charts", dict, {})
    pages = f.get("pages", list, [])
    f.done()
    if isinstance(series, str):
        series = [series]
    if not series or not all(isinstance(s, str) and s.startswith("/") for s in series):
        raise FactoryError(f"{what}: 'series' must list pond globs such as /sensors/*")
    for name, mapping in (("labels", labels), ("units", units)):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise FactoryError(f"{what}: '{name}' must map pond paths to text")
    if default_range not in PRESETS:
        raise FactoryError(
            f"{what}: 'default_range' must be one of {', '.join(PRESETS)}, got {default_range!r}"
        )
    if time_zone not in TIME_ZONES:
        raise FactoryError(f"{what}: 'time_zone' must be UTC or viewer, got {time_zone!r}")
    if not 10 <= target <= 100_000:
        raise FactoryError(f"{what}: 'target_points' must be between 10 and 100000")
    return SiteConfig(
        title=title,
        series=tuple(series),
        labels=dict(labels),
        units=dict(units),
        default_range=default_range,
        time_zone=time_zone,
        target_points=target,
        status_page=status_page,
        charts=tuple(_chart_rule(g, r, what) for g, r in charts.items()),
        pages=tuple(_page_spec(entry, f"{what}: pages[{i}]") for i, entry in enumerate(pages)),
    )


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise FactoryError(f"{what} must list column names")
    return tuple(value)


def _chart_rule(glob: Any, raw: Any, what: str) -> ChartRule:
    """One `charts:` entry: pond glob -> {columns, panels, units}."""
    from ..factories.base import Fields

    if not isinstance(glob, str) or not glob.startswith("/"):
        raise FactoryError(f"{what}: 'charts' keys must be pond globs such as /weather/*")
    if not isinstance(raw, dict):
        raise FactoryError(f"{what}: charts {glob} must map columns/panels/units")
    where = f"{what}: charts {glob}"
    f = Fields(where, raw)
    columns = f.get("columns", list, None)
    panels = f.get("panels", list, [])
    units = f.get("units", dict, {})
    f.done()
    out_panels = []
    for p in panels:
        if not isinstance(p, dict) or set(p) - {"title", "columns"} or "columns" not in p:
            raise FactoryError(f"{where}: each panel is {{title, columns}}")
        title = p.get("title")
        if title is not None and not isinstance(title, str):
            raise FactoryError(f"{where}: a panel's title must be text")
        names = _names(p["columns"], f"{where}: a panel's 'columns'")
        out_panels.append(Panel(title or ", ".join(names), names))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
        raise FactoryError(f"{where}: 'units' must map column names to text")
    return ChartRule(
        glob=glob,
        columns=None if columns is None else _names(columns, f"{where}: 'columns'"),
        panels=tuple(out_panels),
        units=dict(units),
    )


def _page_spec(entry: Any, what: str) -> PageSpec:
    """A `pages:` entry: a pond path (or glob), or a mapping with `path` and optional
    `title`, `slug` and `nav`."""
    from .. import paths
    from ..factories.base import Fields

    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise FactoryError(f"{what} must be a pond path or a mapping with 'path'")
    f = Fields(what, entry)
    path = f.get("path", str, required=True)
    title = f.get("title", str, None)
    slug = f.get("slug", str, None)
    nav = f.get("nav", bool, True)
    f.done()
    if not path.startswith("/"):
        raise FactoryError(f"{what}: 'path' must be a pond path or glob such as /notes/*.md")
    if paths.has_glob(path) and (title is not None or slug is not None):
        raise FactoryError(f"{what}: 'title' and 'slug' name one page: not with a glob ({path})")
    if slug is not None and not _SLUG.match(slug):
        raise FactoryError(
            f"{what}: 'slug' must be letters, digits, '-' and '_' (one file name), got {slug!r}"
        )
    return PageSpec(path=path, title=title, slug=slug, nav=nav)


def load(path: str | None) -> SiteConfig:
    """The config in a host YAML file (None: the defaults)."""
    if path is None:
        return SiteConfig()
    from ..factories.base import parse_config

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise PondUsageError(f"cannot read site config {path}: {e.strerror or e}") from None
    return parse(parse_config(raw, f"site config {path}"), f"site config {path}")
