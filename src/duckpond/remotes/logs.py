"""Where each side stands: the log listings, tips and txn_seq of the local pond and the
remote, and what log entries and checkpoints reference (live files, blobs)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import nodes
from ..errors import NotFoundError, RemoteError, RemoteNotFound
from ..storage.objstore import ObjectStore
from . import layout
from .layout import LOG, LogListing
from .reports import RemoteTip

# How far back a tip's txn_seq is looked for in the log before reading a checkpoint.
TXN_SEQ_LOOKBACK = 64


# Rows this large keep their contents in a blob (an add whose `size` statistics stay below
# it references none).
BLOB_THRESHOLD = nodes.LARGE_CONTENT_THRESHOLD


def local_pond_id(root: Path) -> str:
    from deltalake import DeltaTable

    try:
        desc = DeltaTable(str(root / "data")).metadata().description or "{}"
        pond_id = json.loads(desc).get("pond", {}).get("pond_id")
    except Exception:  # a missing or unreadable table: one line, not a delta-rs trace
        pond_id = None
    if not isinstance(pond_id, str):
        raise NotFoundError(f"no readable pond at {root}")
    return pond_id


def blob_refs(files: Iterable[Path]) -> list[str]:
    """Content hashes of the rows held in blobs (size >= the inline threshold)."""
    return list(blob_sizes(files))


def blob_sizes(files: Iterable[Path]) -> dict[str, int]:
    """The blobs the rows of `files` reference, with their sizes (a blob holds a row's
    content as it is, so its size is the row's)."""
    import pyarrow.parquet as pq

    out: dict[str, int] = {}
    for path in files:
        try:
            t = pq.read_table(path, columns=["content_hash", "size"])
        except FileNotFoundError:
            continue  # vacuumed locally: the entry is history, its rows live on elsewhere
        except (OSError, ValueError) as e:
            raise RemoteError(f"cannot read {path}: {e}") from None
        for digest, size in zip(
            t.column("content_hash").to_pylist(), t.column("size").to_pylist(), strict=True
        ):
            if digest and size is not None and size >= nodes.LARGE_CONTENT_THRESHOLD:
                out[digest] = size
    return out


def checkpoint_adds(files: Iterable[Path | bytes]) -> list[str]:
    """The file paths a checkpoint lists as live (decoded)."""
    from urllib.parse import unquote

    import pyarrow.parquet as pq

    out: list[str] = []
    for f in files:
        src = io.BytesIO(f) if isinstance(f, bytes) else f
        try:
            t = pq.read_table(src, columns=["add"])
        except (OSError, ValueError) as e:
            where = f if isinstance(f, Path) else "a remote checkpoint"
            raise RemoteError(f"cannot read checkpoint {where}: {e}") from None
        for add in t.column("add").to_pylist():
            if add and add.get("path"):
                out.append(layout.check_rel(unquote(add["path"]), "a checkpoint"))
    return out


def checkpoint_txn_seq(files: Iterable[Path | bytes]) -> int | None:
    import pyarrow.parquet as pq

    best: int | None = None
    for f in files:
        src = io.BytesIO(f) if isinstance(f, bytes) else f
        try:
            t = pq.read_table(src, columns=["txn"])
        except (OSError, ValueError, KeyError):
            continue
        for txn in t.column("txn").to_pylist():
            if txn and txn.get("appId") == layout.APP_ID:
                v = int(txn["version"])
                best = v if best is None else max(best, v)
    return best


def txn_seq_at(
    listing: LogListing,
    version: int,
    read: Callable[[str], bytes | None],
    where: str,
) -> int:
    """The pond's txn_seq as of `version` of a data log: the newest `txn` action at or
    before it, from the entries, or else from the newest checkpoint at or before it."""
    if version < 0:
        return 0
    floor = max(version - TXN_SEQ_LOOKBACK, -1)
    for v in range(version, floor, -1):
        name = listing.entries.get(v)
        if name is None:
            continue
        body = read(name)
        if body is None:
            continue
        seq = layout.parse_entry(body, f"{where} entry {v}").txn_seq
        if seq is not None:
            return seq
        if v in listing.checkpoints:
            break
    for v in sorted((c for c in listing.checkpoints if c <= version), reverse=True):
        bodies = [b for b in (read(n) for n in listing.checkpoints[v]) if b is not None]
        seq = checkpoint_txn_seq(bodies)
        if seq is not None:
            return seq
    # Entries older than the look-back (a long run of maintenance commits): walk on.
    for v in range(floor, -1, -1):
        name = listing.entries.get(v)
        body = read(name) if name else None
        if body is not None:
            seq = layout.parse_entry(body, f"{where} entry {v}").txn_seq
            if seq is not None:
                return seq
    return 0


def local_reader(table_dir: Path) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        try:
            return (table_dir / LOG / name).read_bytes()
        except FileNotFoundError:
            return None

    return read


def remote_reader(store: ObjectStore, table: str) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        try:
            return store.get(layout.log_key(table, name))
        except RemoteNotFound:
            return None

    return read


def local_tip(root: Path) -> RemoteTip:
    """Where the local pond stands (read from its log files only)."""
    data = layout.local_log(root / "data")
    control = layout.local_log(root / "control")
    seq = txn_seq_at(data, data.tip, local_reader(root / "data"), "data")
    return RemoteTip(data.tip, control.tip, seq)


def remote_identity(store: ObjectStore) -> dict[str, Any] | None:
    """The remote's `pond.json` ({"pond_id", "format"}), or None when it holds no pond."""
    try:
        body = store.get(layout.POND_JSON)
    except RemoteNotFound:
        return None
    return layout.parse_marker(body, store.url)


def remote_log(store: ObjectStore, table: str, after: str | None = None) -> LogListing:
    out = LogListing()
    prefix = f"{table}/{LOG}"
    for obj in store.list(prefix, after=after):
        rest = obj.key[len(prefix) + 1 :]
        if "/" not in rest:
            out.add(rest, obj.size)
    return out


def remote_tip(store: ObjectStore) -> RemoteTip:
    """Where the remote stands (lists both logs; reads the entries naming the txn_seq)."""
    data = remote_log(store, "data")
    control = remote_log(store, "control")
    seq = txn_seq_at(data, data.tip, remote_reader(store, "data"), f"remote {store.url} data")
    return RemoteTip(data.tip, control.tip, seq)


def diverged(store: ObjectStore, table: str, version: int) -> RemoteError:
    return RemoteError(
        f"remote {store.url} has diverged from this pond at {table} version {version}; "
        "nothing was written"
    )
