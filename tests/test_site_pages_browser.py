"""A Markdown page of the built site in headless Chromium (see test_site_browser.py): it is
reached from the index's nav, shows its stored <script> as text without running it, and its
link to a series opens that series' chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, INSTALL
from site_pond import make_pond
from test_site_browser import Page, wait_drawn
from test_site_pages import PAGES, add_notes

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL)


def test_markdown_page_opens_from_the_nav_and_links_to_a_series_chart(
    browser: Any, tmp_path: Path
) -> None:
    pond, _ = make_pond(tmp_path / "pond")
    add_notes(pond)
    out = tmp_path / "site"
    pond.site_build(out, {"title": "Wells", "series": ["/wells/*"], "pages": PAGES})
    p = Page(browser, out)
    dialogs: list[str] = []
    p.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page = p.open("index.html")
    page.click("header nav a:text('Wells & notes')")
    page.wait_for_load_state("load")
    assert page.url == (out / "pages/about.html").as_uri()
    assert page.locator("article h1").inner_text() == "Wells & notes"
    assert 'alert("stored")' in page.locator("article").inner_text()
    assert page.evaluate("document.querySelectorAll('article script').length") == 0
    assert page.locator("article td").all_inner_texts() == ["north", "m"]
    page.click("article a:text('North')")
    wait_drawn(page)
    assert page.url.partition("#")[0] == (out / "series/wells_north.html").as_uri()
    assert dialogs == []  # no stored script ran
    p.close()
