"""Reads of a Delta table the pond wrote, without `pyarrow.dataset` or delta-rs scans:
one Parquet file at a time (a missing or unreadable one is one line naming it), where
the log stands (its next entry, its last checkpoint), the live files of a delta-rs
handle, and the history of the commits' custom metadata, including what log pruning
archived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import PondError
from .pqread import ParquetFile, pq  # pq: pyarrow.parquet, imported on first use

if TYPE_CHECKING:
    from deltalake import DeltaTable

ARCHIVE_DIR = "_pond_archive"  # '_' prefix: ignored by Delta readers and by vacuum
ARCHIVE_SCHEMA = pa.schema(
    [("version", pa.int64()), ("timestamp", pa.int64()), ("metadata", pa.string())]
)


def archived_metadata(table_dir: Path) -> list[tuple[int, int, str]]:
    """(version, timestamp ms, raw metadata) saved by prune_log, oldest first."""
    arch = table_dir / ARCHIVE_DIR
    if not arch.is_dir():
        return []
    out: list[tuple[int, int, str]] = []
    for path in sorted(arch.glob("*.parquet")):
        t = pq.ParquetFile(path).read()
        out.extend(
            zip(
                t["version"].to_pylist(),
                t["timestamp"].to_pylist(),
                t["metadata"].to_pylist(),
                strict=True,
            )
        )
    return out


def has_commits_after(table_dir: Path, version: int) -> bool:
    """Whether the table has moved past `version`: a stat of the next log entry, or, when
    that entry was pruned meanwhile, a newer checkpoint."""
    if (table_dir / "_delta_log" / f"{version + 1:020d}.json").exists():
        return True
    return last_checkpoint_version(table_dir) > version


def last_checkpoint_version(table_dir: Path) -> int:
    try:
        return int(
            json.loads((table_dir / "_delta_log" / "_last_checkpoint").read_text())["version"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return 0


SMALL_FILE_ROWS = 10_000


def read_parquet(
    path: Path,
    columns: list[str] | None = None,
    min_value: tuple[str, int] | None = None,
) -> pa.Table:
    """Read one Parquet file without `pyarrow.dataset` (whose import pulls in pandas,
    ~190 ms per process). `min_value=(col, v)` keeps rows with col >= v, skipping row
    groups whose statistics say they hold none."""
    pf = open_parquet(path)
    # Decoding columns on the thread pool costs more than it saves for a small file (most
    # control files hold a few rows).
    threads = pf.metadata.num_rows > SMALL_FILE_ROWS
    if min_value is None:
        return pf.read(columns=columns, use_threads=threads)
    name, value = min_value
    idx = pf.schema_arrow.get_field_index(name)
    groups = []
    whole = True  # every kept row group holds only rows >= value: nothing to filter
    for i in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(i).column(idx).statistics
        if stats is None or not stats.has_min_max or stats.max >= value:
            groups.append(i)
            whole = whole and stats is not None and stats.has_min_max and stats.min >= value
    if groups and whole:
        return pf.read_row_groups(groups, columns=columns, use_threads=threads)
    want = columns if columns is None or name in columns else [*columns, name]
    if groups:
        table = pf.read_row_groups(groups, columns=want, use_threads=threads)
    else:
        table = pf.schema_arrow.empty_table()
        table = table if want is None else table.select(want)
    import pyarrow.compute as pc  # ~100 ms to import: only when a floor is given

    table = table.filter(pc.greater_equal(table[name], value))
    return table if columns is None or name in columns else table.drop_columns([name])


def open_parquet(path: Path) -> ParquetFile:
    """Open a table's Parquet file; a missing or unreadable one is one line naming it."""
    try:
        return ParquetFile(path)
    except FileNotFoundError:
        raise PondError(f"{_rel(path)} is missing; run `pond fsck`") from None
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise PondError(f"{_rel(path)} is unreadable ({e}); run `pond fsck`") from None


def _rel(path: Path) -> str:
    """A table file's path from the pond's directory (`data/part_id=.../part-...`)."""
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("data", "control"):
            return "/".join(parts[i:])
    return str(path)


def add_actions(dt: DeltaTable) -> pa.Table:
    # from_stream, not pa.table(): the latter imports pandas (~190 ms) to check the type.
    return pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()


def history_metadata(dt: DeltaTable, table_dir: Path, key: str) -> list[tuple[int, int, Any]]:
    """(version, timestamp ms, parsed custom metadata `key`) of every commit that carries
    it, from the archive and the live log, newest first."""
    seen: dict[int, tuple[int, int, Any]] = {}
    for version, ts, archived in archived_metadata(table_dir):
        seen[version] = (version, ts, json.loads(archived))
    for h in dt.history():
        raw = h.get(key)
        if raw:
            v = int(h["version"])
            seen[v] = (v, int(h.get("timestamp", 0)), json.loads(raw))
    return [seen[v] for v in sorted(seen, reverse=True)]
