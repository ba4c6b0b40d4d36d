"""The built site in a real browser: Debian's headless Chromium driven by Playwright.

Every page is opened over file:// with every request outside the site blocked (and the
test fails if any was made). Skipped, saying how to install it, where Chromium is missing.
One browser for the whole module; screenshots go to the pytest temp dir.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, INSTALL
from site_pond import make_pond

from duckpond.pond import Pond

LINE_COLOR = (0x1F, 0x77, 0xB4)  # the first series colour (builder.PALETTE[0])

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("browser")
    pond, seq = make_pond(base / "pond")
    out = base / "site"
    pond.site_build(out)
    shots = base / "screenshots"
    shots.mkdir()
    return {"pond": pond, "seq": seq, "out": out, "shots": shots}


class Page:
    """A page opened over file:// with outside requests blocked and errors collected."""

    def __init__(self, browser: Any, out: Path, **context: Any) -> None:
        self.out = out
        self.ctx = browser.new_context(viewport={"width": 1100, "height": 760}, **context)
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.out.as_uri() + "/"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, name: str) -> Any:
        self.page.goto(f"{self.out.as_uri()}/{name}")
        return self.page

    def data_requests(self) -> list[str]:
        return [u for u in self.requests if "/data/" in u]

    def close(self) -> None:
        assert self.outside == [], f"requests outside the site: {self.outside}"
        assert self.errors == [], f"console or page errors: {self.errors}"
        self.ctx.close()


@pytest.fixture
def opened(browser: Any, site: dict[str, Any]) -> Iterator[Page]:
    page = Page(browser, site["out"], accept_downloads=True)
    yield page
    page.close()


def wait_drawn(page: Any) -> None:
    page.wait_for_function("window.pondSite && (pondSite.drawn || pondSite.errors.length)")
    assert page.evaluate("pondSite.errors") == []


def wait_view(page: Any, n: int) -> dict[str, Any]:
    page.wait_for_function(f"pondSite.views.length >= {n} && pondSite.idle()")
    view: dict[str, Any] = page.evaluate("pondSite.views[pondSite.views.length - 1]")
    return view


def line_pixels(png: bytes) -> int:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(
        1
        for px in img.get_flattened_data()
        if all(abs(a - b) < 40 for a, b in zip(px, LINE_COLOR, strict=True))
    )


def test_every_page_loads_offline_and_each_series_page_draws(
    browser: Any, site: dict[str, Any]
) -> None:
    out: Path = site["out"]
    pages = [
        "index.html",
        "status.html",
        *sorted(f"series/{p.name}" for p in (out / "series").iterdir()),
    ]
    for name in pages:
        p = Page(browser, out)
        page = p.open(name)
        if name.startswith("series/"):
            wait_drawn(page)
            png = page.locator("#chart").screenshot()
            assert line_pixels(png) > 300, f"{name}: no line drawn"
        else:
            page.wait_for_load_state("load")
        page.screenshot(path=str(site["shots"] / (name.replace("/", "-") + ".png")))
        p.close()


def test_index_lists_series_with_last_values(opened: Page) -> None:
    page = opened.open("index.html")
    rows = page.locator("#series tbody tr")
    assert rows.count() == 2
    text = rows.nth(1).inner_text()
    assert "/wells/north" in text and "level = " in text and "2024-01-10 23:59:00 UTC" in text
    page.click("a[href='series/wells_north.html']")
    wait_drawn(page)
    assert "series/wells_north.html" in page.url


def test_status_page_lists_a_known_transaction_and_a_failed_job(
    opened: Page, site: dict[str, Any]
) -> None:
    page = opened.open("status.html")
    row = page.locator(f'tr[data-txn-seq="{site["seq"]}"]')
    assert row.count() == 1 and "pond copy north" in row.inner_text()
    failed = page.locator("#failed tbody tr").first.inner_text()
    assert "/etc/system.d/20-notify" in failed and "intentionally failed" in failed
    assert page.locator("#incomplete").inner_text() == "Nothing unfinished."


def test_zoom_switches_tier_loading_at_most_two_files(opened: Page, site: dict[str, Any]) -> None:
    page = opened.open("series/wells_north.html")
    wait_drawn(page)
    first = wait_view(page, 1)
    assert first["tier"] == "1h" and len(first["files"]) == 1  # 10 days: the 1h tier
    assert len(opened.data_requests()) == 1
    page.click("button[data-preset='1D']")
    view = wait_view(page, 2)
    assert view["tier"] == "raw" and 1 <= len(view["files"]) <= 2
    assert len(opened.data_requests()) == 1 + len(view["files"])
    page.screenshot(path=str(site["shots"] / "zoom-1D.png"))
    # a brush (box zoom) by mouse over a few hours: still the raw tier, <= 2 files
    box = page.locator("#chart canvas").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
    page.mouse.up()
    zoomed = wait_view(page, 3)
    assert zoomed["to"] - zoomed["from"] < view["to"] - view["from"]
    assert zoomed["tier"] == "raw" and len(zoomed["files"]) <= 2
    page.click("button[data-preset='All']")
    back = wait_view(page, 4)
    assert back["tier"] == "1h"
    views = page.evaluate("pondSite.views")
    assert all(len(v["files"]) <= 2 for v in views)


