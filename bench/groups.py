"""The benchmark groups; each runs in its own spawned process (fresh caches, no fork)."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .common import Result

# group name -> (module, benchmarks it covers)
GROUPS: dict[str, tuple[str, str]] = {
    "writes": ("bench.writes", "1, 7, 8"),
    "commits": ("bench.commits", "6"),
    "sql": ("bench.sqlscan", "2"),
    "ingest": ("bench.ingest", "3"),
    "manyfiles": ("bench.manyfiles", "4, 5"),
    "history": ("bench.history", "9"),
    "dirs": ("bench.dirs", "10, 11"),
    "memory": ("bench.memory", "12"),
    "startup": ("bench.startup", "13"),
    "disk": ("bench.disk", "14"),
    "factories": ("bench.factories", "15"),
    "deltaskip": ("bench.deltaskip", "16"),
    "remotes": ("bench.remotes", "17"),
    "site": ("bench.site", "18"),
    "formats": ("bench.formats", "19"),
    "logfile": ("bench.logfile", "20"),
    "hydrovu": ("bench.hydrovu", "21"),
    "tlog": ("bench.tlog", "24"),
    "overlaps": ("bench.overlaps", "25"),
    "engine": ("bench.engine", "22"),
    "series": ("bench.series", "23"),
    "sealed": ("bench.sealed", "26"),
}


def run_group(name: str, work: str, quick: bool) -> tuple[Result, float]:
    module = importlib.import_module(GROUPS[name][0])
    group_dir = Path(work) / name
    group_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = module.run(group_dir, quick)
    return result, time.perf_counter() - t0
