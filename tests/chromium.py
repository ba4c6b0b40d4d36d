"""Headless Chromium for the site's browser tests (test_site_browser.py,
test_site_pages_browser.py, test_site_panels.py): conftest.py makes `browser` a fixture
of every test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = (
    "headless Chromium is needed for the browser tests: apt-get install chromium "
    "(and pip install playwright, in the dev extras)"
)
# Chromium as the project runs it: no sandbox (root in CI), no network chatter of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one per test module (skipped without it)."""
    if CHROMIUM is None:
        pytest.skip(INSTALL)
    sync_api = pytest.importorskip("playwright.sync_api", reason=INSTALL)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
