"""Markdown pages from the pond (`pages:` in site.yaml), rendered into the site's layout.

A page's Markdown is data, not code: raw HTML in it is escaped (never passed through: the
site must not run a stored page's scripts), and only links to the web (http, https,
mailto), to the page itself (#...) and to the pond survive. A link to a pond path becomes a
link to what the site shows for it: a charted series (or one of its tiers) links to the
series' page, another Markdown page to that page; any other pond path is a build warning
and is left as plain text. Pages depend only on their Markdown, the set of series and the
list of pages, so a rebuild rewrites a page only when one of these changed.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import nodes, paths
from ..errors import FactoryError, InvalidPathError, NotFoundError
from .config import SiteConfig

if TYPE_CHECKING:
    from markdown_it.token import Token

    from .collect import Series
    from .source import SiteSource

log = logging.getLogger("pond")

SUFFIXES = (".md", ".markdown")
WEB_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class Page:
    path: str  # the Markdown file's pond path
    slug: str  # written to pages/SLUG.html
    title: str
    nav: bool
    text: str  # the Markdown


@dataclass
class SitePages:
    pages: list[Page] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # filled while the pages are written

    def nav(self) -> list[dict[str, str]]:
        return [{"slug": p.slug, "title": p.title} for p in self.pages if p.nav]


def read(pond: SiteSource, cfg: SiteConfig) -> SitePages:
    """Every page the config names, read from the pond, in config order (a glob's matches
    sorted by path). A missing file, a glob matching no Markdown or a file that is not
    Markdown text is an error: the build stops before changing the site."""
    if not cfg.pages:
        return SitePages()
    from ..dynamic import Resolver
    from ..factories.live import LiveData

    resolver = Resolver.for_pond(pond)
    found: list[tuple[Any, Any]] = []  # (spec, node)
    seen: set[str] = set()
    for spec in cfg.pages:
        if paths.has_glob(spec.path):
            matches = [
                n
                for n in resolver.glob(spec.path, strict=False)
                if isinstance(n, LiveData) and n.path.lower().endswith(SUFFIXES)
            ]
            if not matches:
                raise NotFoundError(f"site pages: {spec.path} matches no Markdown file (.md)")
        else:
            node = resolver.lookup(paths.normalize(spec.path))
            if node is None:
                raise NotFoundError(f"site pages: no such file in the pond: {spec.path}")
            if not isinstance(node, LiveData) or nodes.is_dir(node.file_type):
                raise FactoryError(f"site pages: {node.path} is not a Markdown file")
            if not node.path.lower().endswith(SUFFIXES):
                raise FactoryError(
                    f"site pages: {node.path} is not a Markdown file (its name must end in .md)"
                )
            matches = [node]
        for n in sorted(matches, key=lambda n: str(n.path)):
            if n.path not in seen:
                seen.add(n.path)
                found.append((spec, n))
    return SitePages(_pages(found))


def _pages(found: list[tuple[Any, Any]]) -> list[Page]:
    """Name each page: an explicit slug first (two alike are an error), then slugs made
    from the pond paths, numbered where they would clash."""
    used = {spec.slug.lower(): spec for spec, _ in found if spec.slug}
    explicit = [spec.slug.lower() for spec, _ in found if spec.slug]
    if len(explicit) != len(set(explicit)):
        dup = next(s for s in explicit if explicit.count(s) > 1)
        raise FactoryError(f"site pages: two pages have the slug {dup!r}")
    out = []
    for spec, node in found:
        raw = node.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FactoryError(f"site pages: {node.path} is not UTF-8 text") from None
        slug = spec.slug
        if slug is None:
            base = _slug_of(node.path)
            slug, n = base, 2
            while slug.lower() in used:
                slug, n = f"{base}-{n}", n + 1
            used[slug.lower()] = spec
        title = spec.title or _first_heading(text) or paths.basename(node.path)
        out.append(Page(node.path, slug, title, spec.nav, text))
    return out


def _slug_of(path: str) -> str:
    """`/notes/about.md` -> `notes_about`: a file name of the same characters as a
    config's slug."""
    stem = re.sub(r"\.(md|markdown)$", "", path, flags=re.I).strip("/")
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-") or "page"


def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off: `<script>` in a page is shown as text, never run
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _first_heading(text: str) -> str | None:
    tokens = _markdown().parse(text)
    for i, t in enumerate(tokens):
        if t.type == "heading_open" and t.tag == "h1":
            return _plain(tokens[i + 1]) or None
    return None


def _plain(inline: Token) -> str:
    return "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))


