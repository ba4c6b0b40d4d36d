"""Markdown pages from the pond in the static site (`pages:` in site.yaml), without a
browser: the exact HTML written (escaped HTML, rewritten links, the nav), the warnings,
refused configs leaving the site as it was, and rebuilds rewriting a page only when its
Markdown or the series change. The page in Chromium is in test_site_pages_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_pond
from site_pond import make_pond

from duckpond.pond import Pond

ABOUT = """\
# Wells & notes

The north well is [North](/wells/north), hourly in [its tier](/reduced/north/res=1h.series).
<script>alert("stored")</script>

[run me](javascript:alert(1)) [lost](/wells/south) [next](more.md#top) [web](https://example.org/a?b=1)

## Levels

| well | unit |
|---|---|
| north | m |
"""
MORE = "# More\n\nBack to [the notes](/notes/about.md#levels).\n"
ABOUT_BODY = (
    '<article class="page" data-pond-path="/notes/about.md">\n'
    '<h1 id="wells-notes">Wells &amp; notes</h1>\n'
    '<p>The north well is <a href="../series/wells_north.html">North</a>, hourly in '
    '<a href="../series/wells_north.html">its tier</a>.\n'
    "&lt;script&gt;alert(&quot;stored&quot;)&lt;/script&gt;</p>\n"
    '<p>[run me](javascript:alert(1)) lost <a href="notes_more.html#top">next</a> '
    '<a href="https://example.org/a?b=1">web</a></p>\n'
    '<h2 id="levels">Levels</h2>\n'
    "<table>\n<thead>\n<tr>\n<th>well</th>\n<th>unit</th>\n</tr>\n</thead>\n"
    "<tbody>\n<tr>\n<td>north</td>\n<td>m</td>\n</tr>\n</tbody>\n</table>\n"
    "</article>"
)
NAV = (
    '<nav><a href="{r}index.html">Series</a> <a href="{r}pages/about.html">Wells &amp; notes</a>'
    ' <a href="{r}pages/notes_more.html">More</a> <a href="{r}status.html">Status</a></nav>'
)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def add_notes(pond: Pond, about: str = ABOUT, more: str = MORE) -> None:
    with pond.transaction(args=["pond", "copy", "notes"]) as tx:
        tx.write_bytes("/notes/about.md", about.encode(), parents=True)
        tx.write_bytes("/notes/more.md", more.encode())


def write_config(path: Path, pages: list[object]) -> Path:
    path.write_text(yaml.safe_dump({"title": "Wells", "series": ["/wells/*"], "pages": pages}))
    return path


@pytest.fixture(scope="module")
def notes_pond(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages") / "pond"
    pond, _ = make_pond(root)
    add_notes(pond)
    with pond.transaction() as tx:
        tx.write_bytes("/notes/raw.txt", b"not markdown")
        tx.write_bytes("/notes/latin1.md", "caf\xe9".encode("latin-1"))
    return root


PAGES = [{"path": "/notes/about.md", "slug": "about"}, "/notes/m*.md"]


def test_cli_build_renders_markdown_pages_in_the_layout(notes_pond: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "site.yaml", PAGES)
    out = tmp_path / "site"
    proc = run_pond("site", "build", out, "--config", cfg, "--format", "json", pond=notes_pond)
    report = json.loads(proc.stdout)
    warning = (
        "/notes/about.md: link to /wells/south: not a charted series or a page of the site "
        "(shown as text)"
    )
    assert report["warnings"] == [warning]
    assert proc.stderr.decode().splitlines()[0] == f"warning: site: {warning}"
    assert report["series"] == ["/wells/north"]
    assert report["pages"] == 5  # index, status, one series page, two Markdown pages
    files = tree(out)
    about = files["pages/about.html"].decode()
    assert "<title>Wells &amp; notes · Wells</title>" in about
    assert ABOUT_BODY in about
    assert NAV.format(r="../") in about
    assert "<script>" not in about.replace('<script src="', "")
    more = files["pages/notes_more.html"].decode()
    assert '<p>Back to <a href="about.html#levels">the notes</a>.</p>' in more
    # every page of the site lists the Markdown pages in its header
    assert NAV.format(r="") in files["index.html"].decode()
    assert NAV.format(r="../") in files["series/wells_north.html"].decode()


def test_library_build_with_a_title_and_nav_false(notes_pond: Path, tmp_path: Path) -> None:
    pond = Pond.open(notes_pond)
    config = {
        "title": "Wells",
        "series": ["/wells/*"],
        "pages": [{"path": "/notes/more.md", "title": "Appendix", "nav": False}],
    }
    report = pond.site_build(tmp_path / "a", config)
    # about.md is a pond file, but no page of this site: the link to it is text
    assert report.warnings == [
        "/notes/more.md: link to /notes/about.md: not a charted series or a page of the site "
        "(shown as text)"
    ]
    files = tree(tmp_path / "a")
    more = files["pages/notes_more.html"].decode()
    assert "<title>Appendix · Wells</title>" in more
    assert "<p>Back to the notes.</p>" in more
    assert "pages/notes_more.html" not in files["index.html"].decode()  # nav: false


def test_rebuild_rewrites_a_page_only_when_its_markdown_or_the_series_change(
    tmp_path: Path,
) -> None:
    pond, _ = make_pond(tmp_path / "pond")
    add_notes(pond)
    cfg = write_config(tmp_path / "site.yaml", PAGES)
    out = tmp_path / "site"
    config = yaml.safe_load(cfg.read_text())
    pond.site_build(out, config)  # the first build and the third through the library
    ino = {n: (out / n).stat().st_ino for n in ("pages/about.html", "pages/notes_more.html")}
    proc = run_pond("site", "build", out, "--config", cfg, pond=tmp_path / "pond")
    assert " files unchanged, 0 written, 0 removed)" in proc.stderr.decode()

    with pond.transaction() as tx:
        tx.write_bytes("/notes/more.md", b"# More\n\nChanged.\n")
    pond.site_build(out, config)
    assert (out / "pages/about.html").stat().st_ino == ino["pages/about.html"]
    assert (out / "pages/notes_more.html").stat().st_ino != ino["pages/notes_more.html"]
    assert "<p>Changed.</p>" in (out / "pages/notes_more.html").read_text()

    # /wells/south becomes a charted series: the link to it is now a link
    from site_pond import minute_series

    with pond.transaction() as tx:
        tx.write_series("/wells/south", minute_series(1))
    proc = run_pond(
        "site", "build", out, "--config", cfg, "--format", "json", pond=tmp_path / "pond"
    )
    assert json.loads(proc.stdout)["warnings"] == []
    assert '<a href="../series/wells_south.html">lost</a>' in (out / "pages/about.html").read_text()


@pytest.mark.parametrize(
    ("pages", "error"),
    [
        (["/notes/gone.md"], "error: site pages: no such file in the pond: /notes/gone.md"),
        (
            ["/notes/*.markdown"],
            "error: site pages: /notes/*.markdown matches no Markdown file (.md)",
        ),
        (
            ["/notes/raw.txt"],
            "error: site pages: /notes/raw.txt is not a Markdown file (its name must end in .md)",
        ),
        (["/wells/north"], "error: site pages: /wells/north is not a Markdown file"),
        (["/notes"], "error: site pages: /notes is not a Markdown file"),
        (["/notes/latin1.md"], "error: site pages: /notes/latin1.md is not UTF-8 text"),
        (
            [{"path": "/notes/about.md", "slug": "../../etc/x"}],
            "error: site config {cfg}: pages[0]: 'slug' must be letters, digits, '-' and '_' "
            "(one file name), got '../../etc/x'",
        ),
        (
            [{"path": "/notes/*.md", "slug": "x"}],
            "error: site config {cfg}: pages[0]: 'title' and 'slug' name one page: not with a "
            "glob (/notes/*.md)",
        ),
        (
            [{"path": "/notes/about.md", "slug": "a"}, {"path": "/notes/more.md", "slug": "A"}],
            "error: site pages: two pages have the slug 'a'",
        ),
        (
            ["notes/about.md"],
            "error: site config {cfg}: pages[0]: 'path' must be a pond path or glob such as "
            "/notes/*.md",
        ),
        ([{"slug": "x"}], "error: site config {cfg}: pages[0]: config needs 'path'"),
        (
            [{"path": "/notes/about.md", "colour": "x"}],
            "error: site config {cfg}: pages[0]: unknown config key(s): colour",
        ),
    ],
)
def test_bad_pages_config_is_one_line_and_leaves_the_site(
    notes_pond: Path, tmp_path: Path, pages: list[object], error: str
) -> None:
    out = tmp_path / "site"
    # the last good site, built through the library (the CLI build has its own test): set-up
    good = write_config(tmp_path / "good.yaml", PAGES)
    Pond.open(notes_pond).site_build(out, yaml.safe_load(good.read_text()))
    before = tree(out)
    cfg = write_config(tmp_path / "bad.yaml", pages)
    proc = run_pond("site", "build", out, "--config", cfg, pond=notes_pond, check=1)
    assert proc.stderr.decode().strip() == error.format(cfg=cfg)
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
