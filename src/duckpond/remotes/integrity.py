"""What a remote must hold, by its own logs, and whether each object it holds is that:
the one checker `pond restore` and `pond verify` share.

A table's log is read first, from the version a restore starts at (0, or the checkpoint
after a gap) to its tip: every entry must be whole (logcheck: JSON lines, each a Delta
action, as many as its `pond_lines` says), the checkpoint it starts from readable. From
them come what every file must be (the `add` action's size, row count, and the sha256 the
commit records in `pond_sha256`) and which files are live at the tip (they must exist).
Then each object is checked as it arrives: a table file by that size and hash (or, for
a file without a recorded hash, its Parquet footer and row count), a checkpoint by
reading it whole, a blob by its name (its sha256), and by the size of the rows naming it.
Last, the remote's control table must not record a transaction committing data that the
remote's data log lacks (a deleted newest data log entry).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import RemoteError, RemoteNotFound
from ..records import DATA_COMMITTED
from ..storage import logcheck
from ..storage.objstore import ObjectStore
from . import layout
from .layout import LAST_CHECKPOINT, LOG, TABLES, LogListing
from .logs import BLOB_THRESHOLD
from .transfers import Transfers

# A fetched object: its bytes (verify) or the file it was downloaded to (restore).
Fetched = bytes | Path
Fetch = Callable[[str], Fetched]


class DamagedRemote(RemoteError):
    """A remote object is not what the remote's log says it is (or is missing)."""


@dataclass
class Expect:
    """What the log says one table file is."""

    source: str  # the log object that names it
    size: int | None = None
    rows: int | None = None
    sha256: str | None = None


@dataclass
class TableScan:
    table: str
    listing: LogListing
    start: int  # the version a restore starts from (-1: no log)
    bodies: dict[str, bytes] = field(default_factory=dict)  # entries and start checkpoint
    entries: dict[int, logcheck.Entry] = field(default_factory=dict)
    files: dict[str, Expect] = field(default_factory=dict)  # key -> what the log says
    live: set[str] = field(default_factory=set)  # keys live at the tip
    txn_seq: int = 0  # the pond txn_seq at the tip (data)


def restorable(key: str) -> bool:
    """A key a restore copies: a table file or a blob (no temp files, nothing else)."""
    parts = key.split("/")
    if any(p in ("", ".", "..") or p.startswith(layout.TMP_PREFIX) for p in parts):
        return False
    if parts[0] == layout.BLOBS:
        return len(parts) == 3 and len(parts[1]) == 2 and parts[2].startswith(parts[1])
    return parts[0] in TABLES and len(parts) >= 2


