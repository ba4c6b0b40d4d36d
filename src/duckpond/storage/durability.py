"""fsync helpers (delta-rs never syncs, so the pond syncs what it promises to keep), and
the age-checked delete that maintenance uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_file(path: Path | str) -> None:
    """Sync a file's data and the metadata needed to read it (size); fdatasync suffices."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_synced(dest: Path, write: Callable[[Path], object]) -> int:
    """Put a file at `dest` whole or not at all: `write` fills a temporary file beside it
    (`.tmp-*`: vacuum removes one a crash leaves), which is synced and renamed into place;
    returns its size. The caller syncs the directory once its files are in place."""
    tmp = dest.with_name(f".tmp-{os.getpid()}-{os.urandom(6).hex()}-{dest.name}")
    try:
        write(tmp)
        fsync_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def sync_commit(table_dir: Path, version: int) -> None:
    """Make Delta log entry `version` (and the directory naming it) durable."""
    log_dir = table_dir / "_delta_log"
    fsync_file(log_dir / f"{version:020d}.json")
    fsync_dir(log_dir)


def unlink_if_older(path: str, cutoff: float) -> int:
    """Delete `path` if its mtime is before `cutoff` (epoch seconds); 1 if deleted."""
    try:
        if os.stat(path).st_mtime >= cutoff:
            return 0
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1
