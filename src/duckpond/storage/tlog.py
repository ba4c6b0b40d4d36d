"""The tamper-evident transaction log: an append-only Merkle tree over the data commits.

Every data commit (a write transaction's, a post-commit task's) is one leaf, in the order
of the data log. The leaf is what the transaction wrote, as rows: its txn_seq, its txn_id
and the SHA-256 of each row it added (every column, the inline content bytes included; a
blob's bytes are named by the row's content hash, since blobs are content-addressed).
Rows, not Parquet files: compaction rewrites files and log pruning drops their entries,
but never changes a row, so a leaf stays reproducible from the table for as long as the
pond lives.

Hashing is RFC 6962's: leaf hash = SHA256(0x00 || leaf bytes), node = SHA256(0x01 || left
|| right), the tree head of size n = the root over the first n leaves (SHA256("") when
empty). Each commit records, inside its `pond_txn` commit metadata (so the archive of a
pruned log keeps it too), the head after it: {"size", "leaf", "root", "frontier"}; the
frontier (the roots of the perfect subtrees, left to right) is what the next commit
extends, so a write hashes O(log n), never the history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PondError
from .tableread import archived_metadata
from .tlogentries import TLOG_KEY, entry_pond_txn

if TYPE_CHECKING:
    import pyarrow as pa

LEAF_MAGIC = b"pond.tlog.leaf.1\n"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# The data table's columns in the order a row is hashed (part_id, from the file's path,
# comes first). A column a later version adds is appended here, never inserted.
ROW_COLUMNS = (
    "node_id",
    "file_type",
    "version",
    "timestamp",
    "content",
    "content_hash",
    "size",
    "min_event_time",
    "max_event_time",
    "extended_attributes",
    "factory",
    "txn_seq",
)
INT_COLUMNS = frozenset(
    {"version", "timestamp", "size", "min_event_time", "max_event_time", "txn_seq"}
)


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Tree:
    """The right edge of an RFC 6962 tree: enough to append a leaf and give the root."""

    __slots__ = ("size", "frontier")

    def __init__(self, size: int = 0, frontier: list[bytes] | None = None) -> None:
        self.size = size
        # Roots of the perfect subtrees covering the leaves, biggest (leftmost) first:
        # one per set bit of `size`.
        self.frontier = frontier if frontier is not None else []
        if len(self.frontier) != bin(size).count("1"):
            raise PondError(f"tamper-evident log: a tree of {size} leaves with a bad frontier")

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf; how many frontier hashes it merged (a verify keeps the records'
        hex spelling of the frontier in step)."""
        node = leaf_hash
        size = self.size
        frontier = self.frontier
        sha = hashlib.sha256  # hash_children inlined: a verify appends every commit
        merged = 0
        while size & 1:  # merge with the equal-sized subtrees on the right edge
            node = sha(b"\x01" + frontier.pop() + node).digest()
            size >>= 1
            merged += 1
        frontier.append(node)
        self.size += 1
        return merged

    def root(self) -> bytes:
        if not self.frontier:
            return EMPTY_ROOT
        node = self.frontier[-1]
        sha = hashlib.sha256  # hash_children inlined: a verify computes a root per commit
        for left in reversed(self.frontier[:-1]):
            node = sha(b"\x01" + left + node).digest()
        return node

    def copy(self) -> Tree:
        return Tree(self.size, list(self.frontier))


# -- leaves ---------------------------------------------------------------------------------
def _enc_ints(values: list[Any]) -> list[bytes]:
    return [
        b"\x00" if v is None else b"\x01" + int(v).to_bytes(8, "little", signed=True)
        for v in values
    ]


def _enc_bytes(values: list[Any]) -> list[bytes]:
    out = []
    for v in values:
        if v is None:
            out.append(b"\x00")
        else:
            b = v.encode() if isinstance(v, str) else bytes(v)
            out.append(b"\x02" + len(b).to_bytes(8, "little") + b)
    return out