def test_csv_download_is_the_visible_rows(opened: Page, site: dict[str, Any]) -> None:
    page = opened.open("series/wells_north.html")
    wait_drawn(page)
    page.click("button[data-preset='1W']")
    view = wait_view(page, 2)
    assert view["tier"] == "1h"
    with page.expect_download() as info:
        page.click("#csv")
    rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))
    assert (
        rows[0] == ["timestamp", "level.avg", "level.max", "level.min"] or rows[0][0] == "timestamp"
    )
    lo, hi = int(view["from"] * 1000), int(view["to"] * 1000)
    pond: Pond = site["pond"]
    want = pond.sql(
        f"SELECT * FROM source WHERE epoch_us(timestamp) >= {lo} "
        f"AND epoch_us(timestamp) <= {hi} ORDER BY timestamp",
        path="/reduced/north/res=1h.series",
    ).to_pylist()
    got = rows[1:]
    assert len(got) == len(want) > 100
    cols = rows[0][1:]
    for g, w in zip(got, want, strict=True):
        t = dt.datetime.fromisoformat(g[0].replace("Z", "+00:00"))
        assert t == w["timestamp"]
        assert [float(v) for v in g[1:]] == [w[c] for c in cols]
    assert len(got) == page.evaluate("pondSite.visibleRows().length")


def test_view_link_reproduces_the_view(opened: Page, site: dict[str, Any]) -> None:
    page = opened.open("series/wells_north.html")
    wait_drawn(page)
    page.click("button[data-preset='1D']")
    view = wait_view(page, 2)
    href = page.get_attribute("#view-link", "href")
    assert href and href.startswith("#from=")
    other = opened.ctx.new_page()
    other.goto(f"{site['out'].as_uri()}/series/wells_north.html{href}")
    wait_drawn(other)
    again = wait_view(other, 1)
    assert (again["from"], again["to"], again["tier"]) == (view["from"], view["to"], view["tier"])
    other.close()


def test_manifest_json_is_what_the_page_uses(site: dict[str, Any]) -> None:
    page = (site["out"] / "series" / "wells_north.html").read_text()
    assert json.loads(page.split('id="manifest">', 1)[1].split("</script>", 1)[0])["tiers"]


def test_viewer_time_zone_and_default_range(browser: Any, site: dict[str, Any]) -> None:
    """time_zone: viewer shifts the axis to the browser's zone; windows stay in UTC."""
    out = site["out"].parent / "site-viewer"
    site["pond"].site_build(
        out, {"time_zone": "viewer", "default_range": "1W", "target_points": 200}
    )
    p = Page(browser, out, timezone_id="Asia/Kolkata")
    page = p.open("series/wells_north.html")
    wait_drawn(page)
    view = wait_view(page, 1)
    manifest = page.evaluate("pondSite.manifest")
    last = manifest["last_ms"]
    assert (view["from"], view["to"]) == (last - 7 * 86_400_000, last)
    assert view["tier"] == "1h" and len(view["files"]) <= 2  # 168 h within 200 points
    assert len(p.data_requests()) == len(view["files"])  # loaded with the page, once each
    # the axis shows Kolkata time: the x range is UTC + 5:30
    x_end = page.evaluate("Bokeh.documents[0].roots()[0].x_range.end")
    assert x_end - last == 5.5 * 3_600_000
    page.screenshot(path=str(site["shots"] / "viewer-time-zone.png"))
    p.close()


def test_chart_follows_the_window_width(opened: Page) -> None:
    page = opened.open("series/wells_north.html")
    wait_drawn(page)
    wide = page.locator("#chart canvas").first.bounding_box()["width"]
    page.set_viewport_size({"width": 420, "height": 760})  # a phone
    page.wait_for_function(
        "document.querySelector('#chart').getBoundingClientRect().width < 420 && "
        "Bokeh.documents[0].roots()[0].width < 420"
    )
    # the canvas (in Bokeh's shadow root) follows when it is drawn at the new width
    canvas = page.locator("#chart canvas").first
    deadline = time.monotonic() + 60
    while (narrow := canvas.bounding_box()["width"]) >= 420 and time.monotonic() < deadline:
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert narrow < 420 < wide
    assert line_pixels(page.locator("#chart").screenshot()) > 100
