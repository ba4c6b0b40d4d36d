"""Benchmark 19: format readers (issue 20).

19a an `oteljson` file of ~100 MB (OTLP metrics as JSON lines, shaped as a collector's file
    exporter writes them: resource and scope attributes, 12 gauges and sums per line, one
    line per 10 s) read as a table through the query layer (`read_source` of
    `host+oteljson:///…`, parse cache cleared each rep) vs `json.loads` of every line of
    the same file in the same process (reading the file included on both sides).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from duckpond import formats
from duckpond.pond import read_source

from .common import Result, Timer, log, ratio_row

T0 = 1_700_000_000 * 1_000_000_000
GAUGES = [f"gauge_{i:02d}" for i in range(9)]
SUMS = ["requests_total", "bytes_total", "errors_total"]


def _line(rng: random.Random, i: int) -> str:
    t = str(T0 + i * 10 * 1_000_000_000)
    attrs = [{"key": "host", "value": {"stringValue": "pump-house-3"}}]

    def point(value: float | int) -> dict[str, object]:
        p: dict[str, object] = {
            "attributes": attrs,
            "startTimeUnixNano": str(T0),
            "timeUnixNano": t,
        }
        if isinstance(value, int):
            p["asInt"] = str(value)
        else:
            p["asDouble"] = value
        return p

    metrics: list[dict[str, object]] = [
        {"name": n, "unit": "1", "gauge": {"dataPoints": [point(rng.random() * 100)]}}
        for n in GAUGES
    ]
    metrics += [
        {
            "name": n,
            "unit": "1",
            "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": True,
                "dataPoints": [point(i * 7 + k)],
            },
        }
        for k, n in enumerate(SUMS)
    ]
    doc = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "pumps"}}]
                },
                "scopeMetrics": [{"scope": {"name": "bench", "version": "1"}, "metrics": metrics}],
            }
        ]
    }
    return json.dumps(doc, separators=(",", ":"))


def write_file(path: Path, size: int) -> int:
    rng = random.Random(19)
    lines = 0
    written = 0
    with path.open("w") as f:
        while written < size:
            line = _line(rng, lines) + "\n"
            f.write(line)
            written += len(line)
            lines += 1
    return lines


def run(work: Path, quick: bool) -> Result:
    size = (10 if quick else 100) << 20
    reps = 3 if quick else 5
    path = work / "metrics.json"
    lines = write_file(path, size)
    log(f"19a: {path.stat().st_size / 1e6:.0f} MB, {lines:,} lines of OTLP JSON")
    url = f"host+oteljson://{path}"

    def baseline() -> int:
        n = 0
        for line in path.read_bytes().splitlines():
            json.loads(line)
            n += 1
        return n

    def figure() -> int:
        formats.cache.clear()
        rows: int = read_source(url, None).num_rows
        return rows

    if figure() != lines or baseline() != lines:
        raise RuntimeError("19a: the table does not have one row per line")
    t = Timer(warmup=1)
    log(f"19a: {reps} reps (interleaved)")
    for _ in range(reps + 1):
        t.run("baseline", baseline)
        t.run("figure", figure)
    return Result(
        [
            ratio_row(
                "19a",
                "oteljson ~100 MB read as a table vs json.loads of its lines",
                t.median("figure"),
                t.median("baseline"),
                1.5,
                bytes=path.stat().st_size,
                lines=lines,
            )
        ]
    )
