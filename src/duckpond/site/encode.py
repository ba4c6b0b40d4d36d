"""A series's tiers as data scripts, each column in the fewest bytes that give its exact values.

Pages opened from disk may not fetch(), so data travels as `<script>` files calling
`pondSite.chunk(key, {...})`; binary data inside a script has to be text (base64, +33 %), so
the bytes under it are made few first. Each chunk is one base64 string holding every column,
each at an offset aligned to 8, with a small header saying how to read it (site.js `decode`):

- time (int64 ms, sorted): the first time, then the steps between rows divided by their
  greatest common divisor, as unsigned 8/16/32-bit integers (an hourly series: one byte a row);
- a column whose values are all the same (or all null): that value, no bytes;
- decimal values (a temperature to 2 decimals, a count): integers `m` such that the value is
  `(base + m) / 10**scale` exactly (IEEE division is correctly rounded in numpy and in
  JavaScript alike, so the double the browser computes is the very double stored), as
  unsigned 8/16/32-bit integers, the largest unsigned value standing for null;
- values a float32 holds exactly: float32; anything else: float64 (NaN for null).

Nothing is rounded: the browser gets back every float64 bit for bit (only -0.0 reads as 0).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import SiteConfig

if TYPE_CHECKING:
    import numpy as np

    from .collect import Series

MAX_SCALE = 6  # decimals tried for the integer form
_WIDTHS = ((1, "<u1"), (2, "<u2"), (4, "<u4"))


def export(
    write: Callable[[str, str], None],
    s: Series,
    slug: str,
    cfg: SiteConfig,
    panels: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write `s`'s tiers as chunked data scripts; return the page's manifest."""
    tiers = []
    for i, t in enumerate(s.tiers):
        coarsest = i == len(s.tiers) - 1
        chunk_ms = 0 if coarsest else cfg.target_points * t.res_us // 1000
        chunks = []
        assert t.time_ms is not None
        for k, lo, hi in chunk_bounds(t.time_ms, chunk_ms):
            name = f"{t.name}-{k}.js" if chunk_ms else f"{t.name}.js"
            rel = f"data/{slug}/{name}"
            write(
                rel,
                chunk_script(rel, t.time_ms[lo:hi], {n: v[lo:hi] for n, v in t.columns.items()}),
            )
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
    charted = [c for p in panels for c in p["lines"]]
    return {
        "path": s.path,
        "slug": slug,
        "time_column": s.time_column,
        "label": cfg.labels.get(s.path, s.path),
        "unit": cfg.units.get(s.path, ""),
        "bases": charted,
        "panels": panels,
        "first_ms": s.first_us // 1000 if s.first_us is not None else None,
        "last_ms": s.last_us // 1000 if s.last_us is not None else None,
        "default_range": cfg.default_range,
        "time_zone": cfg.time_zone,
        "target_points": cfg.target_points,
        "tiers": tiers,
    }


PRESET_MS = {"1D": 86_400_000, "1W": 7 * 86_400_000, "1M": 30 * 86_400_000, "1Y": 365 * 86_400_000}


def initial_files(m: dict[str, Any]) -> list[str]:
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


def chunk_bounds(times: np.ndarray[Any, Any], chunk_ms: int) -> list[tuple[int, int, int]]:
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


def chunk_script(key: str, time_ms: np.ndarray[Any, Any], columns: dict[str, Any]) -> str:
    """The data script of one chunk: `time_ms` (int64, sorted) and float64 `columns`."""
    buf = bytearray()
    head_t = _encode_times(time_ms, buf)
    head_c = {name: _encode_values(values, buf) for name, values in columns.items()}
    head = {"n": len(time_ms), "t": head_t, "c": head_c}
    body = json.dumps(head, separators=(",", ":"), allow_nan=False)
    data = base64.b64encode(bytes(buf)).decode("ascii")
    return f'pondSite.chunk({json.dumps(key)},{body[:-1]},"b":"{data}"}});\n'


def _put(buf: bytearray, raw: bytes) -> int:
    """Append `raw` at the next offset aligned to 8; its offset."""
    buf.extend(b"\0" * (-len(buf) % 8))
    off = len(buf)
    buf.extend(raw)
    return off


def _unsigned(top: int) -> tuple[int, str] | None:
    """The narrowest unsigned width holding 0..top; None if none does."""
    for width, dtype in _WIDTHS:
        if top < 1 << (8 * width):
            return width, dtype
    return None


def _encode_times(t: np.ndarray[Any, Any], buf: bytearray) -> dict[str, Any]:
    import numpy as np

    n = len(t)
    if n == 0:
        return {"k": "c", "v": None}
    steps = np.diff(t.astype(np.int64))
    step = int(np.gcd.reduce(steps)) if len(steps) else 1
    step = step or 1
    units = np.concatenate([[0], steps // step]) if len(steps) else np.zeros(1, np.int64)
    fit = _unsigned(int(units.max()))
    if fit is None or steps.min(initial=0) < 0:
        return {"k": "d", "o": _put(buf, t.astype("<f8").tobytes())}
    width, dtype = fit
    off = _put(buf, units.astype(dtype).tobytes())
    return {"k": "t", "t0": int(t[0]), "g": step, "w": width, "o": off}


def _encode_values(v: np.ndarray[Any, Any], buf: bytearray) -> dict[str, Any]:
    import numpy as np

    v = np.asarray(v, dtype=np.float64)
    finite = np.isfinite(v)
    nulls = np.isnan(v)
    if not (finite | nulls).all():  # ±inf: only float64 says it
        return {"k": "d", "o": _put(buf, v.astype("<f8").tobytes())}
    vals = v[finite]
    if len(vals) == 0 or (len(vals) == len(v) and (vals == vals[0]).all()):
        return {"k": "c", "v": float(vals[0]) if len(vals) else None}
    ints = _decimal(vals)
    if ints is not None:
        scale, m = ints
        lo = int(m.min())
        top = int(m.max()) - lo + (1 if nulls.any() else 0)
        fit = _unsigned(top)
        if fit is not None:
            width, dtype = fit
            u = np.full(len(v), top, dtype=np.int64)  # top: null (when there are nulls)
            u[finite] = m - lo
            head: dict[str, Any] = {"k": "i", "w": width, "b": lo, "s": scale}
            if nulls.any():
                head["z"] = top
            head["o"] = _put(buf, u.astype(dtype).tobytes())
            return head
    if (vals.astype(np.float32).astype(np.float64) == vals).all():
        return {"k": "f", "o": _put(buf, v.astype("<f4").tobytes())}
    return {"k": "d", "o": _put(buf, v.astype("<f8").tobytes())}


def _decimal(vals: np.ndarray[Any, Any]) -> tuple[int, np.ndarray[Any, Any]] | None:
    """(scale, integers m) with m / 10**scale == vals exactly, the smallest scale; None if
    no scale up to MAX_SCALE does (or the integers would pass 2**53)."""
    import numpy as np

    biggest = float(np.abs(vals).max())
    for scale in range(MAX_SCALE + 1):
        p = 10.0**scale
        if biggest * p >= 2**53:
            return None
        m = np.round(vals * p)
        if (m / p == vals).all():
            return scale, m.astype(np.int64)
    return None
