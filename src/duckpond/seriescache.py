"""The series read cache's layout and keys: a local, derived, content-addressed copy of a
series' first versions as one Parquet file, so that a read of a series of many small
(inline) versions decodes them once, not on every read (issue 19; docs/series.md).

`<pond>/cache/series/<partition>/<node>/<count>-<key>-<size>.parquet` holds the rows of the
node's first `count` live versions, schema-unified. The key is a hash chained over those
versions' (version, content hash) in order, so a read whose live versions start with exactly
those versions finds it, and any other list (undo, revert, collapse, a rewritten version)
computes another key and never reads it. `size` is the file's length: a truncated or
appended-to file is not used. Files are written under a `.tmp-` name, fsynced and renamed.
Nothing here is data: remotes never push it, fsck never reads it, `pond maintain` removes
what no longer matches (`prune`). This module has the file names and keys only (no Parquet);
storage/seriesparts.py looks a cache up, query/seriescache.py writes one.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# A read builds or refreshes the cache when at least this many inline versions are not
# in it yet: below, reading them as they are costs less than rewriting the cache.
MIN_PARTS = 16

START = ""  # the key of the empty prefix
_TMP = ".tmp-"
# a `.tmp-` file older than this is a crashed write's (a write takes seconds at most)
_TMP_AGE_S = 3600.0


def node_dir(pond_root: Path, part_id: str, node_id: str) -> Path:
    return pond_root / "cache" / "series" / part_id / node_id


def chain(key: str, version: int, content_hash: str) -> str:
    """The key of a prefix extended by one version."""
    return hashlib.sha256(f"{key}\n{version}:{content_hash}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Entry:
    """A cache file: the first `count` versions, chained into `key`, `size` bytes."""

    path: Path
    count: int
    key: str
    size: int


def _parse(directory: Path, name: str) -> Entry | None:
    if not name.endswith(".parquet") or name.startswith(_TMP):
        return None
    fields = name[: -len(".parquet")].split("-")
    if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit():
        return None
    return Entry(directory / name, int(fields[0]), fields[1], int(fields[2]))


def entries(directory: Path) -> list[Entry]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [e for e in (_parse(directory, n) for n in names) if e is not None]


def _valid(found: Sequence[Entry], versions: Sequence[tuple[int, str | None]]) -> list[Entry]:
    """The files whose key is a prefix of `versions`, shortest first."""
    by_count: dict[int, list[Entry]] = {}
    for e in found:
        if e.count <= len(versions):
            by_count.setdefault(e.count, []).append(e)
    out = []
    key = START
    for i, (version, digest) in enumerate(versions):
        if not by_count:
            break
        if digest is None:  # no content hash: nothing from here on can be keyed
            break
        key = chain(key, version, digest)
        for e in by_count.pop(i + 1, []):
            if e.key == key:
                out.append(e)
    return out


def lookup(directory: Path, versions: Sequence[tuple[int, str | None]]) -> Entry | None:
    """The cache file covering the longest prefix of `versions` (oldest first), if one is
    there whole (its size as named)."""
    for e in reversed(_valid(entries(directory), versions)):
        try:
            if e.path.stat().st_size == e.size:
                return e
        except OSError:
            continue
    return None


def file_name(count: int, key: str, size: int) -> str:
    return f"{count}-{key}-{size}.parquet"


def temp_path(directory: Path) -> Path:
    return directory / f"{_TMP}{os.getpid()}-{os.urandom(6).hex()}.parquet"


def publish(tmp: Path, count: int, key: str) -> Path:
    """Make the written `tmp` the cache file of (count, key): fsynced, renamed, the
    directory fsynced."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    final = tmp.parent / file_name(count, key, size)
    os.replace(tmp, final)
    dfd = os.open(tmp.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return final


def remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def prune(directory: Path, versions: Sequence[tuple[int, str | None]] | None) -> int:
    """Remove the node's stale cache files: every one but the longest matching `versions`
    (the node's live versions now; None: the node is gone, all go) and crashed writes'
    temporary files. Returns how many files were removed."""
    removed = 0
    keep = None
    if versions is not None:
        valid = _valid(entries(directory), versions)
        keep = valid[-1].path if valid else None
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    now = time.time()
    for name in names:
        path = directory / name
        if name.startswith(_TMP):
            try:
                if now - path.stat().st_mtime < _TMP_AGE_S:
                    continue  # a read may be writing it
            except OSError:
                continue
        elif path == keep:
            continue
        remove(path)
        removed += 1
    try:
        directory.rmdir()  # only when empty
    except OSError:
        pass
    return removed
