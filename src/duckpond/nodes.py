"""The node model: ids, entry types and the row that stores one version of one node."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

# The root directory has a fixed id so every pond agrees on where the tree starts.
ROOT_ID = "00000000-0000-7000-8000-000000000000"

# Entry types as shown by `list -l` and in JSON (SPEC §3).
DIR_PHYSICAL = "dir:physical"
DIR_DYNAMIC = "dir:dynamic"
SYMLINK = "symlink"
FILE_DATA = "file:data:physical"
FILE_TABLE = "file:table:physical"
FILE_SERIES = "file:series:physical"
FILE_DATA_DYNAMIC = "file:data:dynamic"
FILE_TABLE_DYNAMIC = "file:table:dynamic"
FILE_SERIES_DYNAMIC = "file:series:dynamic"

ENTRY_TYPES = (
    DIR_PHYSICAL,
    DIR_DYNAMIC,
    SYMLINK,
    FILE_DATA,
    FILE_TABLE,
    FILE_SERIES,
    FILE_DATA_DYNAMIC,
    FILE_TABLE_DYNAMIC,
    FILE_SERIES_DYNAMIC,
)

# Contents at or above this size live outside the rows, in the blob store.
LARGE_CONTENT_THRESHOLD = 64 * 1024


def is_dir(file_type: str) -> bool:
    return file_type.startswith("dir:")


def is_file(file_type: str) -> bool:
    return file_type.startswith("file:")


def is_table(file_type: str) -> bool:
    return file_type.startswith("file:table:")


def is_series(file_type: str) -> bool:
    return file_type.startswith("file:series:")


def is_dynamic(file_type: str) -> bool:
    return file_type.endswith(":dynamic")


class _Uuid7Clock:
    """Millisecond time plus a counter, so ids made within one millisecond stay ordered."""

    def __init__(self) -> None:
        self.last_ms = 0
        self.seq = 0

    def tick(self) -> tuple[int, int]:
        ms = time.time_ns() // 1_000_000
        if ms <= self.last_ms:
            self.seq += 1
            ms = self.last_ms
        else:
            self.seq = 0
            self.last_ms = ms
        return ms, self.seq


_uuid7_clock = _Uuid7Clock()


def uuid7() -> str:
    """A UUIDv7 string: time-ordered, so ids sort by creation time."""
    # Same millisecond: the counter goes in rand_a so ids stay monotonic in-process.
    ms, seq = _uuid7_clock.tick()
    rand_a = seq & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def now_us() -> int:
    return time.time_ns() // 1000


# An appended log (storage/applog.py) is marked in each version's extended attributes, with
# the log's total size after that version.
APPEND_LOG_KEY = "log"
APPEND_LOG_MARK = "append"
APPEND_LOG_SIZE_KEY = "log_size"


class NodeRow:
    """One version of one node, as stored in the data table.

    `content` is inline bytes, or None when it lives in the blob store. Rows made from the
    partition index load it on first use (`loader`): listing a big directory never reads
    the contents of its files.
    """

    # The stored columns, in the order of the constructor's parameters.
    FIELDS = (
        "part_id",
        "node_id",
        "file_type",
        "version",
        "timestamp",
        "content",
        "content_hash",
        "size",
        "txn_seq",
        "min_event_time",
        "max_event_time",
        "extended_attributes",
        "factory",
    )
    # `content` is a property over `_content`, filled by `_loader` on first use.
    __slots__ = (*(f for f in FIELDS if f != "content"), "_content", "_loader")

    def __init__(
        self,
        part_id: str,
        node_id: str,
        file_type: str,
        version: int,
        timestamp: int,  # µs since epoch, UTC
        content: bytes | None,
        content_hash: str | None,  # sha256 hex of the content
        size: int,
        txn_seq: int,
        min_event_time: int | None = None,
        max_event_time: int | None = None,
        extended_attributes: dict[str, Any] | None = None,
        factory: str | None = None,
        loader: Callable[[], bytes | None] | None = None,
    ) -> None:
        self.part_id = part_id
        self.node_id = node_id
        self.file_type = file_type
        self.version = version
        self.timestamp = timestamp
        self._content = content
        self._loader = loader
        self.content_hash = content_hash
        self.size = size
        self.txn_seq = txn_seq
        self.min_event_time = min_event_time
        self.max_event_time = max_event_time
        self.extended_attributes = extended_attributes if extended_attributes is not None else {}
        self.factory = factory

    @property
    def content(self) -> bytes | None:
        if self._loader is not None:
            self._content, self._loader = self._loader(), None
        return self._content

    @property
    def in_blob(self) -> bool:
        return self.content_hash is not None and self.content is None

    @property
    def logical_size(self) -> int:
        """The size a reader sees: an appended log's (storage/applog.py) total after this
        version, recorded with it; any other row's own size."""
        if self.extended_attributes.get(APPEND_LOG_KEY) == APPEND_LOG_MARK:
            return int(self.extended_attributes.get(APPEND_LOG_SIZE_KEY, self.size))
        return self.size

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeRow) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        shown = {f: getattr(self, f) for f in self.FIELDS if f != "content"}
        return f"NodeRow({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def with_changes(self, **kw: object) -> NodeRow:
        values = {f: getattr(self, f) for f in self.FIELDS}
        values.update(kw)
        return NodeRow(**values)


# A series version that adds no data but selects which earlier versions the series keeps
# (`pond revert` of an append): {"series": "keep", "keep": [1, 2, 4], "time_column": ...}.
# A reader unions the kept versions and every version after the newest such marker.
SERIES_SELECT_KEY = "series"
SERIES_SELECT_MARK = "keep"
SERIES_KEEP_KEY = "keep"


def is_series_selection(row: NodeRow) -> bool:
    return row.extended_attributes.get(SERIES_SELECT_KEY) == SERIES_SELECT_MARK