def with_nav(env: Any, site_pages: SitePages) -> Any:
    """`env` whose templates render with the pages' nav entries (base.html lists them)."""
    return _NavEnv(env, site_pages.nav())


class _NavEnv:
    def __init__(self, env: Any, nav: list[dict[str, str]]) -> None:
        self.env = env
        self.nav = nav

    def get_template(self, name: str) -> _NavTemplate:
        return _NavTemplate(self.env.get_template(name), self.nav)


class _NavTemplate:
    def __init__(self, template: Any, nav: list[dict[str, str]]) -> None:
        self.template = template
        self.nav = nav

    def render(self, **context: Any) -> str:
        text: str = self.template.render(nav_pages=self.nav, **context)
        return text


def write(
    w: Any,
    env: Any,
    cfg: SiteConfig,
    site_pages: SitePages,
    series: list[Series],
    slugs: dict[str, str],
) -> int:
    """Write every page (pages/SLUG.html); return how many. Link warnings go to
    `site_pages.warnings` and the log."""
    targets: dict[str, str] = {}  # pond path -> the site file showing it, from pages/
    for s in series:
        targets[s.path] = f"../series/{slugs[s.path]}.html"
        for _, tier_path, _ in s.tier_nodes.values():
            targets.setdefault(tier_path, f"../series/{slugs[s.path]}.html")
    for p in site_pages.pages:
        targets[p.path] = f"{p.slug}.html"
    template = env.get_template("page.html")
    for p in site_pages.pages:
        body, warnings = render(p, targets)
        for message in warnings:
            log.warning("site: %s", message)
        site_pages.warnings.extend(warnings)
        w.write(
            f"pages/{p.slug}.html",
            template.render(
                title=cfg.title,
                root="../",
                status_page=cfg.status_page,
                page_title=p.title,
                path=p.path,
                body=body,
            ),
        )
    return len(site_pages.pages)


def render(page: Page, targets: dict[str, str]) -> tuple[str, list[str]]:
    """The page's HTML body and its warnings (links to nothing the site shows)."""
    md = _markdown()
    tokens = md.parse(page.text)
    warnings: list[str] = []
    ids: set[str] = set()
    for i, t in enumerate(tokens):
        if t.type == "heading_open":
            t.attrSet("id", _anchor(_plain(tokens[i + 1]), ids))
        if t.type == "inline" and t.children:
            t.children = _links(page, t.children, targets, warnings)
    html: str = md.renderer.render(tokens, md.options, {})
    return html, warnings


def _anchor(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _links(
    page: Page, children: list[Token], targets: dict[str, str], warnings: list[str]
) -> list[Token]:
    """Rewrite the links of one inline run; an image becomes a link to what it names
    (the site fetches nothing from outside itself)."""
    from markdown_it.token import Token

    out: list[Token] = []
    dropping = False
    for c in children:
        if c.type == "image":
            href = _target(page, str(c.attrGet("src") or ""), targets, warnings)
            alt = Token("text", "", 0, content=_plain(c) or str(c.attrGet("src")))
            if href is None:
                out.append(alt)
            else:
                out += [
                    Token("link_open", "a", 1, attrs={"href": href}),
                    alt,
                    Token("link_close", "a", -1),
                ]
        elif c.type == "link_open":
            href = _target(page, str(c.attrGet("href") or ""), targets, warnings)
            if href is None:
                dropping = True  # shown as its text
            else:
                c.attrSet("href", href)
                out.append(c)
        elif c.type == "link_close" and dropping:
            dropping = False
        else:
            out.append(c)
    return out


def _target(page: Page, href: str, targets: dict[str, str], warnings: list[str]) -> str | None:
    """Where a link of `page` goes in the site; None: dropped (and why, in `warnings`)."""
    if href.startswith("#") or href.startswith("//"):
        return href
    m = _SCHEME.match(href)
    if m:
        if m.group(1).lower() in WEB_SCHEMES:
            return href
        warnings.append(f"{page.path}: link to {href} dropped (only http, https and mailto links)")
        return None
    where, hash_, fragment = href.partition("#")
    where = urllib.parse.unquote(where.partition("?")[0])
    try:
        pond_path = paths.normalize(
            where if where.startswith("/") else paths.join(paths.parent(page.path), where)
        )
    except InvalidPathError:
        pond_path = where
    if pond_path in targets:
        return targets[pond_path] + hash_ + fragment
    warnings.append(
        f"{page.path}: link to {pond_path}: not a charted series or a page of the site "
        "(shown as text)"
    )
    return None
