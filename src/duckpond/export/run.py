"""`pond export`: the matching series and tables of one pond version, published in DIR.

Every series is read through one resolver over one snapshot of the data table (the handle
does not refresh while the export reads), so the whole export is the pond as of one
txn_seq. A series whose content key (its node's versions, or a derived node's inputs and
config) and settings are those of the previous export in DIR is left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .. import nodes, paths
from ..errors import (
    InvalidPathError,
    NotFoundError,
    PondError,
    PondLockedError,
    PondUsageError,
)
from . import manifest, writers
from .spec import MANIFEST, STAGING, Dest, check_outside, parse_dest, parse_format, parse_temporal

if TYPE_CHECKING:
    from pathlib import Path

    from ..factories.live import LiveFile
    from ..storage.blobs import BlobStore
    from ..storage.datatable import DataTable
    from ..storage.objstore import ObjectStore, StoreOptions


class ExportSource(Protocol):
    """What an export reads: a pond's root, data table and blobs (a `Pond` is one, and so
    is the read view a job gets)."""

    root: Path
    blobs: BlobStore

    @property
    def data(self) -> DataTable: ...


WRITTEN, UNCHANGED, REMOVED = "written", "unchanged", "removed"


@dataclass(frozen=True)
class ExportedSeries:
    path: str  # the pond path
    target: str  # where it went (a directory, or an s3:// prefix)
    status: str  # written | unchanged | removed
    rows: int = 0
    partitions: int = 0
    files: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExportReport:
    dir: str
    format: str
    temporal: tuple[str, ...]
    txn_seq: int  # the pond version every written series was read at
    series: list[ExportedSeries] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": self.dir,
            "format": self.format,
            "temporal": list(self.temporal),
            "txn_seq": self.txn_seq,
            "series": [s.to_json() for s in self.series],
        }


def export(
    pond: ExportSource,
    patterns: Sequence[str],
    dir: str,
    *,
    fmt: str = "parquet",
    temporal: str | Sequence[str] | None = None,
    options: StoreOptions | None = None,
    rebuild: bool = False,
    missing_ok: bool = False,
    resolved: bool = False,
    wait: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    fmt = parse_format(fmt)
    parts = parse_temporal(
        temporal if temporal is None or isinstance(temporal, str) else tuple(temporal)
    )
    if not patterns:
        raise PondUsageError("export needs at least one pond path or glob")
    dest = parse_dest(dir, options, resolved)
    check_outside(dest, pond.root)
    from ..dynamic import Resolver

    resolver = Resolver.for_pond(pond)
    txn_seq = pond.data.last_txn_seq()
    pond_id = _pond_id(pond.data)
    found = _select(resolver, patterns, missing_ok)
    for node in found:
        check_outside(dest, pond.root, _rel(node.path))
    with _dir_lock(dest, wait):
        store = dest.store()
        done = _export(pond_id, txn_seq, dest, store, patterns, found, fmt, parts, rebuild, log)
    return ExportReport(dest.url, fmt, parts, txn_seq, done)


def _export(
    pond_id: str | None,
    txn_seq: int,
    dest: Dest,
    store: ObjectStore,
    patterns: Sequence[str],
    found: list[LiveFile],
    fmt: str,
    parts: tuple[str, ...],
    rebuild: bool,
    log: Callable[[str], None] | None,
) -> list[ExportedSeries]:
    state = manifest.load(store)
    if state.get("pond_id") not in (None, pond_id):
        raise PondError(
            f"{dest.url} holds the export of another pond ({state['pond_id']}): "
            "export into a directory of its own"
        )
    entries: dict[str, Any] = state["series"]
    wanted = {n.path for n in found}
    for node in found:
        if node.path not in entries and _occupied(dest, store, _rel(node.path)):
            raise PondError(
                f"{dest.shown(_rel(node.path))} exists and no earlier export wrote it: "
                "move it away or export elsewhere"
            )
    state.update(pond_id=pond_id, txn_seq=txn_seq)
    out: list[ExportedSeries] = []
    globs = [paths.compile_glob(p) for p in patterns]
    for path in sorted(entries):  # gone from the pond (or no longer a series): removed
        if path not in wanted and any(g.match(path) for g in globs):
            writers.remove(dest, store, _rel(path))
            del entries[path]
            manifest.save(store, state)
            out.append(ExportedSeries(path, dest.shown(_rel(path)), REMOVED))
    for node in found:
        rel = _rel(node.path)
        key = _key(node, fmt, parts)
        old = entries.get(node.path)
        if not rebuild and old is not None and old.get("key") == key:
            out.append(
                ExportedSeries(
                    node.path,
                    dest.shown(rel),
                    UNCHANGED,
                    old.get("rows", 0),
                    old.get("partitions", 0),
                    old.get("nfiles", 0),
                )
            )
            continue
        if old is not None and old.get("format") not in (None, fmt):
            writers.remove(dest, store, rel)  # another format: start over
        old_files = list(old.get("files", [])) if old is not None else []
        entries[node.path] = {"key": "", "format": fmt, "files": old_files}  # ours, pending
        manifest.save(store, state)
        entry = _write(dest, store, node, rel, fmt, parts, old_files, txn_seq)
        entries[node.path] = {"key": key, **entry}
        manifest.save(store, state)
        out.append(
            ExportedSeries(
                node.path,
                dest.shown(rel),
                WRITTEN,
                entry["rows"],
                entry["partitions"],
                entry["nfiles"],
            )
        )
        if log is not None:
            log(f"exported {node.path}: {entry['rows']} rows -> {dest.shown(rel)}")
    manifest.save(store, state)
    return out


def _write(
    dest: Dest,
    store: ObjectStore,
    node: LiveFile,
    rel: str,
    fmt: str,
    parts: tuple[str, ...],
    old_files: list[str],
    txn_seq: int,
) -> dict[str, Any]:
    from . import partition

    tc: str | None = None
    if parts and nodes.is_series(node.file_type):
        schema = node.schema()
        tc = partition.time_column(node.path, schema, node.time_column)
        partition.check_names(node.path, schema, parts)
    table = node.scan()
    entry: dict[str, Any] = {
        "format": fmt,
        "temporal": list(parts) if tc else [],
        "rows": table.num_rows,
        "txn_seq": txn_seq,
    }
    if fmt == "delta":
        nparts, nfiles = writers.write_delta(dest, rel, table, tc, parts if tc else (), txn_seq)
        entry.update(partitions=nparts, nfiles=nfiles, files=[])
        return entry
    pieces = writers.pieces(node.path, table, tc, parts)
    keys = writers.write_parquet(dest, store, rel, pieces, old_files)
    entry.update(partitions=sum(1 for d, _ in pieces if d), nfiles=len(keys), files=keys)
    return entry


def _select(resolver: Any, patterns: Sequence[str], missing_ok: bool) -> list[LiveFile]:
    """The tables and series the patterns name. A literal path must be one (a directory
    or raw file named outright is an error); a glob picks the tables and series it
    matches among whatever else."""
    from ..factories.live import LiveFile

    found: dict[str, LiveFile] = {}
    for pattern in patterns:
        pat = paths.normalize(pattern) if not paths.has_glob(pattern) else pattern
        matches = resolver.glob(pat)
        if not paths.has_glob(pattern):
            if not matches:
                if missing_ok:
                    continue
                raise NotFoundError(f"no such file or directory: {pat}")
            node = matches[0]
            if not isinstance(node, LiveFile) or not _exportable(node.file_type):
                kind = "a directory" if nodes.is_dir(node.file_type) else "not a table or series"
                raise InvalidPathError(
                    f"cannot export {node.path}: {kind} (export series and tables)"
                )
            found[node.path] = node
            continue
        for node in matches:
            if isinstance(node, LiveFile) and _exportable(node.file_type):
                found[node.path] = node
    if not found and not missing_ok:
        raise NotFoundError(f"no series or table matches {' '.join(patterns)}")
    return [found[p] for p in sorted(found)]


def _exportable(file_type: str) -> bool:
    return nodes.is_series(file_type) or nodes.is_table(file_type)


def _rel(path: str) -> str:
    return "/".join(paths.split(path))


def _key(node: LiveFile, fmt: str, parts: tuple[str, ...]) -> str:
    from ..factories.live import digest

    return digest("export-1", node.key(), fmt, list(parts))


def _occupied(dest: Dest, store: ObjectStore, rel: str) -> bool:
    if dest.local is not None:
        target = dest.local / rel
        return target.is_symlink() or target.exists()
    return bool(store.list(f"{rel}/"))


def _pond_id(data: DataTable) -> str | None:
    try:
        ident = json.loads(data.description() or "{}").get("pond", {})
    except ValueError:
        return None
    value = ident.get("pond_id") if isinstance(ident, dict) else None
    return str(value) if value else None


class _dir_lock:
    """One export at a time into a local DIR (the lock file sits beside the manifest);
    an s3:// DIR has no lock: run one exporter per prefix."""

    def __init__(self, dest: Dest, wait: float) -> None:
        self.dest = dest
        self.wait = wait
        self.lock: Any = None

    def __enter__(self) -> None:
        if self.dest.local is None:
            return
        import shutil

        from ..lock import WriteLock

        self.dest.local.mkdir(parents=True, exist_ok=True)
        self.lock = WriteLock(self.dest.local / f"{MANIFEST}.lock", wait=self.wait)
        try:
            self.lock.acquire()
        except PondLockedError:
            raise PondLockedError(
                f"another export is writing into {self.dest.local} (try again, or --wait)"
            ) from None
        # what an export killed mid-way left behind (we hold the lock: nobody else's)
        shutil.rmtree(self.dest.local / STAGING, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            import shutil

            assert self.dest.local is not None
            shutil.rmtree(self.dest.local / STAGING, ignore_errors=True)
            self.lock.release()
