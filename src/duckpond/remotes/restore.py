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
from .integrity import RemoteCheck, restorable
from .layout import LOG, TABLES
from .logs import local_tip, remote_identity
from .reports import RemoteTip, SyncReport
from .transfers import Progress, Transfers, stamp, sync_dirs


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
    file of its data, control and blobs, downloaded into a sibling temp directory, each
    checked against the remote's logs as it arrives (integrity.py), synced, then renamed
    into place. Any failure (a damaged object: one line naming it) removes the temp
    directory and the parents it made: nothing is left (a SIGKILL leaves the temp
    directory, and the next restore into the same parent directory removes it)."""
    root = Path(root).absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExistsError(f"{root} is not empty; restore needs a new or empty directory")
    ident = remote_identity(store)
    if ident is None:
        raise RemoteError(f"remote {store.url} holds no pond ({layout.POND_JSON} is missing)")
    with ThreadPoolExecutor(3) as pool:  # three listings at once
        listings = pool.map(store.list, (*TABLES, layout.BLOBS))
        objects: list[ObjectInfo] = [o for listing in listings for o in listing]
    listed = {o.key: o.size for o in objects if restorable(o.key)}
    if not any(k.startswith(f"data/{LOG}/") and k.endswith(".json") for k in listed):
        raise RemoteError(f"remote {store.url} has no data table log")
    check = RemoteCheck(store, listed, fail_fast=True)
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
        with Transfers(progress) as t:
            t.plan(sum(listed.values()))
            check.read_logs(t)  # the logs first: a damaged one fails before the bulk
            keys = check.todo()
            bodies = {k: b for scan in check.tables.values() for k, b in scan.bodies.items()}
            t.plan(-sum(n for k, n in listed.items() if k not in bodies and k not in keys))
            dirs = {tmp / layout.BLOBS} | {(tmp / k).parent for k in listed}
            for d in sorted(dirs, key=lambda d: len(d.parts)):
                d.mkdir(parents=True, exist_ok=True)
            for key, body in bodies.items():
                (tmp / key).write_bytes(body)
                if key.endswith(".json"):
                    stamp(tmp / key, body)

            def fetch(key: str) -> Path:
                store.get_file(key, tmp / key, sync=False)
                return tmp / key

            check.fetch_all(keys, fetch, t)
            files, nbytes = t.files, t.bytes
        written = [tmp / k for k in (*bodies, *keys)]
        if not _sync_filesystem(tmp, written):
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
    entries = sum(1 for k in (*bodies, *keys) if k.endswith(".json") and f"/{LOG}/" in k)
    return SyncReport(
        store.url, "restore", RemoteTip(-1, -1, 0), tip, entries, files - entries, nbytes
    )
