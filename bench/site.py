"""Benchmark 18: the static site (issue 10).

10 stored series of a year of one-minute data (525,600 rows each) with temporal-reduce
tiers at 1h/6h/1d/7d (avg, min, max).

18a `pond site build` (Pond.site_build) vs reading the same tiers the site charts (1h and
    6h: the coarser ones are never chosen for a year at 1,500 points) through Pond.sql,
    result cache warm on both sides (the build's overhead over the reads it needs).
18b the same with the derived-result cache emptied before each rep on both sides (after a
    write, when the reductions are computed again).
18c a series page opened in headless Chromium over file:// until its chart is drawn
    (performance.now() at the first frame after BokehJS has rendered the data) vs a page
    that only loads the same two BokehJS files, ≤ 2×: the one-panel page of a year of
    minutes (tiers 1h/6h); 18c' the same for the 6-panel page of the 13-column
    weather-shaped series. Every load in a fresh browser context (nothing cached from an
    earlier load: the library-only page loaded second in the same context took ~25 % less,
    measured); the three pages of a round in rotating order; each ratio the median of the
    rounds' ratios (page / library-only page of the same round).
18d site size per series: the whole site (BokehJS included) / number of series, ≤ 2 MB.
18e a wide series' data files (all tiers) vs its CSV, ≤ 2×: bench/weather.py's 13-column
    weather-shaped series (26,115 rows), and the 39-column one (three airports side by side).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from duckpond.pond import Pond

from .common import Result, Row, Timer, dir_size, fmt_s, log, median, ratio_row

T0 = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
MINUTE = 60_000_000
SIZE_GOAL = 2 * 1024 * 1024
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def series(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    i = np.arange(rows, dtype=np.int64)
    return pa.table(
        {
            "timestamp": pa.array(T0 + i * MINUTE, pa.timestamp("us", tz="UTC")),
            "value": pa.array(10 + 3 * np.sin(i / 1440 * 2 * np.pi) + rng.normal(0, 0.5, rows)),
        }
    )


def run(work: Path, quick: bool) -> Result:
    n_series = 3 if quick else 10
    rows = 43_200 if quick else 525_600
    reps = 2 if quick else 5
    log(f"18: {n_series} series x {rows:,} one-minute rows")
    pond = Pond.create(work / "pond-site")
    for k in range(n_series):
        with pond.transaction(args=["bench", "load", str(k)]) as tx:
            tx.write_series(f"/wells/w{k:02d}", series(rows, k), parents=True)
    pond.mknod(
        "temporal-reduce",
        "/reduced",
        yaml.safe_dump(
            {
                "in_pattern": "series:///wells/*",
                "out_pattern": "$0",
                "resolutions": ["1h", "6h", "1d", "7d"],
                "aggregations": [{"type": "avg"}, {"type": "min"}, {"type": "max"}],
            }
        ).encode(),
    )
    out = work / "site"
    report = pond.site_build(out)
    import json
    import re

    page = (out / "series" / "wells_w00.html").read_text()
    manifest = json.loads(re.search(r'id="manifest">(.*?)</script>', page, re.S).group(1))
    tiers = [t["path"] for t in manifest["tiers"]]
    log(f"18: the site charts tiers {[t['name'] for t in manifest['tiers']]}")
    tier_paths = [p.replace("/w00/", f"/w{k:02d}/") for k in range(n_series) for p in tiers]

    def build() -> None:
        pond.refresh()
        pond.site_build(out)

    def read_tiers() -> int:
        pond.refresh()
        return sum(
            pond.sql("SELECT * FROM source ORDER BY timestamp", path=p).num_rows for p in tier_paths
        )

    cache = pond.root / "cache"

    def cold(fn: object) -> None:
        shutil.rmtree(cache, ignore_errors=True)
        fn()  # type: ignore[operator]

    cpu: dict[str, list[float]] = {}  # process CPU time (user+sys): less load-sensitive

    def on_cpu(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            c = time.process_time()
            fn()
            cpu.setdefault(name, []).append(time.process_time() - c)

        return run

    read_tiers()
    t = Timer(warmup=1)
    log(f"18a/b: {reps} reps (interleaved)")
    for _ in range(reps + 1):
        t.run("build", on_cpu("build", build))
        t.run("read", on_cpu("read", read_tiers))
        t.run("build_cold", lambda: cold(build))
        t.run("read_cold", lambda: cold(read_tiers))

    cpu_build, cpu_read = median(cpu["build"][1:]), median(cpu["read"][1:])
    log(
        f"18a: CPU time build {fmt_s(cpu_build)} vs read {fmt_s(cpu_read)} "
        f"({cpu_build / cpu_read:.2f}×); wall samples build "
        f"{[round(x * 1000) for x in t.samples['build'][1:]]} ms, read "
        f"{[round(x * 1000) for x in t.samples['read'][1:]]} ms"
    )
    total = dir_size(out)
    data = dir_size(out / "data")
    rows_out = [
        ratio_row(
            "18a",
            f"site build, {n_series} series x {rows:,} rows, vs Pond.sql of its tiers (warm)",
            t.median("build"),
            t.median("read"),
            2.0,
            build_samples_s=t.samples["build"][1:],
            read_samples_s=t.samples["read"][1:],
            build_cpu_s=cpu_build,
            read_cpu_s=cpu_read,
        ),
        ratio_row(
            "18b",
            "the same, derived-result cache emptied before each rep on both sides",
            t.median("build_cold"),
            t.median("read_cold"),
            2.0,
        ),
    ]
    per = total / n_series
    rows_out.append(
        Row(
            "18d",
            f"site size per series ({n_series} series, BokehJS included)",
            f"{per / 1e6:.2f} MB",
            f"{data / n_series / 1e6:.2f} MB data",
            "—",
            "≤ 2 MB",
            "yes" if per <= SIZE_GOAL else "no",
            {"site_bytes": total, "data_bytes": data, "series": n_series, "files": report.files},
        )
    )
    rows_out.extend(_wide_sizes(work))
    pages = {
        "18c": (
            "the one-panel page (a year of minutes, tiers 1h/6h)",
            out / "series" / "wells_w00.html",
        ),
        "18c'": (
            "the 6-panel page (13-column weather series)",
            work / "site-weather" / "series" / "weather_all.html",
        ),
    }
    rows_out[2:2] = _page_load(out, pages, rounds=5 if quick else 15)  # after 18a/18b
    notes = [
        f"18: tiers charted {[t['name'] for t in manifest['tiers']]}, "
        f"site {total:,} bytes in {report.files} files"
    ]
    return Result(rows_out, notes)


def _wide_sizes(work: Path) -> list[Row]:
    from .weather import csv_bytes, weather, wide

    table = weather()
    pond = Pond.create(work / "pond-weather")
    with pond.transaction(args=["bench", "weather"]) as tx:
        tx.write_series("/weather/all", table, parents=True)
        tx.write_series("/weather/wide", wide(table))
    out = work / "site-weather"
    pond.site_build(out)
    rows = []
    for key, name, cols, t in (("18e", "all", 13, table), ("18e'", "wide", 39, wide(table))):
        data, csv = dir_size(out / "data" / f"weather_{name}"), csv_bytes(t)
        log(f"18e: {name}: data {data:,} bytes, CSV {csv:,} bytes")
        rows.append(
            Row(
                key,
                f"site data of a {cols}-column series ({t.num_rows:,} rows, all tiers) vs its CSV",
                f"{data / 1e6:.2f} MB",
                f"{csv / 1e6:.2f} MB CSV",
                f"{data / csv:.2f}×",
                "≤ 2×",
                "yes" if data <= 2 * csv else "no",
                {"data_bytes": data, "csv_bytes": csv},
            )
        )
    return rows


def _page_load(out: Path, pages: dict[str, tuple[str, Path]], rounds: int) -> list[Row]:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        log("18c skipped: needs chromium (apt-get install chromium) and playwright")
        return []
    libonly = out.parent / "libonly.html"
    libonly.write_text(
        '<!doctype html><html><head><script src="site/lib/bokeh.min.js"></script>'
        '<script src="site/lib/bokeh-api.min.js"></script></head><body><script>'
        "requestAnimationFrame(() => { window.done = performance.now(); });"
        "</script></body></html>"
    )
    lib: list[float] = []
    drawn: dict[str, list[float]] = {k: [] for k in pages}
    marks: dict[str, list[dict[str, float]]] = {k: [] for k in pages}
    log(f"18c: {rounds} rounds of {len(pages) + 1} page loads, each in a fresh browser context")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)

        def load(path: Path, done: str, value: str) -> Any:
            ctx = browser.new_context(viewport={"width": 1100, "height": 760})
            try:
                page = ctx.new_page()
                page.goto(path.as_uri())
                page.wait_for_function(done)
                return page.evaluate(value)
            finally:
                ctx.close()

        keys = ["lib", *pages]
        for i in range(rounds + 1):
            shift = i % len(keys)
            got: dict[str, Any] = {}
            for key in keys[shift:] + keys[:shift]:  # rotating order
                if key == "lib":
                    got[key] = load(libonly, "window.done !== undefined", "window.done")
                else:
                    got[key] = load(
                        pages[key][1],
                        "window.pondSite && (pondSite.drawn || pondSite.errors.length)",
                        "[pondSite.firstDrawnMs, pondSite.errors, Object.fromEntries("
                        "performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))]",
                    )
                    if got[key][1]:
                        raise RuntimeError(f"18c: {pages[key][1].name}: {got[key][1]}")
            if i:  # the first round is a warm-up (the files into the OS cache)
                lib.append(got["lib"] / 1000)
                for key in pages:
                    drawn[key].append(got[key][0] / 1000)
                    marks[key].append(got[key][2])
        browser.close()
    rows = []
    for key, (what, _) in pages.items():
        steps = _steps(marks[key])
        log(f"18c: {key} steps (median ms): {steps}")
        rows.append(
            ratio_row(
                key,
                f"{what}: load to first drawn chart / a page loading only BokehJS, "
                "headless Chromium",
                median(drawn[key]),
                median(lib),
                2.0,
                ratio=median(d / b for d, b in zip(drawn[key], lib, strict=True)),
                samples_s=drawn[key],
                lib_samples_s=lib,
                steps_ms=steps,
            )
        )
    return rows


# The page's performance marks (site.js) in order: what each step of a load took.
STEPS = (
    ("scripts", None, "pond-begin"),  # navigation to site.js starting (BokehJS, data, HTML)
    ("figures", "pond-begin", "pond-start"),  # the first panel's BokehJS models
    ("data", "pond-start", "pond-data"),  # decoding the first view
    ("bokeh", "pond-data", "pond-shown"),  # BokehJS builds, lays out and paints it
    ("frame", "pond-shown", "pond-drawn"),  # to the next frame
)


def _steps(marks: list[dict[str, float]]) -> dict[str, float]:
    return {
        name: round(median(m[b] - (m[a] if a else 0.0) for m in marks), 1) for name, a, b in STEPS
    }
