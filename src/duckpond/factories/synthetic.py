"""`synthetic-timeseries`: a series computed from waveforms (sine, triangle, square, line)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import FactoryError
from .base import DATA, Factory, Fields
from .live import TIME_TYPE, BuildContext, DerivedFile, digest, parse_duration, parse_time

WAVES = ("sine", "triangle", "square", "line")
MAX_ROWS = 50_000_000


class SyntheticTimeseries(Factory):
    name = "synthetic-timeseries"
    kind = DATA
    file_type = "file:series:dynamic"
    description = (
        "A series of generated points from `start` to `end` (inclusive) every `interval`; "
        "each of `points: [{name, components}]` is a column, the sum of its components "
        "{type: sine|triangle|square|line, amplitude, period, offset, phase, slope}, "
        "t in seconds since start; time column `time_column` (timestamp), UTC."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "start": parse_time(f.get("start", object, required=True), "start"),
            "end": parse_time(f.get("end", object, required=True), "end"),
            "interval": parse_duration(f.get("interval", (str,), required=True), "interval"),
            "time_column": f.get("time_column", str, "timestamp"),
            "points": f.get("points", list, required=True),
        }
        f.done()
        if out["end"] < out["start"]:
            raise FactoryError(f"{self.name}: 'end' is before 'start'")
        if (out["end"] - out["start"]) // out["interval"] + 1 > MAX_ROWS:
            raise FactoryError(f"{self.name}: more than {MAX_ROWS} points; use a longer interval")
        if not out["points"]:
            raise FactoryError(f"{self.name}: 'points' must name at least one column")
        points = []
        names = {out["time_column"]}
        for p in out["points"]:
            if not isinstance(p, dict):
                raise FactoryError(f"{self.name}: each point is a mapping {{name, components}}")
            pf = Fields(f"{self.name} point", p)
            name = pf.get("name", str, required=True)
            comps = pf.get("components", list, required=True)
            pf.done()
            if name in names:
                raise FactoryError(f"{self.name}: column '{name}' is named twice")
            names.add(name)
            points.append({"name": name, "components": [self._component(c) for c in comps]})
        out["points"] = points
        return out

    def _component(self, c: Any) -> dict[str, Any]:
        if not isinstance(c, dict):
            raise FactoryError(f"{self.name}: a component is a mapping {{type, amplitude, ...}}")
        cf = Fields(f"{self.name} component", c)
        num = (int, float)
        wave = cf.get("type", str, required=True)
        period = cf.get("period", (str, int, float), None)
        out = {
            "type": wave,
            "amplitude": float(cf.get("amplitude", num, 1.0)),
            "offset": float(cf.get("offset", num, 0.0)),
            "phase": float(cf.get("phase", num, 0.0)),
            "slope": float(cf.get("slope", num, 0.0)),
        }
        cf.done()
        if wave not in WAVES:
            raise FactoryError(
                f"{self.name}: unknown component type '{wave}' (use {', '.join(WAVES)})"
            )
        if wave != "line":
            if period is None:
                raise FactoryError(f"{self.name}: a {wave} component needs 'period'")
            # a number is seconds; a string a duration (1d, 6h)
            secs = (
                float(period)
                if isinstance(period, int | float)
                else parse_duration(period, "period") / 1e6
            )
            if secs <= 0:
                raise FactoryError(f"{self.name}: 'period' must be positive")
            out["period"] = secs
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> SyntheticFile:
        return SyntheticFile(ctx, config)


class SyntheticFile(DerivedFile):
    def __init__(self, ctx: BuildContext, config: dict[str, Any]) -> None:
        super().__init__(ctx, ctx.path, SyntheticTimeseries.file_type, SyntheticTimeseries.name)
        self.config = config
        self.time_column = config["time_column"]

    def key(self) -> str:
        return digest(self.factory, self.config)

    def schema(self) -> pa.Schema:
        fields = [pa.field(self.time_column, TIME_TYPE)]
        fields += [pa.field(p["name"], pa.float64()) for p in self.config["points"]]
        return pa.schema(fields)

    def compute(self, start: int | None, end: int | None) -> pa.Table:
        c = self.config
        t0, step = c["start"], c["interval"]
        first = 0 if start is None or start <= t0 else -(-(start - t0) // step)
        last = (c["end"] - t0) // step
        if end is not None:
            last = min(last, (end - t0) // step) if end >= t0 else -1
        idx = np.arange(first, last + 1, dtype=np.int64) if last >= first else np.array([], "i8")
        micros = t0 + idx * step
        secs = (micros - t0) / 1e6
        columns: list[pa.Array] = [pa.array(micros, pa.int64()).cast(TIME_TYPE)]
        for p in c["points"]:
            total = np.zeros(len(idx))
            for comp in p["components"]:
                total += wave(comp, secs)
            columns.append(pa.array(total, pa.float64()))
        return pa.Table.from_arrays(columns, schema=self.schema())


def wave(comp: dict[str, Any], t: np.ndarray) -> np.ndarray:
    """One component's values at `t` seconds since start (formulas in docs/factories/data.md)."""
    kind, a, off = comp["type"], comp["amplitude"], comp["offset"]
    out: np.ndarray
    if kind == "line":
        out = off + comp["slope"] * t
        return out
    # position within the period in [0, 1), phase (radians) shifting it
    frac = np.mod(t / comp["period"] + comp["phase"] / (2 * math.pi), 1.0)
    if kind == "sine":
        out = off + a * np.sin(2 * math.pi * t / comp["period"] + comp["phase"])
    elif kind == "triangle":
        out = off + a * np.where(frac < 0.5, -1 + 4 * frac, 3 - 4 * frac)
    else:  # square: sign(sin) with sign(0) = +1, i.e. +1 on [0, 1/2], -1 on (1/2, 1)
        out = off + a * np.where(frac <= 0.5, 1.0, -1.0)
    return out


FACTORY = SyntheticTimeseries()
