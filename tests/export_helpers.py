"""Ponds for the export tests: an hourly series (made with the real CLI, or for the shared
template with the library calls it makes), and its rows as the pond itself reads them (the
values every exported copy must hold exactly)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import run_pond

from duckpond.pond import Pond

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def hourly_csv(path: Path, start_hour: int, hours: int) -> Path:
    """`hours` rows one hour apart from T0 + start_hour: v = the hour's index, f = v / 4,
    name = "h<v>"."""
    lines = ["timestamp,v,f,name"]
    for i in range(start_hour, start_hour + hours):
        t = (T0 + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{t},{i},{i / 4},h{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def add_version(
    root: Path, tmp: Path, series: str, start_hour: int, hours: int, env: Any = None
) -> None:
    """One more version of `series` (created with its directory the first time)."""
    csv = hourly_csv(tmp / f"v{start_hour}-{hours}.csv", start_hour, hours)
    parent = series.rsplit("/", 1)[0] or "/"
    run_pond("mkdir", "-p", parent, pond=root, env=env)
    run_pond("copy", f"host+csv+series://{csv}", series, pond=root, env=env)


def build_pond48(root: Path, scratch: Path) -> None:
    """/s/temp: 48 hourly rows over 2024-01-01 and 02, in two versions (4 transactions).

    Built through the library with the very transactions `pond init`, `pond mkdir -p /s`
    and `pond copy host+csv+series://... /s/temp` make (each of those commands is one such
    call; the CLI's own tests cover them): the export tests need the pond, and five `pond`
    processes per worker cost more than the build."""
    cli = ["pond", "--pond", str(root)]
    pond = Pond.create(root, args=[*cli, "init"])
    for start_hour, hours in ((0, 30), (30, 18)):
        csv = hourly_csv(scratch / f"v{start_hour}-{hours}.csv", start_hour, hours)
        with pond.transaction([*cli, "mkdir", "-p", "/s"]) as tx:
            tx.mkdir("/s", parents=True)
        url = f"host+csv+series://{csv}"
        pond.copy_in([url], "/s/temp", args=[*cli, "copy", url, "/s/temp"])


def pond_rows(root: Path, path: str) -> list[dict[str, Any]]:
    """The series' rows as the pond reads them, time as µs since the epoch, by time."""
    return normalized(Pond.open(root).read_table(path))


def normalized(table: pa.Table, time: str = "timestamp") -> list[dict[str, Any]]:
    """Rows sorted by time, the time column as int µs UTC, partition columns dropped."""
    keep = [c for c in table.column_names if c not in ("year", "month", "day", "hour")]
    table = table.select(keep)
    col = table.column(time).cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    table = table.set_column(table.column_names.index(time), time, col)
    return table.sort_by(time).to_pylist()


def parquet_files(out: Path) -> dict[str, int]:
    """Every .parquet file below `out` (relative path -> rows)."""
    return {
        str(p.relative_to(out)): pq.ParquetFile(p).metadata.num_rows
        for p in sorted(out.rglob("*.parquet"))
    }
