"""Query results are in UTC whatever the machine's zone (query/sql.py sets the connection's
TimeZone): a TIMESTAMPTZ prints, truncates and casts to text in UTC under TZ=America/New_York,
on the small-result path (Python rows) and the Arrow path (Parquet out) alike."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import run_pond

NEW_YORK = {"TZ": "America/New_York"}
# 2023-11-14 22:13:20 UTC is 17:13:20 the same day in New York, and 2023-11-15 02:30 UTC is
# still the 14th there: a zone other than UTC would change every column below.
TIMES_US = [1_700_000_000_000_000, 1_700_015_400_000_000]
QUERY = (
    "SELECT timestamp AS t, date_trunc('day', timestamp) AS day, hour(timestamp) AS h, "
    "strftime(timestamp, '%Y-%m-%d %H:%M') AS text, timestamp::VARCHAR AS cast "
    "FROM source ORDER BY t"
)


def _parquet(tmp_path: Path) -> Path:
    path = tmp_path / "t.parquet"
    column = pa.array(TIMES_US, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"timestamp": column, "v": [1.0, 2.0]}), path)
    return path


def test_timestamptz_results_are_utc_under_another_machine_zone(tmp_path: Path) -> None:
    url = f"host+table://{_parquet(tmp_path)}"
    csv = run_pond("cat", url, "--sql", QUERY, "--format", "csv", env=NEW_YORK).stdout.decode()
    assert csv.splitlines() == [
        '"t","day","h","text","cast"',
        '"2023-11-14T22:13:20.000000Z","2023-11-14T00:00:00.000000Z",22,'
        '"2023-11-14 22:13","2023-11-14 22:13:20+00"',
        '"2023-11-15T02:30:00.000000Z","2023-11-15T00:00:00.000000Z",2,'
        '"2023-11-15 02:30","2023-11-15 02:30:00+00"',
    ]
    out = run_pond("cat", url, "--sql", QUERY, "--format", "parquet", env=NEW_YORK).stdout
    table = pq.read_table(io.BytesIO(out))
    assert table.schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert table.column("t").cast(pa.int64()).to_pylist() == TIMES_US
    assert table.column("day").cast(pa.int64()).to_pylist() == [
        1_699_920_000_000_000,  # 2023-11-14 00:00 UTC
        1_700_006_400_000_000,  # 2023-11-15 00:00 UTC
    ]
    assert table.column("h").to_pylist() == [22, 2]
    assert table.column("cast").to_pylist() == ["2023-11-14 22:13:20+00", "2023-11-15 02:30:00+00"]
