"""Directory encodings: how a directory version stores its entries, and the entry set
they make.

A directory version records what changed: a *delta* (JSON `{"changes": [[name, node_id,
type], [name, null, null] (removed), ...]}`, marked by `extended_attributes`
`{"dir": "delta"}`) or, every so often, a full *snapshot* (an Arrow IPC stream of
name/node_id/file_type sorted by name; ponds written before deltas hold JSON
`{"entries": [...]}` snapshots, still read). The entry set is the latest snapshot with the
later deltas folded on top. A write stores only its changes, so its cost does not grow with
the directory; a snapshot is taken once the deltas since the last one reach 1/64 of the
directory (at least 64), which bounds both the fold and the snapshot bytes per write.
(The snapshot cadence: storage/staging.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa

from .partindex import use_compute

# Up to this many entries a directory's entry set is merged in Python, not with
# pyarrow.compute (whose import costs ~50 ms of a `pond` process's start-up).
SMALL_DIR_ENTRIES = 2048

DELTA_ATTRS = {"dir": "delta"}
DELTA_ATTRS_JSON = json.dumps(DELTA_ATTRS, sort_keys=True)  # as the data table stores it
DELTA_PARTIAL: frozenset[str | None] = frozenset([DELTA_ATTRS_JSON])  # not a snapshot

SNAPSHOT_SCHEMA = pa.schema(
    [("name", pa.string()), ("node_id", pa.string()), ("file_type", pa.string())]
)


@dataclass(frozen=True)
class Entry:
    name: str
    node_id: str
    file_type: str


Changes = dict[str, Entry | None]  # name -> new entry, or None when removed


class DeltaChanges(Mapping[str, "Entry | None"]):
    """One stored delta's changes, decoded on first need: looking up a name its bytes do
    not hold (every new name a write adds) decodes nothing, so a fresh process writing
    into a big directory does not turn the deltas since its snapshot into objects. A
    long-lived reader decodes after a few lookups (each searches the whole text)."""

    __slots__ = ("raw", "_changes", "_escaped", "_probes")
    DECODE_AFTER = 8

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._changes: Changes | None = None
        self._escaped: bool | None = None  # whether the JSON text holds any escape
        self._probes = 0

    def decoded(self) -> Changes:
        if self._changes is None:
            self._changes = decode_delta(self.raw)
        return self._changes

    def __contains__(self, name: object) -> bool:
        if self._changes is None and isinstance(name, str):
            self._probes += 1
            if self._probes <= self.DECODE_AFTER and not self._may_hold(name):
                return False
        return name in self.decoded()

    def __getitem__(self, name: str) -> Entry | None:
        return self.decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def bound(self) -> int:
        """At least len(self), without decoding: items are separated by `],[` (a name
        holding those characters only makes it larger)."""
        if self._changes is not None:
            return len(self._changes)
        return self.raw.count(b"],[") + 1 if b"[[" in self.raw else 0

    def _may_hold(self, name: str) -> bool:
        """Whether the JSON may name `name`. encode_delta spells a plain ASCII name as
        itself in quotes, and JSON can spell it otherwise only with escapes (a backslash):
        without one in the text, a quoted occurrence is the only way it can be there."""
        if not name.isascii() or not name.isprintable() or '"' in name or "\\" in name:
            return True
        if self._escaped is None:
            self._escaped = b"\\" in self.raw
        return self._escaped or b'"' + name.encode() + b'"' in self.raw


class DirEntries:
    """A directory's entry set: a snapshot (Arrow, sorted by name) under layers of changes.

    Lookups never decode the whole directory: the layers are dicts (a stored delta decoded
    only when a name may be in it), the snapshot is binary-searched.
    """

    def __init__(
        self,
        base: pa.Table | None = None,
        layers: tuple[Mapping[str, Entry | None], ...] = (),
        _lookup: _BaseLookup | None = None,
    ) -> None:
        self.base = base if base is not None else SNAPSHOT_SCHEMA.empty_table()
        self._lookup = _lookup or _BaseLookup(self.base)
        self.layers = layers  # newest first

    def with_layer(self, changes: Mapping[str, Entry | None]) -> DirEntries:
        if not isinstance(changes, DeltaChanges) and not changes:  # (len() would decode)
            return self
        return DirEntries(self.base, (changes, *self.layers), self._lookup)

    def get(self, name: str) -> Entry | None:
        for layer in self.layers:
            if isinstance(layer, DeltaChanges) and layer._changes is not None:
                layer = layer._changes  # decoded: a dict lookup (a long-lived reader's layers)
            if name in layer:
                return layer[name]
        return self._lookup.get(name)

    def changes(self) -> Changes:
        """Every layer merged, oldest first."""
        merged: Changes = {}
        for layer in reversed(self.layers):
            merged.update(layer)
        return merged

    @property
    def changed_count(self) -> int:
        return sum(len(layer) for layer in self.layers)

    @property
    def changed_bound(self) -> int:
        """At least changed_count, without decoding stored deltas."""
        return sum(
            layer.bound() if isinstance(layer, DeltaChanges) else len(layer)
            for layer in self.layers
        )

    def snapshot(self) -> pa.Table:
        """The whole entry set as a snapshot table (vectorized: no object per entry)."""
        changes = self.changes()
        if not changes:
            return self.base
        if not use_compute(self.base.num_rows, SMALL_DIR_ENTRIES):
            return self._small_snapshot(changes)
        import pyarrow.compute as pc  # ~50 ms to import: only for big directories

        keep = self.base.filter(
            pc.invert(pc.is_in(self.base["name"], value_set=pa.array(list(changes), pa.string())))
        )
        added = [e for e in changes.values() if e is not None]
        extra = pa.table(
            {
                "name": [e.name for e in added],
                "node_id": [e.node_id for e in added],
                "file_type": [e.file_type for e in added],
            },
            schema=SNAPSHOT_SCHEMA,
        )
        return pa.concat_tables([keep, extra]).sort_by("name").combine_chunks()

    def _small_snapshot(self, changes: Changes) -> pa.Table:
        """snapshot() in Python: a process that lists or writes a small directory (or a
        big one before anything loaded pyarrow.compute) never imports pyarrow.compute."""
        rows = self._merged(changes)
        names, ids, types = zip(*rows, strict=True) if rows else ((), (), ())
        return pa.table(
            {"name": list(names), "node_id": list(ids), "file_type": list(types)},
            schema=SNAPSHOT_SCHEMA,
        )

    def _merged(self, changes: Changes) -> list[tuple[str, str, str]]:
        """The base's entries with the changes applied, sorted by name, in Python."""
        base = self.base
        rows = [
            row
            for row in zip(
                base["name"].to_pylist(),
                base["node_id"].to_pylist(),
                base["file_type"].to_pylist(),
                strict=True,
            )
            if row[0] not in changes
        ]
        rows += [(e.name, e.node_id, e.file_type) for e in changes.values() if e is not None]
        rows.sort()  # names are unique: by name; nearly sorted already, so nearly linear
        return rows

    def entries(self) -> list[Entry]:
        """Every entry, sorted by name."""
        return [Entry(n, i, f) for n, i, f in self.columns()]

    def columns(self) -> Iterator[tuple[str, str, str]]:
        """(name, node_id, file_type) of every entry, sorted by name, without an object
        per entry (listing a big directory)."""
        changes = self.changes()
        if changes and not use_compute(self.base.num_rows, SMALL_DIR_ENTRIES):
            return iter(self._merged(changes))
        t = self.snapshot()
        return zip(
            t["name"].to_pylist(),
            t["node_id"].to_pylist(),
            t["file_type"].to_pylist(),
            strict=True,
        )

    def __len__(self) -> int:
        return self.snapshot().num_rows


