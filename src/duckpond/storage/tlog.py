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

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PondError
from .tableread import archived_metadata

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

# The key inside `pond_txn` that holds a commit's leaf and the tree head after it.
TLOG_KEY = "tlog"
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


# -- the data log's commits -----------------------------------------------------------------
_POND_TXN = '"pond_txn":"'  # its value is a JSON string (the record, encoded again)
# What is read of a log entry at first: the pond's commitInfo line fits (the file hashes of
# a commit of many partitions may not: then the entry is read whole).
ENTRY_HEAD_BYTES = 16 * 1024
_DECODER = json.JSONDecoder()


def entry_pond_txn(path: Path | str) -> tuple[bool, dict[str, Any] | None]:
    """(whether the log entry exists, its `pond_txn` or None) without parsing its actions:
    the pond writes commitInfo first, compactly, so only the `pond_txn` string is decoded
    (a whole-line parse was most of reading 10,000 entries); another writer's entry is
    parsed whole."""
    exists, pond_txn, _ = _read_entry(path, None)
    return exists, pond_txn


def read_entries(
    paths: list[Path | str], as_written: bool = True
) -> list[tuple[bool, dict[str, Any] | None, Written | None]]:
    """(whether the log entry exists, its `pond_txn` or None, its record as written) of
    each path: with `as_written`, an entry of the pond's own spelling gives the last, no
    JSON decoded; any other its `pond_txn` parsed, as `entry_pond_txn` gives it."""
    match = _patterns()[0].match if as_written else None
    return [_read_entry(path, match) for path in paths]


def _read_entry(
    path: Path | str, match: Callable[[str, int], re.Match[str] | None] | None
) -> tuple[bool, dict[str, Any] | None, Written | None]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None, None
    try:
        head = os.read(fd, ENTRY_HEAD_BYTES)
        end = head.find(b"\n")
        if end < 0 or not head.startswith(_POND_HEAD):  # a long or foreign entry
            return True, _rest_of_entry(fd, head), None
    finally:
        os.close(fd)
    line = head[:end]  # the pond's own: one line read
    if match is not None:
        at = line.find(_POND_TXN_B)
        if at >= 0 and line.isascii():  # the pond's writer escapes all else
            text = line.decode("ascii")
            m = match(text, at + len(_POND_TXN_B))
            if m is not None and text[m.end() : m.end() + 1] == '"':  # the string's end
                frontier, leaf, root, size, txn_id, txn_seq = m.groups()
                return True, None, (int(txn_seq), txn_id, int(size), leaf, root, frontier)
    return True, _pond_txn(line), None


def _rest_of_entry(fd: int, head: bytes) -> dict[str, Any] | None:
    """The `pond_txn` of a long or foreign entry whose first bytes were `head`."""
    chunks = [head]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    for line in b"".join(chunks).splitlines():
        if b'"commitInfo"' in line:
            return _pond_txn(line)
    return None


_POND_HEAD = b'{"commitInfo":{'


def _pond_txn(line: bytes) -> dict[str, Any] | None:
    """The `pond_txn` of a commitInfo line, None when it has none or it does not parse."""
    if b"pond_txn" not in line:
        return None
    try:
        text = line.decode()
        at = text.find(_POND_TXN)
        if at >= 0 and text.startswith('{"commitInfo":{'):
            raw, _ = _DECODER.raw_decode(text, at + len(_POND_TXN) - 1)  # the string's value
        else:
            raw = json.loads(text)["commitInfo"]["pond_txn"]
        value = json.loads(raw)
        return value if type(value) is dict else dict(value)
    except (ValueError, KeyError, TypeError):
        return None


# -- the pond's own records, read as the text it wrote ----------------------------------------
# A data commit's seq, id and record as the pond's writer spells them (datatable.commit:
# `json.dumps(pond_txn, sort_keys=True)`, inside the commitInfo line that deltacommit writes
# compactly), matched whole by one regex instead of decoded twice as JSON (the decoding was
# the most of reading 10,000 entries). The grammar is strict: every string, number and key
# is whole JSON tokens with no escape that could spell a key otherwise, so a match means
# json.loads would give the same seq, id and record; anything else (another writer's
# spelling, extra spaces, an escape in txn_id, a foreign key layout, a damaged record) does
# not match and is parsed as JSON, as before. One part is left loose in the commitInfo
# line: the frontier list's items (a third of the regex's time, hex checked character by
# character), taken as the text up to the list's `]`; a verify compares that text with the
# frontier it rebuilt, and `frontier_items` reads one that differs, or says that the
# commit's `pond_txn` is not JSON at all (then the parsed path must decide).
Written = tuple[int, str, int, str, str, str]
"""(txn_seq, txn_id, size, leaf hex, root hex, frontier) as written; the frontier is the
text of its list's items as they stand inside the commitInfo line (`\\"hex\\", \\"hex\\"`)."""


