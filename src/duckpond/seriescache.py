"""The series read cache's layout and keys: a local, derived, content-addressed copy of a
series' live versions as a few Parquet files (segments), so that a read of a series of many
small (inline) versions decodes each of them once, not on every read (issue 19;
docs/series.md).

`<pond>/cache/series/<partition>/<node>/<start>-<count>-<key>-<size>.parquet` holds the rows
of the node's live versions [start, start + count), schema-unified. The key is the prefix key
at its end: a hash chained over the (version, content hash) of live versions 0 .. start +
count - 1 in order, so a read whose live versions start with exactly those versions can use
it, and any other list (undo, revert, collapse, a rewritten version) computes another key
and never reads it. `size` is the file's length: a truncated or appended-to file is not
used. A read uses the chain of segments from version 0 on, each starting where the one
before ended, each checked on its own (`lookup`). Files are written under a `.tmp-` name,
fsynced and renamed. Nothing here is data: remotes never push it, fsck never reads it,
`pond maintain` removes what is not in the chain (`prune`). This module has the file names
and keys only (no Parquet); storage/seriesparts.py looks a chain up, query/seriescache.py
writes segments and merges them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# A read writes a new segment when at least this many inline versions are not in the cache
# yet: below, reading them as they are costs less than writing a file.
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
    """A segment file: live versions [start, start + count), `key` the prefix key at its
    end, `size` bytes."""

    path: Path
    start: int
    count: int
    key: str
    size: int

    @property
    def end(self) -> int:
        return self.start + self.count


def _parse(directory: Path, name: str) -> Entry | None:
    if not name.endswith(".parquet") or name.startswith(_TMP):
        return None
    fields = name[: -len(".parquet")].split("-")
    if len(fields) != 4 or not all(fields[i].isdigit() for i in (0, 1, 3)):
        return None
    start, count, key, size = int(fields[0]), int(fields[1]), fields[2], int(fields[3])
    if count < 1:
        return None
    return Entry(directory / name, start, count, key, size)


def entries(directory: Path) -> list[Entry]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [e for e in (_parse(directory, n) for n in names) if e is not None]


def _whole(entry: Entry) -> bool:
    try:
        return entry.path.stat().st_size == entry.size
    except OSError:
        return False


def _chain_of(found: Sequence[Entry], versions: Sequence[tuple[int, str | None]]) -> list[Entry]:
    """The fewest segments covering the longest prefix of `versions` (oldest first): each
    starting where the one before ends, each one's key the prefix key at its end, each
    whole on disk."""
    ends = {e.end for e in found if e.end <= len(versions)}
    if not ends:
        return []
    # the prefix keys at the segments' ends (a version without a content hash ends them)
    keys: dict[int, str] = {}
    key = START
    for i, (version, digest) in enumerate(versions[: max(ends)]):
        if digest is None:
            break
        key = chain(key, version, digest)
        if i + 1 in ends:
            keys[i + 1] = key
    # reach[p]: the fewest segments covering versions [0, p); starts ascending, so a
    # segment's start is final before any segment from it is looked at
    reach: dict[int, list[Entry]] = {0: []}
    for e in sorted(found, key=lambda e: (e.start, -e.count)):
        before = reach.get(e.start)
        if before is None or keys.get(e.end) != e.key:
            continue
        if e.end in reach and len(reach[e.end]) <= len(before) + 1:
            continue
        if _whole(e):
            reach[e.end] = [*before, e]
    return reach[max(reach)]


def lookup(directory: Path, versions: Sequence[tuple[int, str | None]]) -> list[Entry]:
    """The segments holding the longest prefix of `versions` (the node's live versions,
    oldest first) that the cache has whole, oldest first; [] when none."""
    return _chain_of(entries(directory), versions)


def file_name(start: int, count: int, key: str, size: int) -> str:
    return f"{start}-{count}-{key}-{size}.parquet"


def temp_path(directory: Path) -> Path:
    return directory / f"{_TMP}{os.getpid()}-{os.urandom(6).hex()}.parquet"


def publish(tmp: Path, start: int, count: int, key: str) -> Path:
    """Make the written `tmp` the segment of (start, count, key): fsynced, renamed, the
    directory fsynced."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    final = tmp.parent / file_name(start, count, key, size)
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


def sweep(
    directory: Path, chain_paths: Iterable[Path], superseded: Iterable[Path], age: float
) -> int:
    """After a read wrote a segment: mark the files it merged away as superseded now (their
    mtime), and remove every segment file not in the chain superseded more than `age`
    seconds ago (a query started before may still read a younger one). Returns how many
    files were removed."""
    now = time.time()
    for path in superseded:
        try:
            os.utime(path, (now, now))
        except OSError:
            pass
    keep = set(chain_paths)
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    removed = 0
    # every `.parquet` but the chain's and temporary files: also those named as an older
    # version of the cache named them
    for path in (directory / n for n in names if n.endswith(".parquet") and not n.startswith(_TMP)):
        if path in keep:
            continue
        try:
            if now - path.stat().st_mtime <= age:
                continue
        except OSError:
            continue
        remove(path)
        removed += 1
    return removed


def prune(directory: Path, versions: Sequence[tuple[int, str | None]] | None) -> int:
    """Remove the node's stale cache files: every one but the chain `lookup` finds for
    `versions` (the node's live versions now; None: the node is gone, all go) and crashed
    writes' temporary files. Returns how many files were removed."""
    removed = 0
    keep = {e.path for e in lookup(directory, versions)} if versions is not None else set()
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
        elif path in keep:
            continue
        remove(path)
        removed += 1
    try:
        directory.rmdir()  # only when empty
    except OSError:
        pass
    return removed
