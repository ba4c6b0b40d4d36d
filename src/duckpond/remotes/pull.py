"""Pull: fast-forward a pond (or an import's copy) to its remote. The caller holds the
write lock."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import NotFoundError, RemoteError, RemoteNotFound
from ..storage.durability import fsync_dir
from ..storage.objstore import ObjectStore
from . import layout
from .layout import LAST_CHECKPOINT, LOG, TABLES, LogListing
from .logs import (
    BLOB_THRESHOLD,
    blob_sizes,
    checkpoint_adds,
    diverged,
    local_pond_id,
    local_tip,
    remote_identity,
    remote_log,
)
from .reports import SyncReport
from .transfers import Progress, Transfers, download, read_local, stamp, sync_dirs


def _check_same_pond(root: Path, store: ObjectStore) -> None:
    ident = remote_identity(store)
    if ident is None:
        raise RemoteError(f"remote {store.url} holds no pond ({layout.POND_JSON} is missing)")
    pond_id = local_pond_id(root)
    if ident["pond_id"] != pond_id:
        raise RemoteError(
            f"remote {store.url} holds pond {ident['pond_id']}, not this pond {pond_id}"
        )


def _link_entry(log: Path, name: str, body: bytes, store: ObjectStore, table: str, v: int) -> bool:
    """Install a log entry put-if-absent (temp file, sync, link); False if the same
    bytes were there already."""
    tmp = log / f"{layout.TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}.json"
    try:
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fdatasync(f.fileno())
        try:
            os.link(tmp, log / name)
        except FileExistsError:
            if (log / name).read_bytes() != body:
                raise RemoteError(
                    f"this pond has diverged from remote {store.url} at {table} version {v}"
                ) from None
            return False
        stamp(log / name, body)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def pull(root: Path, store: ObjectStore, progress: Progress | None = None) -> SyncReport:
    """Fast-forward the pond at `root` to the remote: the local log must be a prefix of
    the remote's (compared by bytes at the local tip). Files first, then the entries in
    order, each synced and linked into place. The caller holds the write lock.

    Both tables are planned (their new entries fetched) before any file moves, so the
    progress total is known up front; the blobs join it once the rows naming them are in."""
    root = Path(root).absolute()
    start = local_tip(root)
    if start.data_version < 0:
        raise NotFoundError(f"no pond at {root}")
    _check_same_pond(root, store)
    entries = 0
    with Transfers(progress) as t:
        plans = [_plan_table(root, store, table, t) for table in TABLES]
        for plan in plans:
            if plan is not None:
                entries += _pull_table(root, store, plan, t)
        tip = local_tip(root)
        return SyncReport(store.url, "pull", start, tip, entries, t.files, t.bytes)


@dataclass
class _TablePull:
    """What one table's pull will do: its new entries (fetched) and the files they add."""

    table: str
    versions: list[int]
    fetched: dict[int, bytes]
    infos: dict[int, layout.EntryInfo]
    newer: LogListing  # the remote log after the local tip
    files: list[str]  # added by the new entries, or live at the bridge
    live: list[str]  # live at the bridge checkpoint
    bridge: int | None


def _plan_table(root: Path, store: ObjectStore, table: str, t: Transfers) -> _TablePull | None:
    """Check that the remote extends this table, fetch its new entries and plan the bytes
    they bring; None when there is nothing to pull."""
    table_dir = root / table
    log = table_dir / LOG
    _close_gap(table_dir, table)
    local = layout.local_log(table_dir)
    tip = local.tip
    try:
        remote_body = store.get(layout.entry_key(table, tip))
    except RemoteNotFound:
        remote_body = None
    if remote_body is None:
        listed = remote_log(store, table)
        if listed.tip < tip and listed.tip in local.entries:
            if store.get(layout.entry_key(table, listed.tip)) != read_local(
                log / local.entries[listed.tip]
            ):
                raise diverged(store, table, listed.tip)
            return None  # the remote is behind this pond: nothing to pull
        raise RemoteError(
            f"remote {store.url} lacks {table} version {tip} of this pond; cannot fast-forward"
        )
    if remote_body != read_local(log / local.entries[tip]):
        raise diverged(store, table, tip)
    newer = remote_log(store, table, after=layout.entry_key(table, tip))
    if not newer.entries:
        return None
    versions = sorted(newer.entries)
    bridge: int | None = None
    live: list[str] = []
    if versions != list(range(tip + 1, newer.tip + 1)):
        # The source pushed from a checkpoint after its log was pruned past this copy:
        # start from that checkpoint (and the files live at it), then prune below it.
        missing = [v for v in range(tip + 1, newer.tip + 1) if v not in newer.entries]
        bridges = [c for c in newer.checkpoints if missing[-1] <= c <= newer.tip]
        if not bridges:
            raise RemoteError(
                f"remote {store.url} has a gap in its {table} log after version {tip}; "
                "cannot fast-forward (restore into a new directory instead)"
            )
        bridge = min(bridges)
        versions = [v for v in versions if v >= bridge]
        names = newer.checkpoints[bridge]
        t.plan(sum(max(newer.sizes.get(n, 0), 0) for n in names))
        t.all([download(store, layout.log_key(table, n), log / n, t) for n in names])
        live = checkpoint_adds([log / n for n in names])
    fetched: dict[int, bytes] = {}
    t.all([t.submit(partial(_fetch, store, table, v, fetched), files=0) for v in versions])
    infos = {
        v: layout.parse_entry(fetched[v], f"remote {table} entry {v}", BLOB_THRESHOLD)
        for v in versions
    }
    files = sorted({p for v in versions for p in infos[v].adds} | set(live))
    sizes = {p: n for v in versions for p, n in infos[v].sizes.items()}
    # The bytes this pull will move for the table (a file live at the bridge has no size
    # in the entries: it is counted when it moves).
    t.plan(
        sum(sizes.get(p, 0) for p in files if not (table_dir / p).exists())
        + sum(len(fetched[v]) for v in versions if not (log / layout.entry_name(v)).exists())
        + sum(
            max(newer.sizes.get(n, 0), 0)
            for v, names in newer.checkpoints.items()
            for n in names
            if v <= newer.tip and v != bridge and not (log / n).exists()
        )
    )
    return _TablePull(table, versions, fetched, infos, newer, files, live, bridge)