class RemoteCheck:
    """Check the objects `objects` (key -> listed size) of `store` against its logs.

    `fail_fast` (restore): the first problem raises DamagedRemote, one line naming the
    object. Otherwise (verify) problems are collected in `problems` as (key, what)."""

    def __init__(self, store: ObjectStore, objects: dict[str, int], fail_fast: bool) -> None:
        self.store = store
        self.objects = objects
        self.fail_fast = fail_fast
        self.problems: list[tuple[str, str]] = []
        self.tables: dict[str, TableScan] = {}
        self.shas: dict[str, str] = {}  # key -> sha256 of each object fetched
        self._blob_refs: dict[str, tuple[int, str]] = {}  # digest -> (size, data file key)
        self._committed: list[tuple[int, int | None, str]] = []  # control's data commits

    def problem(self, key: str, what: str) -> None:
        if self.fail_fast:
            raise DamagedRemote(f"remote {self.store.url}: {key} {what}")
        self.problems.append((key, what))

    # -- the logs --------------------------------------------------------------------------
    def read_logs(self, t: Transfers) -> None:
        """Fetch and check every table's log from its restore start; plan its files."""
        for table in TABLES:
            self.tables[table] = self._read_log(table, t)

    def _read_log(self, table: str, t: Transfers) -> TableScan:
        prefix = f"{table}/{LOG}/"
        listing = LogListing()
        for key, size in self.objects.items():
            if key.startswith(prefix) and "/" not in key[len(prefix) :]:
                listing.add(key[len(prefix) :], size)
        scan = TableScan(table, listing, _start(listing))
        if listing.tip < 0:
            return scan
        if scan.start < 0:
            gaps = [v for v in range(listing.start, listing.tip) if v not in listing.entries]
            self.problem(
                layout.entry_key(table, gaps[0]),
                f"is missing: the log lacks versions {_span(gaps)} and no checkpoint "
                "after them bridges the gap",
            )
        # (a log no restore can start: its entries are still read and checked)
        first = scan.start if scan.start >= 0 else listing.start
        versions = sorted(v for v in listing.entries if v >= first)
        keys = [layout.entry_key(table, v) for v in versions]
        ck = [layout.log_key(table, n) for n in listing.checkpoints.get(scan.start, [])]
        if scan.start > 0 and not ck:
            self.problem(
                layout.log_key(table, f"{scan.start:020d}.checkpoint.parquet"),
                "is missing: the log starts after version 0 without a checkpoint",
            )
        self._gather(t, keys + (ck if scan.start > 0 else []), lambda k: self._get(k, scan))
        for v, key in zip(versions, keys, strict=True):
            entry = logcheck.parse_entry(scan.bodies[key], v)
            if entry.problem:
                self.problem(key, f"is damaged: {entry.problem}")
            scan.entries[v] = entry
        if scan.start > 0:
            for key in ck:
                self._checkpoint_live(scan, key)
        for v in sorted(scan.entries):
            self._replay(scan, v, replay=scan.start == 0 or v > scan.start)
        if table == "data":
            scan.txn_seq = self._tip_txn_seq(scan, ck)
        for key in sorted(scan.live if scan.start >= 0 else ()):
            if key not in self.objects:
                self.problem(key, f"is missing (added by {scan.files[key].source})")
        return scan

    def _get(self, key: str, scan: TableScan) -> int:
        try:
            body = self.store.get(key)
        except RemoteNotFound:
            body = b""
            self.problem(key, "is missing (listed, then gone)")
        scan.bodies[key] = body
        self.shas[key] = hashlib.sha256(body).hexdigest()
        return len(body)

    def _checkpoint_live(self, scan: TableScan, key: str) -> None:
        import pyarrow.parquet as pq

        try:
            adds = pq.read_table(io.BytesIO(scan.bodies[key]), columns=["add"])
            rows = adds.column("add").to_pylist()
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is damage
            self.problem(key, f"is unreadable: {_short(e)}")
            return
        for add in rows:
            if add and add.get("path"):
                rel = layout.check_rel(unquote(add["path"]), key)
                size = add.get("size")
                fkey = f"{scan.table}/{rel}"
                scan.files.setdefault(
                    fkey, Expect(key, size if isinstance(size, int) else None, _rows(add))
                )
                scan.live.add(fkey)

    def _replay(self, scan: TableScan, v: int, replay: bool) -> None:
        """Learn what entry `v` says of its files; apply it to the live set."""
        entry = scan.entries[v]
        key = layout.entry_key(scan.table, v)
        info = entry.info or {}
        hashes = info.get("pond_sha256")
        hashes = hashes if isinstance(hashes, dict) else {}
        if replay:
            for path in entry.removes:
                scan.live.discard(f"{scan.table}/{unquote(path)}")
        for add in entry.adds:
            raw = add.get("path")
            if not isinstance(raw, str):
                self.problem(key, "is damaged: an add action without a path")
                continue
            try:
                rel = layout.check_rel(unquote(raw), key)
            except RemoteError as e:
                self.problem(key, f"is damaged: {e}")
                continue
            fkey = f"{scan.table}/{rel}"
            size, sha = add.get("size"), hashes.get(raw)
            scan.files[fkey] = Expect(
                key,
                size if isinstance(size, int) else None,
                _rows(add),
                sha if isinstance(sha, str) else None,
            )
            if replay:
                scan.live.add(fkey)

    def _tip_txn_seq(self, scan: TableScan, ck: list[str]) -> int:
        for v in sorted(scan.entries, reverse=True):
            seq = scan.entries[v].txn_version
            if seq is not None:
                return seq
        from .logs import checkpoint_txn_seq

        return checkpoint_txn_seq([scan.bodies[k] for k in ck if k in scan.bodies]) or 0

    # -- the objects -----------------------------------------------------------------------
    def todo(self) -> list[str]:
        """The keys still to fetch: every object but the log entries and checkpoints read
        already, and the entries before a restore's start (history a restore leaves out)."""
        done = {k for s in self.tables.values() for k in s.bodies}
        out = []
        for key in sorted(self.objects):
            parsed = _log_name(key)
            if key in done or (parsed is not None and parsed[0] < self._start_of(key)):
                continue
            out.append(key)
        return out

    def _start_of(self, key: str) -> int:
        scan = self.tables.get(key.split("/", 1)[0])
        return scan.start if scan is not None else 0

    def fetch_all(self, keys: list[str], fetch: Fetch, t: Transfers) -> None:
        """Fetch `keys`, checking each as it arrives; then what needs them all (the blobs
        the live data files reference, the control table against the data log)."""
        self._gather(t, keys, lambda k: self._check(k, fetch(k)))
        for digest, (size, source) in sorted(self._blob_refs.items()):
            key = layout.blob_key(digest)
            if key not in self.objects:
                self.problem(key, f"is missing (referenced by {source})")
            elif self.objects[key] != size:
                self.problem(key, f"has {self.objects[key]} bytes; {source} says {size}")
        self._check_control()

    def _gather(self, t: Transfers, keys: list[str], job: Callable[[str], int]) -> None:
        # Transfers stops at the first failure (the rest are skipped) and raises it.
        t.all(t.submit(partial(job, k)) for k in keys)

    def _check(self, key: str, got: Fetched) -> int:
        sha = _sha256(got)
        self.shas[key] = sha
        size = len(got) if isinstance(got, bytes) else got.stat().st_size
        parts = key.split("/")
        name = parts[-1]
        if parts[0] == layout.BLOBS:
            if sha != name:
                self.problem(key, "is corrupt: its content hash is not its name")
            return size
        scan = self.tables[parts[0]]
        parsed = _log_name(key)
        if parsed is not None and parsed[1] == "checkpoint":
            self._read_parquet(key, got, whole=True)
        elif parsed is not None:  # an entry before the start (verify keeps none)
            pass
        elif name == LAST_CHECKPOINT and len(parts) == 3 and parts[1] == LOG:
            try:
                int(json.loads(_bytes(got))["version"])
            except (ValueError, KeyError, TypeError):
                self.problem(key, "is damaged: not a `_last_checkpoint` hint")
        elif key in scan.files:
            want = scan.files[key]
            if want.size is not None and size != want.size:
                self.problem(key, f"has {size} bytes; {want.source} says {want.size}")
            elif want.sha256 is not None and sha != want.sha256:
                self.problem(key, f"is corrupt: its content hash differs from {want.source}'s")
            elif want.sha256 is None and name.endswith(".parquet"):
                rows = self._read_parquet(key, got, whole=False)
                if rows is not None and want.rows is not None and rows != want.rows:
                    self.problem(key, f"holds {rows} rows; {want.source} says {want.rows}")
            if key in scan.live:
                self._note_live(scan.table, key, got)
        elif name.endswith(".parquet"):  # history before the start, or the archive
            self._read_parquet(key, got, whole=False)
        return size

    def _read_parquet(self, key: str, got: Fetched, whole: bool) -> int | None:
        """Its row count, read from the footer (`whole`: every page decoded)."""
        import pyarrow.parquet as pq

        try:
            f = pq.ParquetFile(_source(got))
            if whole:
                f.read()
            return int(f.metadata.num_rows)
        except Exception as e:  # noqa: BLE001 - any unreadable file is damage
            self.problem(key, f"is unreadable: {_short(e)}")
            return None

    def _note_live(self, table: str, key: str, got: Fetched) -> None:
        """What a live file says that is checked once all have arrived: the blobs a data
        file's rows reference; the data commits a control file records."""
        import pyarrow.parquet as pq

        try:
            if table == "data":
                t = pq.read_table(_source(got), columns=["content_hash", "size"])
                for digest, size in zip(
                    t.column("content_hash").to_pylist(),
                    t.column("size").to_pylist(),
                    strict=True,
                ):
                    if digest and size is not None and size >= BLOB_THRESHOLD:
                        self._blob_refs[digest] = (int(size), key)
                return
            cols = ["txn_seq", "record_type", "data_fs_version"]
            t = pq.read_table(_source(got), columns=cols)
        except Exception as e:  # noqa: BLE001 - any unreadable file is damage
            self.problem(key, f"is unreadable: {_short(e)}")
            return
        for seq, kind, version in zip(*(t.column(c).to_pylist() for c in cols), strict=True):
            if kind == DATA_COMMITTED and seq is not None:
                self._committed.append((int(seq), version, key))

    def _check_control(self) -> None:
        """The remote's control table must not record a data commit its data log lacks
        (push sends a control entry only after the data entries it records)."""
        data = self.tables.get("data")
        if data is None or data.start < 0 or not self._committed:
            return
        seq, version, source = max(self._committed, key=lambda c: c[0])
        if seq <= data.txn_seq:
            return
        at = version if version is not None and version > data.listing.tip else None
        key = layout.entry_key("data", at) if at is not None else f"data/{LOG}/"
        self.problem(
            key,
            f"is missing: the remote's control table ({source}) records txn {seq} "
            f"committing data, but its data log ends at version {data.listing.tip} "
            f"(txn {data.txn_seq})",
        )


