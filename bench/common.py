"""Shared helpers: timing, result rows, the results table, whole-process runs."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
POND_BIN = VENV_BIN / "pond"


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the results table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One line of the results table."""

    key: str  # "1a", "2b", ...
    name: str
    figure: str
    baseline: str
    ratio: str
    goal: str
    met: str  # "yes" / "no" / "n/a"
    raw: dict[str, Any] = field(default_factory=dict)  # numbers behind the figures


@dataclass
class Result:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def fmt_s(seconds: float) -> str:
    """A duration with 3 significant digits in a readable unit."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def ratio_row(
    key: str,
    name: str,
    figure: float,
    baseline: float,
    goal: float | None,
    *,
    ratio: float | None = None,
    **raw: Any,
) -> Row:
    """`figure / baseline` (or `ratio` when given, e.g. Timer.pair_ratio) against
    `ratio <= goal` (goal None: reported only)."""
    if ratio is None:
        ratio = figure / baseline if baseline > 0 else float("inf")
    if goal is None:
        goal_s, met = "—", "n/a"
    else:
        goal_s, met = f"≤ {goal:g}×", "yes" if ratio <= goal else "no"
    return Row(
        key,
        name,
        fmt_s(figure),
        fmt_s(baseline),
        _fmt_ratio(ratio, goal),
        goal_s,
        met,
        {"figure_s": figure, "baseline_s": baseline, "ratio": ratio, **raw},
    )


def _fmt_ratio(ratio: float, goal: float | None) -> str:
    text = f"{ratio:.2f}"
    if goal is not None and float(text) == goal and ratio != goal:
        text = f"{ratio:.3f}"  # 2.004 must not read as 2.00 next to "no"
    return text + "×"


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


class Timer:
    """Collects the durations of named operations; `median(name)` after a warm-up."""

    def __init__(self, warmup: int = 1) -> None:
        self.warmup = warmup
        self.samples: dict[str, list[float]] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.samples.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        xs = self.samples[name]
        kept = xs[self.warmup :] if len(xs) > self.warmup else xs
        return median(kept)

    def mean(self, name: str) -> float:
        xs = self.samples[name]
        kept = xs[self.warmup :] if len(xs) > self.warmup else xs
        return statistics.mean(kept)

    def count(self, name: str) -> int:
        return max(0, len(self.samples[name]) - self.warmup)

    def pair_ratio(self, figure: str, baseline: str) -> float:
        """The median of the ratios of the i-th samples of `figure` and `baseline` after the
        warm-up: each pair ran back to back, so a burst of machine load slows both sides
        of one pair rather than one median (steadier than a ratio of medians)."""
        a = self.samples[figure][self.warmup :]
        b = self.samples[baseline][self.warmup :]
        return median(x / y for x, y in zip(a, b, strict=True))


def run_process(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one whole process (output discarded); raises if it fails."""
    full_env = dict(os.environ)
    full_env.pop("POND", None)
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}"
        )
    return elapsed


def pond_cmd(pond: Path, *args: str) -> list[str]:
    return [str(POND_BIN), "--pond", str(pond), *args]


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def render_table(rows: list[Row]) -> str:
    head = ["#", "benchmark", "figure", "baseline", "ratio", "goal", "met"]
    body = [[r.key, r.name, r.figure, r.baseline, r.ratio, r.goal, r.met] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])
