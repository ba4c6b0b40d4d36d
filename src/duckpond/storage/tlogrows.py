"""The data table's rows as the tamper-evident log hashes them (storage/tlog.py), in bulk:
every live file read once and many small files' rows hashed as one table, each row encoded
by Arrow kernels into exactly the bytes a write's `tlog.row_digests` encodes value by value
(`pond tlog verify` hashes every row of the pond; a write hashes a few, and keeps
pyarrow.compute unimported)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..errors import PondError
from . import tableread
from .tlog import INT_COLUMNS, ROW_COLUMNS, row_digests

if TYPE_CHECKING:
    import pyarrow as pa

# Rows hashed as one table: small files are read one by one and hashed together.
DIGEST_BATCH_ROWS = 65_536


def row_digests_by_txn(
    table_dir: Path, files: list[tuple[str, str]], notes: list[str]
) -> dict[int, list[bytes]]:
    """The digest of every row of `files`, by the txn_seq it carries; a file that is
    missing or unreadable is noted and its rows are absent (their transactions then
    differ from what they committed)."""
    import pyarrow as pa

    out: dict[int, list[bytes]] = {}
    batch: list[pa.Table] = []
    parts: list[str] = []

    def add(digests: list[tuple[int, bytes]]) -> None:
        for seq, digest in digests:
            out.setdefault(seq, []).append(digest)

    def flush() -> None:
        try:
            add(table_digests(pa.concat_tables(batch), parts))
        except pa.ArrowInvalid:  # files of different schemas (another writer's): one by one
            at = 0
            for t in batch:
                add(table_digests(t, parts[at : at + t.num_rows]))
                at += t.num_rows
        batch.clear()
        parts.clear()

    for path, part in files:
        try:
            table = tableread.read_parquet(table_dir / unquote(path))
        except PondError as e:
            notes.append(str(e).replace("; run `pond fsck`", ""))
            continue
        batch.append(table)
        parts.extend([part] * table.num_rows)
        if len(parts) >= DIGEST_BATCH_ROWS:
            flush()
    if batch:
        flush()
    return out


def table_digests(table: pa.Table, part_ids: list[str]) -> list[tuple[int, bytes]]:
    """What `tlog.row_digests` gives, the rows encoded by Arrow kernels rather than value
    by value (a verify hashes every row of the pond; a write hashes a few, and keeps
    pyarrow.compute unimported). Types the kernels do not take as `row_digests` does
    (another writer's) go to `row_digests`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    try:
        table = table.combine_chunks()
        known: dict[str, bytes] = {}
        parts = [known.get(p) or known.setdefault(p, _bytes_prefix(p)) for p in part_ids]
        encoded = [pa.array(parts, pa.large_binary())]
        for name in ROW_COLUMNS:
            if name not in table.column_names:
                encoded.append(pa.array([b"\x00"] * n, pa.large_binary()))
                continue
            col = table.column(name).chunk(0) if n else pa.array([], pa.large_binary())
            encoded.extend(_ints(col) if name in INT_COLUMNS else _bytes(col))
        rows = pc.binary_join_element_wise(*encoded, pa.scalar(b"", pa.large_binary()))
    except _NotVectorised:
        return row_digests(table, part_ids)
    offsets = np.frombuffer(rows.buffers()[1], np.int64)[rows.offset : rows.offset + n + 1]
    data = memoryview(rows.buffers()[2] or b"")
    seqs = table.column("txn_seq").to_pylist() if "txn_seq" in table.column_names else [None] * n
    sha = hashlib.sha256
    bounds = offsets.tolist()
    return [
        (-1 if seq is None else int(seq), sha(data[lo:hi]).digest())
        for seq, lo, hi in zip(seqs, bounds[:-1], bounds[1:], strict=True)
    ]


class _NotVectorised(Exception):
    """A column of a type the kernels do not encode as `row_digests` does."""


def _bytes_prefix(text: str) -> bytes:
    raw = text.encode()
    return b"\x02" + len(raw).to_bytes(8, "little") + raw


def _cells(tag: int, values: Any) -> pa.Array:
    """Per value, `tag` and the value's 8 little-endian bytes, as large_binary (built on
    its buffers: a cast from fixed-size binary was one more copy)."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    cells = np.empty((n, 9), np.uint8)
    cells[:, 0] = tag
    cells[:, 1:] = values.view(np.uint8).reshape(-1, 8)
    offsets = np.arange(0, 9 * (n + 1), 9, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(cells)]
    )


def _ints(col: pa.Array) -> list[pa.Array]:
    """Each value as `tlog._enc_ints` writes it: 0x01 + int64 LE, or 0x00 for null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz=col.type.tz)).view(pa.int64())
    elif pa.types.is_signed_integer(col.type) or pa.types.is_unsigned_integer(col.type):
        col = col.cast(pa.int64())  # a uint64 beyond int64 raises: row_digests then
    else:
        raise _NotVectorised(col.type)
    enc = _cells(1, col.fill_null(0).to_numpy(zero_copy_only=False).astype("<i8"))
    if col.null_count:
        enc = pc.if_else(col.is_valid(), enc, pa.scalar(b"\x00", pa.large_binary()))
    return [enc]


def _bytes(col: pa.Array) -> list[pa.Array]:
    """Each value as `tlog._enc_bytes` writes it: 0x02 + length (u64 LE) + its bytes
    (text as UTF-8), or 0x00 for null; as two pieces (prefix, bytes) the row's join puts
    together, so the values are copied once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (
        pa.types.is_string(col.type)
        or pa.types.is_large_string(col.type)
        or pa.types.is_binary(col.type)
        or pa.types.is_large_binary(col.type)
    ):
        raise _NotVectorised(col.type)
    col = col.cast(pa.large_binary())
    lengths = pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype("<u8")
    prefix = _cells(2, lengths)
    if col.null_count:  # a null is 0x00 alone: that prefix and no bytes
        prefix = pc.if_else(col.is_valid(), prefix, pa.scalar(b"\x00", pa.large_binary()))
        col = col.fill_null(pa.scalar(b"", pa.large_binary()))
    return [prefix, col]