def _grammar(q: str, esc: str, frontier: str | None = None) -> re.Pattern[str]:
    """The pond's `pond_txn` text where a JSON quote is spelled `q` and a JSON string's
    escape sequence `esc` (once escaped: the archive; twice: inside commitInfo); the
    frontier's items as `frontier` says (else strictly: quoted hex, comma-separated)."""
    plain = r"[ !#-\[\]-~]"  # printable ASCII but `"` and `\`
    string = rf"{q}(?:{plain}|{esc})*+{q}"
    key = rf"{q}(?!(?:{TLOG_KEY}|txn_id|txn_seq){q})[A-Za-z0-9_]++{q}"  # never one of ours
    num = r"-?(?:0|[1-9][0-9]*+)"
    scalar = rf"(?:{string}|{num}|null|true|false)"
    value = (
        rf"(?:{scalar}|\[(?:{scalar}(?:, {scalar})*+)?\]"
        rf"|\{{(?:{string}: {scalar}(?:, {string}: {scalar})*+)?\}})"
    )
    return re.compile(
        rf"\{{(?:{key}: {value}, )*+"
        rf"{q}{TLOG_KEY}{q}: \{{{q}frontier{q}: \[({frontier or _hex_items(q)})\], "
        rf"{q}leaf{q}: {q}([0-9a-f]{{64}}){q}, {q}root{q}: {q}([0-9a-f]{{64}}){q}, "
        rf"{q}size{q}: ([1-9][0-9]*+)\}}, "
        rf"{q}txn_id{q}: {q}({plain}*+){q}, {q}txn_seq{q}: ({num})"
        rf"(?:, {key}: {value})*+\}}"
    )


def _hex_items(q: str) -> str:
    hexq = rf"{q}[0-9a-f]{{64}}{q}"
    return rf"(?:{hexq}(?:, {hexq})*+)?"


# A JSON string's escape sequence (a backslash and one of "\\/bfnrt, or u and 4 hex digits)
# as the archive spells it, and as it stands inside the commitInfo line (escaped again: its
# backslash doubled, an escaped quote or backslash escaped once more).
_ESC_ONCE = r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'
_ESC_TWICE = r'\\\\(?:\\["\\]|[/bfnrt]|u[0-9a-fA-F]{4})'


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(a commitInfo line's pond_txn, an archived one, a frontier's strict items), compiled
    when first needed (~9 ms: not at import, which every write's process pays)."""
    return (
        _grammar(r'\\"', _ESC_TWICE, frontier=r"[^\]]*+"),  # frontier: up to the list's end
        _grammar('"', _ESC_ONCE),
        re.compile(_hex_items(r'\\"')),
    )


class NotJson(Exception):
    """A commit read as the pond wrote it whose loose frontier text is not JSON: its
    whole `pond_txn` is not, so the commit must be read as JSON decides (not at all)."""


def frontier_items(text: str) -> list[str]:
    """The frontier list a `Written` frontier text holds, as JSON would decode it."""
    if _patterns()[2].fullmatch(text):  # the pond's spelling
        return text.replace('\\"', "").split(", ") if text else []
    try:  # the list's text, unescaped once (the commitInfo string), then decoded
        items = json.loads("[" + json.loads('"' + text + '"') + "]")
    except ValueError:
        raise NotJson(text) from None
    return list(items)


def _written(m: re.Match[str] | None, quote: str) -> Written | None:
    if m is None:
        return None
    frontier, leaf, root, size, txn_id, txn_seq = m.groups()
    if quote != '\\"':  # the archive's spelling (strict hex items): as in commitInfo
        frontier = frontier.replace(quote, '\\"')
    return int(txn_seq), txn_id, int(size), leaf, root, frontier


def written_archived(raw: str) -> Written | None:
    """The same for an archived `pond_txn` (the text itself, escaped once)."""
    return _written(_patterns()[1].fullmatch(raw), '"')


_POND_TXN_B = _POND_TXN.encode()


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
