"""Copies from backups for `pond fsck --repair`: before anything is discarded, a missing or
damaged file (a Parquet file of either table, a blob, a log entry) is fetched from a
backup of this pond, checked against what the log says, and put in place.

The backups are the pond's push remotes and the mirror it was restored from. They are
found from the data table's Parquet files themselves (every row of the `remote` factory,
live or not, and `$POND/remotes/*.yaml`), not through the directory tree, which may be what
is damaged. Each is used only if it holds this pond (its `pond.json`); a remote that is
down or holds no copy is passed over with a note. A copy is written beside its target
under a temporary name, checked (size and footer of a Parquet file, sha256 and size of a
blob, a whole entry of the same transaction), synced, and renamed into place; a damaged
local file is first moved to lost+found by the caller's `set_aside`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PondError
from ..storage.blobs import CHUNK
from ..storage.durability import fsync_dir
from ..storage.objstore import ObjectStore
from ..storage.pqread import pq

Check = Callable[[Path], str | None]  # why a downloaded copy is not the file, or None


@dataclass
class Source:
    url: str
    store: ObjectStore


class Backups:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.notes: list[str] = []
        self._sources: list[Source] | None = None

    def sources(self) -> list[Source]:
        if self._sources is None:
            self._sources = self._find()
        return self._sources

    def _find(self) -> list[Source]:
        from ..remotes import config, state
        from ..remotes.ops import remote_pond_id

        atts: dict[str, config.Attachment] = {}
        for raw in _remote_configs(self.root / "data"):
            try:
                att = config.parse("backup", raw)
            except PondError:
                continue
            if att.pushes:
                atts.setdefault(att.url, att)
        for name in state.mirror_names(self.root):
            try:
                att = config.parse(name, state.read_mirror(self.root, name), mirror=True)
            except (PondError, OSError):
                continue
            atts.setdefault(att.url, att)
        if not atts:
            return []
        pond_id = _pond_id(self.root)
        out = []
        for url, att in sorted(atts.items()):
            try:
                store = config.store_for(att)
                held = remote_pond_id(store)
            except Exception as e:  # noqa: BLE001 - a backup that is down is passed over
                self.notes.append(f"backup {url} not used: {' '.join(str(e).split())[:200]}")
                continue
            # every copy is checked against the log; the id too, when the log tells it
            if held is not None and pond_id in (None, held):
                out.append(Source(url, store))
        return out

    def fetch(self, rel: str, check: Check, set_aside: Callable[[Path], str]) -> str | None:
        """Put the first checked copy of `rel` (relative to the pond, as a remote names it)
        in place; returns the backup's URL, None when no backup had a good copy."""
        dest = self.root / rel
        for src in self.sources():
            tmp = dest.parent / f".tmp-fsck-{os.getpid()}-{os.urandom(6).hex()}"
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                src.store.get_file(rel, tmp, sync=True)
            except Exception:  # noqa: BLE001 - not there, or unreachable: the next one
                tmp.unlink(missing_ok=True)
                continue
            why = check(tmp)
            if why is not None:
                tmp.unlink(missing_ok=True)
                self.notes.append(f"backup {src.url} holds a bad copy of {rel}: {why}")
                continue
            if dest.exists():
                set_aside(dest)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
            return src.url
        return None


def _remote_configs(data_dir: Path) -> list[bytes]:
    """The newest config of every `remote` factory node any data file holds."""
    newest: dict[str, tuple[int, bytes]] = {}
    for path in data_dir.glob("part_id=*/*.parquet"):
        try:
            t = pq.ParquetFile(path).read(columns=["node_id", "version", "factory", "content"])
        except Exception:  # noqa: BLE001 - damaged files are fsck's to report
            continue
        for node, version, factory, content in zip(
            t["node_id"].to_pylist(),
            t["version"].to_pylist(),
            t["factory"].to_pylist(),
            t["content"].to_pylist(),
            strict=True,
        ):
            if factory == "remote" and content is not None:
                if node not in newest or version > newest[node][0]:
                    newest[node] = (version, content)
    return [c for _, c in newest.values()]


def _pond_id(root: Path) -> str | None:
    from ..remotes.logs import local_pond_id

    try:
        return local_pond_id(root)
    except PondError:
        return None


def parquet_check(size: int) -> Check:
    def check(path: Path) -> str | None:
        got = path.stat().st_size
        if got != size:
            return f"{got} bytes, the log says {size}"
        try:
            pq.ParquetFile(path).metadata  # noqa: B018 - reads the footer
        except Exception as e:  # noqa: BLE001 - unreadable
            return f"unreadable ({e})"
        return None

    return check


def blob_check(digest: str, size: int) -> Check:
    def check(path: Path) -> str | None:
        got, n = sha256_file(path)
        if got != digest or n != size:
            return "its sha256 or size does not match"
        return None

    return check


def entry_check(version: int, pond_txn: dict[str, Any] | None) -> Check:
    """A whole log entry; of the same transaction when the pond knows which it was."""

    def check(path: Path) -> str | None:
        from ..storage.logcheck import read_entry

        entry = read_entry(path, version)
        if entry.problem:
            return entry.problem
        if pond_txn is None:
            return None
        try:
            theirs = json.loads((entry.info or {}).get("pond_txn") or "{}")
        except ValueError:
            theirs = {}
        for key in ("txn_seq", "txn_id"):
            if key in pond_txn and theirs.get(key) != pond_txn[key]:
                return f"it records {key} {theirs.get(key)}, not {pond_txn[key]}"
        return None

    return check


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 hex digest and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