class _BaseLookup:
    """Names of a snapshot: binary search over the Arrow column for the first lookups (a
    process that writes one file never turns the snapshot into Python objects), a dict
    once a process looks up many."""

    DICT_AFTER = 32

    def __init__(self, base: pa.Table) -> None:
        self.base = base
        self.names = base.column("name").combine_chunks()
        self.lookups = 0
        self.by_name: dict[str, int] | None = None

    def get(self, name: str) -> Entry | None:
        self.lookups += 1
        if self.by_name is None and self.lookups > self.DICT_AFTER:
            self.by_name = {n: i for i, n in enumerate(self.names.to_pylist())}
        if self.by_name is not None:
            i = self.by_name.get(name, -1)
        else:
            lo, hi = 0, len(self.names)
            while lo < hi:
                mid = (lo + hi) // 2
                if self.names[mid].as_py() < name:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo if lo < len(self.names) and self.names[lo].as_py() == name else -1
        if i < 0:
            return None
        return Entry(name, self.base["node_id"][i].as_py(), self.base["file_type"][i].as_py())


def encode_snapshot(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SNAPSHOT_SCHEMA) as writer:
        same = table.schema.equals(SNAPSHOT_SCHEMA)  # cast imports pyarrow.compute
        writer.write_table(table if same else table.cast(SNAPSHOT_SCHEMA))
    return sink.getvalue().to_pybytes()


def encode_delta(changes: Changes) -> bytes:
    items = [
        [name, e.node_id, e.file_type] if e is not None else [name, None, None]
        for name, e in sorted(changes.items())
    ]
    return json.dumps({"changes": items}, separators=(",", ":")).encode()


def decode_snapshot(content: bytes) -> pa.Table:
    """A full snapshot, in either form (Arrow IPC, or the JSON of older ponds)."""
    if content[:1] == b"{":
        items = json.loads(content)["entries"]
        cols = list(zip(*items, strict=True)) if items else [(), (), ()]
        table = pa.table(
            {"name": list(cols[0]), "node_id": list(cols[1]), "file_type": list(cols[2])},
            schema=SNAPSHOT_SCHEMA,
        )
        return table.sort_by("name")
    return pa.ipc.open_stream(pa.py_buffer(content)).read_all().combine_chunks()


def decode_delta(content: bytes) -> Changes:
    return {
        n: Entry(n, i, t) if i is not None else None for n, i, t in json.loads(content)["changes"]
    }


def decode_dir(content: bytes) -> dict[str, Entry]:
    """A full snapshot as a dict (tools and tests; the pond itself never decodes whole)."""
    return {e.name: e for e in DirEntries(decode_snapshot(content)).entries()}