def _pull_table(root: Path, store: ObjectStore, plan: _TablePull, t: Transfers) -> int:
    """Move what `plan` found: files, then blobs, then the entries, then checkpoints."""
    table = plan.table
    table_dir = root / table
    log = table_dir / LOG
    versions, fetched, infos, newer, live = (
        plan.versions,
        plan.fetched,
        plan.infos,
        plan.newer,
        plan.live,
    )
    # Files the new entries add, then the blobs their rows reference.
    files = plan.files
    file_jobs = [
        download(store, f"{table}/{p}", table_dir / p, t)
        for p in files
        if not (table_dir / p).exists()
    ]
    t.all(file_jobs)
    sync_dirs({(table_dir / p).parent for p in files})
    if table == "data":
        refs: dict[str, int] = {}
        for v in versions:
            info = infos[v]
            if not info.maintenance:
                refs.update(
                    blob_sizes(table_dir / p for p in info.adds if p not in info.blob_free)
                )
        refs.update(blob_sizes(table_dir / p for p in live))
        blobs = root / layout.BLOBS
        todo = [d for d in sorted(refs) if not (blobs / d[:2] / d).exists()]
        t.plan(sum(refs[d] for d in todo))
        t.all([download(store, layout.blob_key(d), blobs / d[:2] / d, t) for d in todo])
        sync_dirs({blobs / d[:2] for d in refs} | {blobs})
    moved = 0
    for v in versions:
        if _link_entry(log, layout.entry_name(v), fetched[v], store, table, v):
            moved += 1
            t.moved(len(fetched[v]), files=0)
    fsync_dir(log)
    # Checkpoints and `_last_checkpoint` after the entries they summarize.
    ck_jobs = [
        download(store, layout.log_key(table, n), log / n, t)
        for v, names in newer.checkpoints.items()
        for n in names
        if v <= newer.tip and not (log / n).exists()
    ]
    t.all(ck_jobs)
    if ck_jobs or plan.bridge is not None:
        _pull_archive(store, table_dir, table, t)
    if newer.has_last_checkpoint:
        t.all([download(store, layout.log_key(table, LAST_CHECKPOINT), log / LAST_CHECKPOINT, t)])
    fsync_dir(log)
    if plan.bridge is not None:
        _close_gap(table_dir, table)
    return moved


def _close_gap(table_dir: Path, table: str) -> None:
    """A local log with a gap below a checkpoint (a pull that started from a checkpoint,
    perhaps killed before this ran) drops the entries before that checkpoint, their
    metadata archived as local pruning does: a local log must be contiguous."""
    from ..storage import upkeep

    local = layout.local_log(table_dir)
    gaps = [v for v in range(max(local.start, 0), local.tip + 1) if v not in local.entries]
    bridges = [c for c in local.checkpoints if gaps and gaps[-1] <= c <= local.tip]
    if bridges:
        upkeep.prune_log(table_dir, min(bridges), "pond_txn" if table == "data" else None)


def _fetch(store: ObjectStore, table: str, v: int, out: dict[int, bytes]) -> int:
    out[v] = store.get(layout.entry_key(table, v))
    return 0  # counted when the entry is linked


def _pull_archive(store: ObjectStore, table_dir: Path, table: str, t: Transfers) -> None:
    prefix = layout.archive_prefix(table)
    arch = table_dir / layout.ARCHIVE_DIR
    jobs = []
    for obj in store.list(prefix):
        name = obj.key[len(prefix) + 1 :]
        if "/" in name or not layout.is_table_file(name):
            continue
        if not (arch / name).exists():
            jobs.append(download(store, obj.key, arch / name, t))
    t.all(jobs)
    if jobs:
        fsync_dir(arch)
