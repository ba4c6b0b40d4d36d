"""A small pond for the site tests: a stored minute series with temporal-reduce tiers, a
derived series without tiers, a post-commit job that always fails, and a known write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from duckpond.pond import Pond

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z, µs
MINUTE = 60_000_000
DAYS = 10


def minute_series(days: int = DAYS) -> pa.Table:
    n = days * 1440
    i = np.arange(n, dtype=np.int64)
    return pa.table(
        {
            "timestamp": pa.array(T0 + i * MINUTE, pa.timestamp("us", tz="UTC")),
            "level": pa.array(10 + 3 * np.sin(i / 1440 * 2 * np.pi) + 0.5 * np.sin(i * 0.37)),
        }
    )


def make_pond(root: Path) -> tuple[Pond, int]:
    """The pond, and the txn_seq of the write that stored /wells/north."""
    pond = Pond.create(root)
    pond.mknod(
        "test-executor",
        "/etc/system.d/20-notify",
        yaml.safe_dump({"message": "notify is down", "fail": True}).encode(),
    )
    with pond.transaction(args=["pond", "copy", "north"]) as tx:
        tx.write_series("/wells/north", minute_series(), parents=True)
        seq = tx.txn_seq
    pond.mknod(
        "temporal-reduce",
        "/reduced",
        yaml.safe_dump(
            {
                "in_pattern": "series:///wells/*",
                "out_pattern": "$0",
                "resolutions": ["1h", "6h", "1d"],
                "aggregations": [{"type": "avg"}, {"type": "min"}, {"type": "max"}],
            }
        ).encode(),
    )
    pond.mknod(
        "synthetic-timeseries",
        "/derived/wave",
        yaml.safe_dump(
            {
                "start": "2024-01-01T00:00:00Z",
                "end": "2024-01-10T23:45:00Z",
                "interval": "15m",
                "points": [{"name": "flow", "components": [{"type": "sine", "period": "1d"}]}],
            }
        ).encode(),
    )
    return pond, seq