def _column(table: pa.Table, name: str) -> list[Any]:
    import pyarrow as pa

    if name not in table.column_names:  # a file from before a column was added
        return [None] * table.num_rows
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        # µs since the epoch, whatever unit another writer used; the pond's own unit as a
        # zero-copy view (a cast imports pyarrow.compute, ~50 ms of a write's process)
        if col.type.unit != "us":
            col = col.cast(pa.timestamp("us", tz=col.type.tz))
        col = pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())
    values: list[Any] = col.to_pylist()
    return values


def row_digests(table: pa.Table, part_ids: str | list[str]) -> list[tuple[int, bytes]]:
    """(txn_seq, SHA-256 of the row) of every row of data files' rows: `part_ids` is the
    partition of them all, or one per row (many small files are hashed as one table:
    converting a column costs about as much for 7 rows as for 7,000)."""
    if isinstance(part_ids, str):
        parts = [_enc_bytes([part_ids])[0]] * table.num_rows
    else:
        known: dict[str, bytes] = {}
        parts = [known.get(p) or known.setdefault(p, _enc_bytes([p])[0]) for p in part_ids]
    encoded = [
        _enc_ints(_column(table, c)) if c in INT_COLUMNS else _enc_bytes(_column(table, c))
        for c in ROW_COLUMNS
    ]
    seqs = _column(table, "txn_seq")
    sha = hashlib.sha256
    return [
        (-1 if seq is None else int(seq), sha(b"".join((part, *values))).digest())
        for seq, part, values in zip(seqs, parts, zip(*encoded, strict=True), strict=True)
    ]


def leaf_bytes(txn_seq: int, txn_id: str, digests: list[bytes]) -> bytes:
    """A transaction's leaf: its seq, id and the sorted digests of the rows it wrote."""
    tid = txn_id.encode()
    return b"".join(
        (
            LEAF_MAGIC,
            txn_seq.to_bytes(8, "little", signed=True),
            len(tid).to_bytes(8, "little"),
            tid,
            len(digests).to_bytes(8, "little"),
            *sorted(digests),
        )
    )


def leaf_hash(txn_seq: int, txn_id: str, digests: list[bytes]) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_bytes(txn_seq, txn_id, digests)).digest()  # hash_leaf


# -- what a commit records ------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """A commit's tlog record: its leaf and the tree head after it."""

    size: int
    leaf: bytes
    root: bytes
    frontier: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "leaf": self.leaf.hex(),
            "root": self.root.hex(),
            "frontier": [h.hex() for h in self.frontier],
        }

    @classmethod
    def of(cls, pond_txn: dict[str, Any]) -> Recorded | None:
        """The record in a commit's `pond_txn`; None when it has none (written before the
        log was kept); a record that does not parse is a PondError."""
        raw = pond_txn.get(TLOG_KEY)
        if raw is None:
            return None
        try:
            return cls(
                int(raw["size"]),
                bytes.fromhex(raw["leaf"]),
                bytes.fromhex(raw["root"]),
                tuple(bytes.fromhex(h) for h in raw["frontier"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PondError(f"tamper-evident log: an unreadable record ({e!r})") from None

    def tree(self) -> Tree:
        return Tree(self.size, list(self.frontier))


def record(tree: Tree, leaf: bytes) -> Recorded:
    """Append `leaf` to `tree` (in place) and return the record of that commit."""
    tree.append(leaf)
    return Recorded(tree.size, leaf, tree.root(), tuple(tree.frontier))


def last_record(table_dir: Path, version: int) -> tuple[bool, Recorded | None]:
    """The newest data commit with `pond_txn` at or before `version`: (whether there is
    one, its record: None when it was written before the log was kept)."""
    log = table_dir / "_delta_log"
    v = version
    while v >= 0:
        exists, pond_txn = entry_pond_txn(f"{log}/{v:020d}.json")
        if not exists:
            break  # pruned: the archive holds the older ones
        if pond_txn is not None:
            return True, Recorded.of(pond_txn)
        v -= 1
    for archived_version, _, raw in reversed(archived_metadata(table_dir)):
        if archived_version <= v:
            return True, Recorded.of(json.loads(raw))
    return False, None