def _start(listing: LogListing) -> int:
    """The version a restore starts from: 0 for a whole log; else the oldest checkpoint
    after the last gap (or at the log's first entry). -1: none (a gap nothing bridges)."""
    if listing.tip < 0:
        return -1
    gaps = [v for v in range(max(listing.start, 0), listing.tip + 1) if v not in listing.entries]
    if not gaps and listing.start == 0:
        return 0
    floor = gaps[-1] if gaps else listing.start
    bridges = [c for c in listing.checkpoints if floor <= c <= listing.tip and c in listing.entries]
    if not bridges:
        return listing.start if not gaps else -1
    return min(bridges)


def _span(versions: list[int]) -> str:
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]}"


def _log_name(key: str) -> tuple[int, str] | None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] not in TABLES or parts[1] != LOG:
        return None
    return layout.parse_log_name(parts[2])


def _rows(add: dict[str, Any]) -> int | None:
    stats = add.get("stats")
    try:
        n = json.loads(stats).get("numRecords") if isinstance(stats, str) else None
    except (ValueError, AttributeError):
        return None
    return n if isinstance(n, int) else None


def _sha256(got: Fetched) -> str:
    if isinstance(got, bytes):
        return hashlib.sha256(got).hexdigest()
    with open(got, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _bytes(got: Fetched) -> bytes:
    return got if isinstance(got, bytes) else got.read_bytes()


def _source(got: Fetched) -> io.BytesIO | str:
    return io.BytesIO(got) if isinstance(got, bytes) else str(got)


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__
