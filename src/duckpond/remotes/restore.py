"""Restore: a new pond from a remote, built in a sibling temp directory and renamed into
place."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import AlreadyExistsError, RemoteError
from ..storage.durability import fsync_dir
from ..storage.objstore import ObjectInfo, ObjectStore
from . import layout
from .layout import LOG, TABLES, LogListing
from .logs import local_tip, remote_identity
from .reports import RemoteTip, SyncReport
from .transfers import Progress, Transfers, download, stamp, sync_dirs


def _sync_filesystem(path: Path, files: list[Path]) -> bool:
    """Make every file written under `path` durable: one syncfs(2) of its file system
    where Linux offers it (a restore of thousands of files would otherwise pay one
    journal commit per file; it covers the directories too: True), else one fdatasync
    per file (False: the caller syncs the directories)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        syncfs = None
    if syncfs is not None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs(fd) == 0:
                return True
        finally:
            os.close(fd)
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return False


log = logging.getLogger("pond")

# A restore's temp directory: `.NAME.restore-PID-HEX` beside the target, flock'ed by its
# restore while it runs.
TEMP_TAG = ".restore-"
_TEMP_NAME = re.compile(r"^\..+\.restore-([0-9]+)-[0-9a-f]{12}$")


def _lock(path: Path) -> int:
    """Hold an exclusive flock on directory `path` (an open descriptor: closing it, or
    the process dying, releases it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale(parent: Path) -> list[Path]:
    """Remove the temp directories that killed restores left in `parent`: those whose
    restore process is gone (the PID in the name) and whose lock nobody holds. A restore
    still running keeps its lock, also between making its directory and locking it (its
    process is alive then), so two restores at once never remove each other's."""
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        m = _TEMP_NAME.match(name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        path = parent / name
        try:
            fd = _lock(path)
        except OSError:
            continue  # held (a restore on another host of a shared file system), or gone
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        if not path.exists():
            removed.append(path)
            log.info("removed %s, left by a killed restore", path)
    return removed


def restore(root: Path, store: ObjectStore, progress: Progress | None = None) -> SyncReport:
    """Create the pond at `root` (absent or an empty directory) from the remote: every
    file of its data, control and blobs, downloaded into a sibling temp directory, synced,
    then renamed into place. Any failure removes the temp directory: nothing is left (a
    SIGKILL leaves it, and the next restore into the same parent directory removes it)."""
    root = Path(root).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExistsError(f"{root} is not empty; restore needs a new or empty directory")
    ident = remote_identity(store)
    if ident is None:
        raise RemoteError(f"remote {store.url} holds no pond ({layout.POND_JSON} is missing)")
    with ThreadPoolExecutor(3) as pool:  # three listings at once
        listings = pool.map(store.list, (*TABLES, layout.BLOBS))
        objects: list[ObjectInfo] = [o for listing in listings for o in listing]
    keys = [o for o in objects if _restorable(o.key)]
    if not any(o.key.startswith(f"data/{LOG}/") and o.key.endswith(".json") for o in keys):
        raise RemoteError(f"remote {store.url} has no data table log")
    for table in TABLES:
        keys = _skip_before_gap(keys, table)
    created: list[Path] = []  # parent directories made here, removed on failure
    p = root.parent
    while not p.exists():
        created.append(p)
        p = p.parent
    for d in reversed(created):
        d.mkdir()
    remove_stale(root.parent)
    tmp = root.parent / f".{root.name}{TEMP_TAG}{os.getpid()}-{os.urandom(6).hex()}"
    lock = -1
    try:
        tmp.mkdir()
        lock = _lock(tmp)
        dirs = {tmp / layout.BLOBS} | {(tmp / o.key).parent for o in keys}
        for d in sorted(dirs, key=lambda d: len(d.parts)):
            d.mkdir(parents=True, exist_ok=True)
        with Transfers(progress) as t:
            for o in keys:
                t.plan(o.size)
            t.all([download(store, o.key, tmp / o.key, t, sync=False) for o in keys])
            files, nbytes = t.files, t.bytes
        for o in keys:
            name = o.key.rsplit("/", 1)[-1]
            if "/_delta_log/" in o.key and name.endswith(".json") and name[:-5].isdigit():
                stamp(tmp / o.key, (tmp / o.key).read_bytes())
        if not _sync_filesystem(tmp, [tmp / o.key for o in keys]):
            parents = set()
            for d in dirs:
                while d != tmp:
                    parents.add(d)
                    d = d.parent
            sync_dirs(parents | {tmp})
        os.rename(tmp, root)  # replaces an empty directory atomically
        fsync_dir(root.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:
            try:
                d.rmdir()
            except OSError:
                break
        raise
    finally:
        if lock >= 0:
            os.close(lock)
    tip = local_tip(root)
    entries = sum(1 for o in keys if o.key.endswith(".json") and f"/{LOG}/" in o.key)
    return SyncReport(
        store.url, "restore", RemoteTip(-1, -1, 0), tip, entries, files - entries, nbytes
    )


def _skip_before_gap(keys: list[ObjectInfo], table: str) -> list[ObjectInfo]:
    """A remote log with a gap (a push that resumed from a checkpoint after the local log
    was pruned) restores from the checkpoint after the gap: a local log must be
    contiguous. The entries left out are history only; their metadata is in the archive
    (`_pond_archive/`), which comes along."""
    prefix = f"{table}/{LOG}/"
    listing = LogListing()
    for o in keys:
        if o.key.startswith(prefix) and "/" not in o.key[len(prefix) :]:
            listing.add(o.key[len(prefix) :], o.size)
    gaps = [v for v in range(max(listing.start, 0), listing.tip + 1) if v not in listing.entries]
    if not gaps:
        return keys
    bridges = [c for c in listing.checkpoints if gaps[-1] <= c <= listing.tip]
    if not bridges:
        return keys  # not restorable as a contiguous log; fsck will say what is missing
    start = min(bridges)

    def keep(o: ObjectInfo) -> bool:
        if not o.key.startswith(prefix):
            return True
        parsed = layout.parse_log_name(o.key[len(prefix) :])
        return parsed is None or parsed[0] >= start

    return [o for o in keys if keep(o)]


def _restorable(key: str) -> bool:
    parts = key.split("/")
    if any(p in ("", ".", "..") or p.startswith(layout.TMP_PREFIX) for p in parts):
        return False
    if parts[0] == layout.BLOBS:
        return len(parts) == 3 and len(parts[1]) == 2 and parts[2].startswith(parts[1])
    return parts[0] in TABLES and len(parts) >= 2
