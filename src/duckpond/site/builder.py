"""`pond site build`: a static, offline site of a pond, written whole or not at all.

The site is built in a sibling temporary directory and then swapped into place (one atomic
`renameat2(RENAME_EXCHANGE)` on Linux, else two renames), so a reader never sees half a
site and a failed build leaves the last good one as it was. Every byte comes from the pond
(no clock, no randomness, sorted iteration): the same pond gives the same site. Pages use
relative links only and load data as <script> files, so the site works from file:// and
under any sub-path of a web server.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PondError
from .config import SiteConfig

if TYPE_CHECKING:
    import numpy as np

    from ..pond import Pond
    from .collect import Series, Tier

log = logging.getLogger("pond")

MARKER = ".pond-site"  # marks a directory as a site this program may replace
# Facts of stored series versions (row count, span, last row) the next build reuses: a
# version's content never changes, and finding a big version's last row means reading it.
FACTS = ".pond-site-facts.json"
# Beside OUTDIR: what the next build starts from (files the live site holds too).
SPARE = ".spare"
LIB_FILES = ("bokeh.min.js", "bokeh-api.min.js")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
STATUS_LIMIT = 50


@dataclass(frozen=True)
class SiteReport:
    out_dir: str
    series: list[str]
    pages: int
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "series": list(self.series),
            "pages": self.pages,
            "files": self.files,
            "bytes": self.bytes,
        }


def build(
    pond: Pond, out_dir: str | Path, cfg: SiteConfig, running_txn: int | None = None
) -> SiteReport:
    """Build the site; `running_txn`: the write whose post-commit job this build is (sitegen),
    shown as running rather than as unfinished work."""
    from . import collect

    out = Path(out_dir).absolute()
    _check_target(out)
    series = collect.discover(pond, cfg)
    previous = _previous_facts(out)
    known: dict[str, Any] = {}
    for s in series:
        collect.load(pond, s, cfg.target_points, previous)
        key = s.node.key()
        if key in previous:
            known[key] = previous[key]
    status = _status(pond, running_txn) if cfg.status_page else None
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    spare = out.parent / f".{out.name}{SPARE}"
    if tmp.exists():
        shutil.rmtree(tmp)
    live = out if (out / MARKER).is_file() else None
    if live is None and _ours(spare):
        shutil.rmtree(spare)  # OUTDIR was removed: so is what was kept of it
    try:
        reuse = live is not None and _take_spare(spare, tmp)
        if not reuse:
            tmp.mkdir(parents=True)
        w = _Writer(tmp, live, reuse)
        pages = _write_site(w, pond, cfg, series, status)
        w.write(FACTS, json.dumps(known, sort_keys=True, separators=(",", ":")) + "\n")
        w.prune()
        # No fsync: the site is derived from the pond, and a site a power loss damaged is
        # replaced by the next build (which compares bytes before reusing a file).
        if _swap(tmp, out):
            _keep_spare(tmp, spare, w)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "site: %d series, %d pages, %d bytes in %s (%d files kept, %d linked, %d written)",
        len(series),
        pages,
        w.bytes,
        out,
        w.kept,
        w.linked,
        w.files - w.kept - w.linked,
    )
    return SiteReport(str(out), [s.path for s in series], pages, w.files, w.bytes)


def _previous_facts(out: Path) -> dict[str, Any]:
    """What the last build found about stored series versions (nothing if unreadable)."""
    try:
        data = json.loads((out / FACTS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and (out / MARKER).is_file() else {}


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PondError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        # never swap away (and delete) a directory that is not a site made here
        raise PondError(f"{out} is not empty and holds no pond site: choose another directory")
    if not out.parent.is_dir():
        raise PondError(f"{out.parent} does not exist")


def _swap(tmp: Path, out: Path) -> bool:
    """Put `tmp` at `out`. True: exchanged, `tmp` now holds the previous site; else the
    previous site (if any) is already deleted."""
    if not out.exists():
        os.rename(tmp, out)
        return False
    if _exchange(tmp, out):
        return True
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return False


def _take_spare(spare: Path, tmp: Path) -> bool:
    """Start the new site from the spare the last build left (see `_keep_spare`): True if
    it is now at `tmp`. Only a real directory holding our marker is taken."""
    if not _ours(spare):
        return False
    try:
        os.rename(spare, tmp)  # atomic: of two builds at once, one gets it
    except OSError:
        return False
    return True


def _ours(spare: Path) -> bool:
    """A real directory (not a link to one) holding our marker."""
    try:
        return stat.S_ISDIR(os.lstat(spare).st_mode) and stat.S_ISREG(
            os.lstat(spare / MARKER).st_mode
        )
    except OSError:
        return False


def _keep_spare(old: Path, spare: Path, w: _Writer) -> None:
    """Keep, of the site just replaced, the files the new site shares (the same inode, so
    no bytes the live site does not hold) as the next build's starting point; delete the
    rest. A rebuild that changes little then creates, links and deletes little (on this
    project's disk, deleting a 100-file site took 5-45 ms under load, as long as writing
    it). A spare that is not there or not ours is simply not used."""
    try:
        _prune(old, "", lambda rel, st: w.inodes.get(rel) == st.st_ino, w.dirs)
        os.rename(old, spare)
    except OSError:
        pass  # the caller removes `old`


def _prune(root: Path, rel: str, keep: Any, dirs: set[str]) -> None:
    """Delete under `root` every file `keep(rel, stat)` rejects and every directory not in
    `dirs` (symbolic links are files here: never followed)."""
    with os.scandir(root) as it:
        entries = list(it)
    for e in entries:
        r = rel + e.name
        if e.is_dir(follow_symlinks=False):
            if r in dirs:
                _prune(Path(e.path), r + "/", keep, dirs)
            else:
                shutil.rmtree(e.path)
        elif not keep(r, e.stat(follow_symlinks=False)):
            os.unlink(e.path)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(rc == 0)


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


class _Writer:
    """Writes the files of a new site under `root`, creating as little as it can: a file
    already in `root` (when it started from the last build's spare, `reuse`) with the
    right bytes is kept; else a file of the `previous` site (the one being replaced) with
    the right bytes is hard-linked; else the file is written. On this project's disk,
    writing a site's ~100 files (BokehJS and data: ~6 MB) took 30-70 ms, linking them
    ~1 ms. Files are only ever created or unlinked, never opened for writing once they
    exist, so the previous site's files (which `root` shares) never change, and a failed
    build (its directory removed) leaves the last good site as it was."""

    def __init__(self, root: Path, previous: Path | None, reuse: bool) -> None:
        self.root = root
        self.previous = previous
        self.reuse = reuse
        self.files = self.bytes = self.kept = self.linked = 0
        self.inodes: dict[str, int] = {}  # rel -> inode of every file of the new site
        self.dirs: set[str] = {""}

    def write(self, rel: str, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        parent = rel.rpartition("/")[0]
        if parent not in self.dirs:
            self._mkdirs(parent)
        path = self.root / rel
        self.files += 1
        self.bytes += len(raw)
        if self.reuse:
            st = _same(path, raw)
            if st is not None:
                self.inodes[rel] = st.st_ino
                self.kept += 1
                return
            _remove(path)
        if self.previous is not None and self._link_same(self.previous / rel, path, raw, rel):
            self.linked += 1
            return
        with open(path, "xb") as f:  # "x": never through a link to the previous site
            f.write(raw)
            self.inodes[rel] = os.fstat(f.fileno()).st_ino

    def _link_same(self, old: Path, new: Path, raw: bytes, rel: str) -> bool:
        """Hard-link `old` at `new` if it is a plain file holding exactly `raw`."""
        st = _same(old, raw)
        if st is None:
            return False
        try:
            os.link(old, new, follow_symlinks=False)
            if os.lstat(new).st_ino == st.st_ino:
                self.inodes[rel] = st.st_ino
                return True
            os.unlink(new)  # `old` was replaced between comparing and linking
        except OSError:  # gone meanwhile, or a filesystem without hard links: write
            pass
        return False

    def _mkdirs(self, rel: str) -> None:
        parts = rel.split("/")
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1])
            if d in self.dirs:
                continue
            path = self.root / d
            if self.reuse:
                try:
                    if stat.S_ISDIR(os.lstat(path).st_mode):
                        self.dirs.add(d)
                        continue
                    os.unlink(path)  # a file or link where a directory belongs
                except FileNotFoundError:
                    pass
            path.mkdir()
            self.dirs.add(d)

    def prune(self) -> None:
        """Delete what the spare held that this site does not (after the last write)."""
        if self.reuse:
            _prune(self.root, "", lambda rel, st: rel in self.inodes, self.dirs)


def _same(path: Path, raw: bytes) -> os.stat_result | None:
    """The stat of `path` if it is a plain file holding exactly `raw`, else None."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(raw):
            return None
        with open(path, "rb") as f:
            return st if f.read(len(raw) + 1) == raw else None
    except OSError:
        return None


def _remove(path: Path) -> None:
    """Remove whatever is at `path` (nothing, a file, a link, a directory)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError):
        shutil.rmtree(path)


def _write_site(
    w: _Writer, pond: Pond, cfg: SiteConfig, series: list[Series], status: dict[str, Any] | None
) -> int:
    env = _env()
    _copy_static(w)
    w.write(MARKER, "a site written by `pond site build`; replaced whole by the next build\n")
    slugs = _slugs([s.path for s in series])
    rows = []
    pages = 0
    for s in series:
        slug = slugs[s.path]
        manifest = _export(w, s, slug, cfg)
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
            preload=_initial_files(manifest),
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
                "last": ", ".join(
                    f"{k} = {_num(v)}" for k, v in sorted(s.last_values.items()) if v is not None
                ),
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


def _export(w: _Writer, s: Series, slug: str, cfg: SiteConfig) -> dict[str, Any]:
    """Write `s`'s tiers as chunked data scripts; return the page's manifest."""
    tiers = []
    for i, t in enumerate(s.tiers):
        coarsest = i == len(s.tiers) - 1
        chunk_ms = 0 if coarsest else cfg.target_points * t.res_us // 1000
        chunks = []
        assert t.time_ms is not None
        for k, lo, hi in _chunk_bounds(t.time_ms, chunk_ms):
            name = f"{t.name}-{k}.js" if chunk_ms else f"{t.name}.js"
            rel = f"data/{slug}/{name}"
            w.write(rel, _chunk_script(rel, t, lo, hi))
            assert t.time_ms is not None
            first, last = int(t.time_ms[lo]), int(t.time_ms[hi - 1])
            chunks.append({"k": k, "file": rel, "from": first, "to": last})
        tiers.append(
            {
                "name": t.name,
                "path": t.path,
                "res_ms": max(t.res_us // 1000, 1),
                "chunk_ms": chunk_ms,
                "rows": t.rows,
                "columns": list(t.columns),
                "lines": t.lines,
                "chunks": chunks,
            }
        )
    bases = s.bases
    return {
        "path": s.path,
        "slug": slug,
        "time_column": s.time_column,
        "label": cfg.labels.get(s.path, s.path),
        "unit": cfg.units.get(s.path, ""),
        "bases": bases,
        "colors": {b: PALETTE[j % len(PALETTE)] for j, b in enumerate(bases)},
        "first_ms": s.first_us // 1000 if s.first_us is not None else None,
        "last_ms": s.last_us // 1000 if s.last_us is not None else None,
        "default_range": cfg.default_range,
        "time_zone": cfg.time_zone,
        "target_points": cfg.target_points,
        "tiers": tiers,
    }


PRESET_MS = {"1D": 86_400_000, "1W": 7 * 86_400_000, "1M": 30 * 86_400_000, "1Y": 365 * 86_400_000}


def _initial_files(m: dict[str, Any]) -> list[str]:
    """The data files of the page's default view, loaded with the page itself (one round
    trip less before the first chart). Mirrors presetRange/chooseTier/filesFor in site.js."""
    if not m["tiers"] or m["first_ms"] is None:
        return []
    first, last = m["first_ms"], m["last_ms"]
    if m["default_range"] in PRESET_MS:
        a, b = last - PRESET_MS[m["default_range"]], last
    else:
        pad = max((last - first) * 0.01, 1000)
        a, b = first - pad, last + pad
    tier = next((t for t in m["tiers"] if (b - a) / t["res_ms"] <= m["target_points"]), None)
    tier = tier or m["tiers"][-1]
    if not tier["chunk_ms"]:
        return [c["file"] for c in tier["chunks"]]
    k0, k1 = a // tier["chunk_ms"], b // tier["chunk_ms"]
    return [c["file"] for c in tier["chunks"] if k0 <= c["k"] <= k1]


def _chunk_bounds(times: np.ndarray[Any, Any], chunk_ms: int) -> list[tuple[int, int, int]]:
    """(chunk number, first row, end row) of each non-empty chunk; times are sorted."""
    import numpy as np

    if not len(times):
        return []
    if not chunk_ms:
        return [(0, 0, len(times))]
    ks = times // chunk_ms
    starts = [0, *(np.flatnonzero(np.diff(ks)) + 1).tolist()]
    ends = [*starts[1:], len(times)]
    return [(int(ks[a]), a, b) for a, b in zip(starts, ends, strict=True)]


def _chunk_script(key: str, t: Tier, lo: int, hi: int) -> str:
    """A data file: times and every column as little-endian float64, base64 (exact values,
    NaN for null, decoded by the browser without parsing numbers)."""
    assert t.time_ms is not None
    # Spelled out rather than json.dumps'd: base64 needs no escaping, and scanning the
    # long strings for characters to escape was a tenth of a warm build.
    cols = ",".join(f'{json.dumps(n)}:"{_b64(vals[lo:hi])}"' for n, vals in t.columns.items())
    body = f'{{"n":{hi - lo},"t":"{_b64(t.time_ms[lo:hi])}","c":{{{cols}}}}}'
    return f"pondSite.chunk({json.dumps(key)},{body});\n"


def _b64(values: np.ndarray[Any, Any]) -> str:
    import base64

    return base64.b64encode(values.astype("<f8").tobytes()).decode("ascii")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
def _status(pond: Pond, running_txn: int | None) -> dict[str, Any]:
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
    failed = [
        {**task, "txn_seq": t["txn_seq"]}
        for t in txns
        for task in t["post_commit"]
        if task["status"] == "failed"
    ]
    return {
        "transactions": txns,
        "failed_tasks": failed,
        "incomplete": incomplete,
        "limit": STATUS_LIMIT,
    }
