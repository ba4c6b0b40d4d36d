"""`pond site build`: a static, offline site of a pond, written whole or not at all.

Every file of the new site is written (under a sibling temporary directory) before the first
is put in place, so a failed build leaves the last good site as it was; then changed files
are renamed into OUTDIR, in an order where no page refers to a file not yet there. OUTDIR may
hold the user's files too: a build replaces or removes only files an earlier build wrote
(its manifest), and a symlinked OUTDIR stays a link. Every byte comes from the pond
(no clock, no randomness, sorted iteration): the same pond gives the same site. Pages use
relative links only and load data as <script> files, so the site works from file:// and
under any sub-path of a web server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PondError
from .config import SiteConfig
from .encode import export, initial_files
from .panels import plan

if TYPE_CHECKING:
    from .collect import Series
    from .pages import SitePages
    from .source import SiteSource

log = logging.getLogger("pond")

# What the builds wrote into OUTDIR (path -> content hashes): all a build may replace or remove.
MANIFEST = ".pond-site-manifest.json"
MANIFEST_FORMAT = "pond-site-manifest 1"
# An earlier pond's site (swapped in whole) carried this marker and no manifest.
LEGACY_MARKER = ".pond-site"
LEGACY_TEXT = b"a site written by `pond site build`; replaced whole by the next build\n"
# Facts of stored series versions (row count, span, last row) the next build reuses: a
# version's content never changes, and finding a big version's last row means reading it.
FACTS = ".pond-site-facts.json"
LIB_FILES = ("bokeh.min.js", "bokeh-api.min.js")
STATUS_LIMIT = 50
LAST_SHOWN = 3  # last values in an index row


@dataclass(frozen=True)
class SiteReport:
    out_dir: str
    series: list[str]
    pages: int
    files: int
    bytes: int
    warnings: list[str] = field(default_factory=list)  # e.g. a page's link to nothing shown

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "series": list(self.series),
            "pages": self.pages,
            "files": self.files,
            "bytes": self.bytes,
            "warnings": list(self.warnings),
        }


def build(
    pond: SiteSource, out_dir: str | Path, cfg: SiteConfig, running_txn: int | None = None
) -> SiteReport:
    """Build the site; `running_txn`: the write whose post-commit job this build is (sitegen),
    shown as running rather than as unfinished work."""
    from . import collect, pages

    given = Path(out_dir).absolute()
    # a symlinked OUTDIR stays a link: the site is built in the directory it points to
    out = Path(os.path.realpath(given)) if given.is_symlink() else given
    _check_target(out)
    with _locked(out.parent):
        old = _read_manifest(out)
        legacy = old is None and _is_legacy(out)
        if old is None and not legacy and out.is_dir() and any(out.iterdir()):
            # never write into (or remove from) a directory no build of ours wrote
            raise PondError(f"{out} is not empty and holds no pond site: choose another directory")
        series = collect.discover(pond, cfg)
        previous = _previous_facts(out, old)
        known: dict[str, Any] = {}
        for s in series:
            collect.load(pond, s, cfg.target_points, previous)
            key = s.node.key()
            if key in previous:
                known[key] = previous[key]
        status = _status(pond, running_txn) if cfg.status_page else None
        site_pages = pages.read(pond, cfg)
        w = _Writer(out, out.parent / f".{out.name}.building-{os.getpid()}", old or {}, legacy)
        try:
            written = _write_site(w, pond, cfg, series, status, site_pages)
            w.write(FACTS, json.dumps(known, sort_keys=True, separators=(",", ":")) + "\n")
            w.commit()
        finally:
            shutil.rmtree(w.staging, ignore_errors=True)
    log.info(
        "site: %d series, %d pages, %d bytes in %s (%d files unchanged, %d written, %d removed)",
        len(series),
        written,
        w.bytes,
        out,
        w.files - len(w.staged),
        len(w.staged),
        len(w.removed),
    )
    return SiteReport(
        str(given), [s.path for s in series], written, w.files, w.bytes, site_pages.warnings
    )


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PondError(f"{out} exists and is not a directory")
    if not out.parent.is_dir():
        raise PondError(f"{out.parent} does not exist")


@contextmanager
def _locked(parent: Path) -> Iterator[None]:
    """One build at a time beside each other (a flock on OUTDIR's parent: no file made)."""
    import fcntl

    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_manifest(out: Path) -> dict[str, list[str]] | None:
    """What earlier builds wrote: site path -> the SHA-256 of each content a build wrote
    there. None: no manifest (or not one of ours)."""
    try:
        if not stat.S_ISREG(os.lstat(out / MANIFEST).st_mode):
            return None
        data = json.loads((out / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if data.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
        return None
    out_files: dict[str, list[str]] = {}
    for rel, hashes in files.items():
        if isinstance(hashes, list) and all(isinstance(h, str) for h in hashes) and _safe(rel):
            out_files[rel] = hashes
    return out_files


def _safe(rel: Any) -> bool:
    parts = rel.split("/") if isinstance(rel, str) else []
    return bool(parts) and all(p not in ("", ".", "..") for p in parts) and rel != MANIFEST


def _is_legacy(out: Path) -> bool:
    """A site an earlier pond wrote (whole-directory swaps): its exact marker, no manifest."""
    try:
        path = out / LEGACY_MARKER
        return stat.S_ISREG(os.lstat(path).st_mode) and path.read_bytes() == LEGACY_TEXT
    except OSError:
        return False


def _previous_facts(out: Path, old: dict[str, list[str]] | None) -> dict[str, Any]:
    """What the last build found about stored series versions (nothing if unreadable)."""
    if old is None or FACTS not in old:
        return {}
    try:
        data = json.loads((out / FACTS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _write_json(path: Path, data: Any, tmp: Path) -> None:
    tmp.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    os.rename(tmp, path)


def _commit_order(rel: str) -> tuple[int, str]:
    """Data and library files first, then series pages, the index and status last: a page
    in place never refers to a file not yet there."""
    top = rel.partition("/")[0] if "/" in rel else ""
    return ({"lib": 0, "assets": 0, "data": 1, "series": 2}.get(top, 3), rel)


class _Writer:
    """Writes a new site over the site in `out`, in place, never touching what is not its
    own: a file whose bytes did not change is left alone (a rebuild that changes nothing
    creates no file); a changed or new file is written under `staging` first, and only once
    every file is written (so a failed build leaves the last good site) are they renamed
    into place and what earlier builds wrote that this one does not is removed. A file is
    the site's to replace or remove only if the manifest lists its path with its exact
    content (SHA-256): a user's file, a file changed since, or anything planted is never
    changed or removed; one in the way of the new site stops the build before any change."""

    def __init__(self, out: Path, staging: Path, old: dict[str, list[str]], legacy: bool) -> None:
        self.out = out
        self.staging = staging
        self.old = old
        self.legacy = legacy  # an earlier pond's site: files at the site's paths are ours
        self.files = self.bytes = 0
        self.new: dict[str, str] = {}  # rel -> SHA-256 of the new site's file
        self.staged: list[str] = []
        self.removed: list[str] = []
        self.checked: set[str] = {""}

    def write(self, rel: str, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.files += 1
        self.bytes += len(raw)
        self.new[rel] = _sha(raw)
        self._check_parents(rel)
        current = self._current(rel)
        if current == raw:
            return  # unchanged: not touched
        if current is not None and not self.legacy and _sha(current) not in self.old.get(rel, ()):
            raise self._in_the_way(rel)
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as f:
            f.write(raw)
        self.staged.append(rel)

    def _current(self, rel: str) -> bytes | None:
        """The bytes at `rel` in the live site; None if nothing is there."""
        path = self.out / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise self._in_the_way(rel)
        return path.read_bytes()

    def _check_parents(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1])
            if d in self.checked:
                continue
            try:
                if not stat.S_ISDIR(os.lstat(self.out / d).st_mode):
                    raise self._in_the_way(d)
            except FileNotFoundError:
                pass
            self.checked.add(d)

    def _in_the_way(self, rel: str) -> PondError:
        return PondError(
            f"{self.out / rel} is in the way of the site and is not a file an earlier build "
            "wrote (changed since, or not the site's): move it away and build again"
        )

    def commit(self) -> None:
        """Put the staged files in place, remove what earlier builds wrote that this one does
        not, and record what this build wrote (the manifest)."""
        stale = [rel for rel in sorted(self.old) if rel not in self.new and self._ours(rel)]
        final = {rel: [h] for rel, h in sorted(self.new.items())}
        if not self.staged and not stale and self.old == final and not self.legacy:
            return
        self.out.mkdir(exist_ok=True)
        self.staging.mkdir(exist_ok=True)
        manifest = self.out / MANIFEST
        # first the union of old and new: a crash among the renames leaves every file of
        # either site known as the site's, for the next build to replace or remove
        pending = {
            rel: sorted(set(self.old.get(rel, [])) | set(final.get(rel, [])))
            for rel in set(self.old) | set(final)
        }
        _write_json(manifest, _manifest(pending), self.staging / MANIFEST)
        for rel in sorted(self.staged, key=_commit_order):
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.staging / rel, target)
        for rel in stale:
            os.unlink(self.out / rel)
            self.removed.append(rel)
            _remove_empty_parents(self.out, rel)
        if self.legacy:
            (self.out / LEGACY_MARKER).unlink(missing_ok=True)
        _write_json(manifest, _manifest(final), self.staging / MANIFEST)

    def _ours(self, rel: str) -> bool:
        """`rel` holds exactly what an earlier build wrote there (and no link is on its way)."""
        parts = rel.split("/")
        try:
            for i in range(1, len(parts)):
                if not stat.S_ISDIR(os.lstat(self.out.joinpath(*parts[:i])).st_mode):
                    return False
            path = self.out / rel
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return False
            return _sha(path.read_bytes()) in self.old[rel]
        except OSError:
            return False


def _manifest(files: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "note": "the files `pond site build` wrote here (SHA-256): the next build replaces "
        "or removes these, and nothing else",
        "files": files,
    }


def _remove_empty_parents(out: Path, rel: str) -> None:
    """Remove the directories on the way to a removed file that are now empty."""
    parts = rel.split("/")[:-1]
    while parts:
        try:
            os.rmdir(out.joinpath(*parts))
        except OSError:
            return  # not empty (a user's file, another site file): kept
        parts.pop()


# -- writing ----------------------------------------------------------------------------------
_ENV: list[Any] = []


def _env() -> Any:
    if _ENV:
        return _ENV[0]
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    _ENV.append(env)
    return env


def _when(text: str | None) -> str:
    """An ISO 8601 time from the control table, shortened for people (to the second)."""
    if not text:
        return ""
    return text.replace("T", " ")[:19] + " UTC"


def _write_site(
    w: _Writer,
    pond: SiteSource,
    cfg: SiteConfig,
    series: list[Series],
    status: dict[str, Any] | None,
    site_pages: SitePages,
) -> int:
    from . import pages as markdown_pages

    env = markdown_pages.with_nav(_env(), site_pages)
    _copy_static(w)
    slugs = _slugs([s.path for s in series])
    rows = []
    pages = 0
    for s in series:
        slug = slugs[s.path]
        panels = plan(s, cfg)
        manifest = export(w.write, s, slug, cfg, panels)
        label = cfg.labels.get(s.path, s.path)
        unit = cfg.units.get(s.path, "")
        page = env.get_template("series.html").render(
            title=cfg.title,
            root="../",
            label=label,
            path=s.path,
            unit=unit,
            status_page=cfg.status_page,
            manifest=_script_json(manifest),
            preload=initial_files(manifest),
            tiers=[t.name for t in s.tiers],
            rows=s.rows,
        )
        w.write(f"series/{slug}.html", page)
        pages += 1
        rows.append(
            {
                "href": f"series/{slug}.html",
                "label": label,
                "path": s.path,
                "unit": unit,
                **_last_cell(s, panels),
                "last_time": _iso(s.last_us),
                "updated": _iso(s.updated_us),
                "rows": s.rows,
                "tiers": ", ".join(t.name for t in s.tiers),
            }
        )
    index = env.get_template("index.html").render(
        title=cfg.title, root="", series=rows, status_page=cfg.status_page
    )
    w.write("index.html", index)
    pages += 1
    if status is not None:
        w.write(
            "status.html",
            env.get_template("status.html").render(
                title=cfg.title, root="", status_page=True, **status
            ),
        )
        pages += 1
    pages += markdown_pages.write(w, env, cfg, site_pages, series, slugs)
    return pages


def _copy_static(w: _Writer) -> None:
    static = Path(__file__).parent / "static"
    for name in ("site.js", "site.css"):
        w.write(f"assets/{name}", (static / name).read_bytes())
    lib = _bokeh_js()
    for name in LIB_FILES:
        w.write(f"lib/{name}", (lib / name).read_bytes())
    license_file = lib.parent.parent.parent / "LICENSE.txt"
    if license_file.is_file():
        w.write("lib/BOKEH-LICENSE.txt", license_file.read_bytes())


def _bokeh_js() -> Path:
    """BokehJS as shipped inside the installed bokeh package (never imported: its Python
    side is not needed and is slow to load)."""
    import importlib.util

    spec = importlib.util.find_spec("bokeh")
    if spec is None or not spec.submodule_search_locations:
        raise PondError("the bokeh package is not installed: pip install bokeh")
    js = Path(list(spec.submodule_search_locations)[0]) / "server" / "static" / "js"
    missing = [n for n in LIB_FILES if not (js / n).is_file()]
    if missing:
        raise PondError(f"the installed bokeh package lacks {', '.join(missing)}")
    return js


def _slugs(paths_: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for p in sorted(paths_):
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", p.strip("/")).strip("._") or "root"
        slug, n = base, 2
        while slug.lower() in used:
            slug, n = f"{base}-{n}", n + 1
        used.add(slug.lower())
        out[p] = slug
    return out


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _last_cell(s: Series, panels: list[dict[str, Any]]) -> dict[str, str]:
    """The index's last values: the first LAST_SHOWN charted columns and "+N more" (all of
    them in the cell's tooltip)."""
    charted = [c for p in panels for c in p["lines"]]
    order = [*charted, *sorted(c for c in s.last_values if c not in charted)]
    values = [f"{k} = {_num(s.last_values[k])}" for k in order if s.last_values.get(k) is not None]
    more = len(values) - LAST_SHOWN
    shown = ", ".join(values[:LAST_SHOWN]) + (f" +{more} more" if more > 0 else "")
    return {"last": shown, "last_all": ", ".join(values) if more > 0 else ""}


def _iso(us: int | None) -> str:
    if us is None:
        return ""
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# -- status -----------------------------------------------------------------------------------
def _status(pond: SiteSource, running_txn: int | None) -> dict[str, Any]:
    """The steward's record, as `pond control` and `pond control incomplete` show it."""
    recent, report = pond.control_status(limit=STATUS_LIMIT)
    incomplete = report.to_json()
    txns = [t.to_json() for t in reversed(recent)]
    if running_txn is not None:
        # the write this build is a job of is not finished yet: it is not unfinished work
        incomplete = {
            "transactions": [t for t in incomplete["transactions"] if t["txn_seq"] != running_txn],
            "tasks": [t for t in incomplete["tasks"] if t["parent_txn_seq"] != running_txn],
        }
        for t in txns:
            if t["txn_seq"] == running_txn:
                t["status"] = "running its post-commit jobs"
    failed = _failed_attempts(txns)
    return {
        "transactions": txns,
        "failed_tasks": failed,
        "incomplete": incomplete,
        "limit": STATUS_LIMIT,
    }


def _failed_attempts(txns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every failed attempt of the listed transactions' jobs, also one a later retry
    fixed: its `outcome` says how the task ended."""
    out = []
    for t in txns:
        for task in t["post_commit"]:
            for attempt in task.get("failed_attempts", []):
                last = attempt["attempt"] == task["attempt"] and task["status"] == "failed"
                outcome = "failed" if last else f"{task['status']} at attempt {task['attempt']}"
                out.append({**task, **attempt, "txn_seq": t["txn_seq"], "outcome": outcome})
    return out
