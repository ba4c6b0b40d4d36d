"""Push, pull, restore and verify a pond against a remote (see layout.py for the layout).

Push never forks a remote's history: every log entry goes up with put-if-absent, after
every file it needs (Parquet files, the blobs its rows reference, a checkpoint it starts
from); a put that finds the entry already there compares bytes: the same bytes are an
entry pushed before (a push killed half-way resumes), other bytes are a diverged remote
and nothing more is written. A control entry goes up only once the data entries of the
transactions it records are (the two tables' entries go up on two threads), and
`_last_checkpoint` last. A reader of the remote therefore never sees a half-pushed
transaction.

An incremental push starts from the caller's watermark (`since`: the tip the previous push
returned), checked by fetching that one entry; without one it lists the remote's
`_delta_log/`. New blobs are found from the new entries' rows, never by listing the remote.

The caller holds the pond's write lock for push and pull; these functions take no lock.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .. import nodes
from ..errors import AlreadyExistsError, NotFoundError, RemoteError, RemoteNotFound
from ..storage.durability import fsync_dir
from ..storage.objstore import ObjectInfo, ObjectStore
from . import layout
from .layout import LAST_CHECKPOINT, LOG, TABLES, LogListing
from .reports import MISMATCH, OK, RemoteTip, SyncReport, VerifyReport

Progress = Callable[[int, int], None]
# Independent uploads and downloads in flight at once.
WORKERS = 8
# How far back a tip's txn_seq is looked for in the log before reading a checkpoint.
TXN_SEQ_LOOKBACK = 64
# Rows this large keep their contents in a blob (an add whose `size` statistics stay below
# it references none).
BLOB_THRESHOLD = nodes.LARGE_CONTENT_THRESHOLD


# -- transfers -------------------------------------------------------------------------


class _Transfers:
    """A thread pool moving independent files, counting files and bytes for the report
    and the progress callback."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.total = 0
        self.done = 0
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pond-remote")

    def __enter__(self) -> _Transfers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def plan(self, nbytes: int) -> None:
        with self._lock:
            self.total += nbytes

    def moved(self, nbytes: int, files: int = 1) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self.done += nbytes
            done, total = self.done, max(self.total, self.done)
        if self.progress is not None:
            self.progress(done, total)

    def submit(self, job: Callable[[], int], files: int = 1) -> Future[int]:
        def run() -> int:
            n = job()
            self.moved(n, files)
            return n

        return self._pool.submit(run)

    def all(self, futures: Iterable[Future[int]]) -> None:
        """Wait for `futures`; the first failure is raised (the rest are waited for)."""
        futures = list(futures)
        wait(futures)
        for f in futures:
            f.result()


# -- the local pond --------------------------------------------------------------------


def _local_pond_id(root: Path) -> str:
    from deltalake import DeltaTable

    try:
        desc = DeltaTable(str(root / "data")).metadata().description or "{}"
        pond_id = json.loads(desc).get("pond", {}).get("pond_id")
    except Exception:  # a missing or unreadable table: one line, not a delta-rs trace
        pond_id = None
    if not isinstance(pond_id, str):
        raise NotFoundError(f"no readable pond at {root}")
    return pond_id


def _read_local(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RemoteError(f"cannot read {path}: {e.strerror or e}") from None


def _blob_refs(files: Iterable[Path]) -> list[str]:
    """Content hashes of the rows held in blobs (size >= the inline threshold)."""
    import pyarrow.parquet as pq

    out: list[str] = []
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
                out.append(digest)
    return out


def _checkpoint_adds(files: Iterable[Path | bytes]) -> list[str]:
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


def _checkpoint_txn_seq(files: Iterable[Path | bytes]) -> int | None:
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


def _txn_seq_at(
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
        seq = _checkpoint_txn_seq(bodies)
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


def _local_reader(table_dir: Path) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        try:
            return (table_dir / LOG / name).read_bytes()
        except FileNotFoundError:
            return None

    return read


def _remote_reader(store: ObjectStore, table: str) -> Callable[[str], bytes | None]:
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
    seq = _txn_seq_at(data, data.tip, _local_reader(root / "data"), "data")
    return RemoteTip(data.tip, control.tip, seq)


# -- the remote ------------------------------------------------------------------------


def remote_identity(store: ObjectStore) -> dict[str, Any] | None:
    """The remote's `pond.json` ({"pond_id", "format"}), or None when it holds no pond."""
    try:
        body = store.get(layout.POND_JSON)
    except RemoteNotFound:
        return None
    return layout.parse_marker(body, store.url)


def _remote_log(store: ObjectStore, table: str, after: str | None = None) -> LogListing:
    out = LogListing()
    prefix = f"{table}/{LOG}"
    for obj in store.list(prefix, after=after):
        rest = obj.key[len(prefix) + 1 :]
        if "/" not in rest:
            out.add(rest, obj.size)
    return out


def remote_tip(store: ObjectStore) -> RemoteTip:
    """Where the remote stands (lists both logs; reads the entries naming the txn_seq)."""
    data = _remote_log(store, "data")
    control = _remote_log(store, "control")
    seq = _txn_seq_at(data, data.tip, _remote_reader(store, "data"), f"remote {store.url} data")
    return RemoteTip(data.tip, control.tip, seq)


def _diverged(store: ObjectStore, table: str, version: int) -> RemoteError:
    return RemoteError(
        f"remote {store.url} has diverged from this pond at {table} version {version}; "
        "nothing was written"
    )


def _claim(store: ObjectStore, pond_id: str, remote_data: LogListing, t: _Transfers) -> None:
    """Make sure the remote holds this pond: `pond.json` put-if-absent on the first push."""
    ident = remote_identity(store)
    if ident is None:
        if remote_data.entries:
            raise RemoteError(f"remote {store.url} holds a data table but no {layout.POND_JSON}")
        body = layout.marker(pond_id)
        if store.put_if_absent(layout.POND_JSON, body):
            t.moved(len(body))
            return
        ident = remote_identity(store)
    if ident is None or ident["pond_id"] != pond_id:
        other = ident["pond_id"] if ident else "?"
        raise RemoteError(f"remote {store.url} holds pond {other}, not this pond {pond_id}")


# -- push ------------------------------------------------------------------------------


@dataclass
class _Entry:
    version: int
    body: bytes
    jobs: list[Future[int]]  # uploads it waits for
    txn_seq: int | None  # data: the transaction it commits
    # control: the newest txn_seq its rows record (None: unknown, wait for all the data)
    records_upto: int | None = None


@dataclass
class _TablePush:
    table: str
    local: LogListing
    start: int  # the remote's tip before this push
    listed: LogListing | None  # the remote log, when it was listed
    jump: int | None = None  # a checkpoint the push starts from (local log pruned)
    entries: list[_Entry] = field(default_factory=list)


class _Gate:
    """Lets the control chain follow the data chain: a control entry goes up once the
    data entries of every transaction it records are up (or the data chain is done), so
    the remote's control table never records a transaction its data table lacks."""

    def __init__(self, seq: int) -> None:
        self._cond = threading.Condition()
        self.seq = seq
        self.done = False
        self.aborted = False

    def advance(self, seq: int | None) -> None:
        if seq is not None:
            with self._cond:
                self.seq = max(self.seq, seq)
                self._cond.notify_all()

    def close(self, aborted: bool) -> None:
        with self._cond:
            self.done = True
            self.aborted = self.aborted or aborted
            self._cond.notify_all()

    def wait(self, seq: int | None) -> bool:
        """False when the data chain failed: push nothing more."""
        with self._cond:
            while not self.done and (seq is None or self.seq < seq):
                self._cond.wait()
            return not self.aborted


def _records_upto(paths: Iterable[Path]) -> int | None:
    """The largest txn_seq in control files, from their Parquet footers' statistics."""
    import pyarrow.parquet as pq

    top = -1
    for path in paths:
        try:
            meta = pq.ParquetFile(path).metadata
            idx = meta.schema.to_arrow_schema().get_field_index("txn_seq")
            if idx < 0:
                return None
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(idx).statistics
                if stats is None or not stats.has_min_max:
                    return None
                top = max(top, int(stats.max))
        except (OSError, ValueError):
            return None
    return top


def _push_start(
    store: ObjectStore,
    root: Path,
    table: str,
    local: LogListing,
    hint: int | None,
    listed: LogListing | None = None,
) -> tuple[int, LogListing | None]:
    """The remote's tip for `table`: the watermark's entry, checked by one fetch, or else a
    listing. Refuses a remote that is ahead of this pond or diverged from it."""
    if hint is not None and hint >= 0 and hint in local.entries:
        try:
            body = store.get(layout.entry_key(table, hint))
        except RemoteNotFound:
            body = None  # the remote lost what the watermark says: list it
        if body is not None:
            if body != _read_local(root / table / LOG / local.entries[hint]):
                raise _diverged(store, table, hint)
            return hint, None
    if listed is None:
        listed = _remote_log(store, table)
    tip = listed.tip
    if tip > local.tip:
        raise RemoteError(
            f"remote {store.url} has {table} versions this pond lacks "
            f"({tip} > {local.tip}); pushing would fork it"
        )
    if tip >= 0 and tip in local.entries:
        if store.get(layout.entry_key(table, tip)) != _read_local(
            root / table / LOG / local.entries[tip]
        ):
            raise _diverged(store, table, tip)
    elif tip >= 0 and table == "data" and not _archive_agrees(store, root, listed):
        raise _diverged(store, table, tip)
    return tip, listed


def _archive_agrees(store: ObjectStore, root: Path, listed: LogListing) -> bool:
    """Whether the remote's newest transaction (its log entry's `pond_txn`) is the one
    this pond archived for that version, when this pond's log no longer holds the entry
    (pruned behind a checkpoint). Unknown (nothing to compare) counts as agreeing: the
    pond id matched."""
    from ..storage.deltafiles import archived_metadata

    archived = {v: raw for v, _, raw in archived_metadata(root / "data")}
    for v in sorted(listed.entries, reverse=True)[:TXN_SEQ_LOOKBACK]:
        body = store.get(layout.entry_key("data", v))
        for line in body.splitlines():
            try:
                info = json.loads(line).get("commitInfo") if line.strip() else None
            except ValueError:
                return False
            if isinstance(info, dict) and info.get("pond_txn"):
                return v not in archived or archived[v] == info["pond_txn"]
    return True


def _plan_table(
    store: ObjectStore, root: Path, tp: _TablePush, t: _Transfers, blobs: _BlobPusher
) -> None:
    """Submit the uploads of every file the new entries need; record each entry's body
    and the uploads it waits for."""
    table_dir = root / tp.table
    local = tp.local
    first = tp.start + 1
    if first > local.tip:
        return
    deps: list[Future[int]] = []
    if first not in local.entries:
        # The local log was pruned behind a checkpoint: push that checkpoint and the files
        # live at it, then the entries after it (a gap before a checkpoint is valid Delta).
        bridge = [
            c
            for c in local.checkpoints
            if first - 1 < c <= local.tip and local.contiguous_from(c + 1)
        ]
        if not bridge:
            raise RemoteError(
                f"cannot push {tp.table} versions {first}..{local.tip}: the local log starts "
                f"at {local.start} and no checkpoint bridges the gap"
            )
        c = max(bridge)
        tp.jump = c
        ck_paths = [table_dir / LOG / n for n in local.checkpoints[c]]
        live = _checkpoint_adds(ck_paths)
        live_files = [table_dir / p for p in live]
        deps += _upload_files(
            store, table_dir, tp.table, live, t, blobs if tp.table == "data" else None
        )
        deps += [_upload(store, layout.log_key(tp.table, p.name), p, t) for p in ck_paths]
        first = c if c in local.entries else c + 1
    else:
        live_files = []
    for v in range(first, local.tip + 1):
        name = local.entries.get(v)
        if name is None:
            raise RemoteError(f"{tp.table} log entry {v} is missing locally; run `pond fsck`")
        body = _read_local(table_dir / LOG / name)
        info = layout.parse_entry(body, f"{tp.table} log entry {v}", BLOB_THRESHOLD)
        finder = blobs if tp.table == "data" and not info.maintenance else None
        jobs = deps + _upload_files(
            store, table_dir, tp.table, info.adds, t, finder, info.blob_free
        )
        t.plan(len(body))
        upto = None
        if tp.table == "control":
            upto = _records_upto([*live_files, *(table_dir / p for p in info.adds)])
        tp.entries.append(_Entry(v, body, jobs, info.txn_seq, upto))
        deps, live_files = [], []


def _upload(
    store: ObjectStore,
    key: str,
    path: Path,
    t: _Transfers,
    blobs: _BlobPusher | None = None,
) -> Future[int]:
    """Upload one file in the pool; with `blobs`, a data file whose rows' blobs are then
    found and uploaded by the same job (reading the rows off the main thread)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    t.plan(size)

    def job() -> int:
        store.put_file(key, path)
        if blobs is not None:
            blobs.push(_blob_refs([path]))
        return size

    return t.submit(job)


class _BlobPusher:
    """Uploads each blob once. A job that meets a blob another job is uploading waits for
    it: the entry that waits for this job must never land before the blob does."""

    def __init__(self, store: ObjectStore, root: Path, t: _Transfers) -> None:
        self.store, self.root, self.t = store, root, t
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Event] = {}
        self._failed: set[str] = set()

    def push(self, digests: Iterable[str]) -> None:
        for digest in digests:
            with self._lock:
                event = self._claims.get(digest)
                mine = event is None
                if event is None:
                    event = self._claims[digest] = threading.Event()
            if not mine:
                event.wait()  # its uploader is running (not queued): no deadlock
                if digest in self._failed:
                    raise RemoteError(f"remote {self.store.url}: blob {digest} failed to upload")
                continue
            try:
                path = self.root / layout.BLOBS / digest[:2] / digest
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    raise RemoteError(
                        f"blob {digest} is missing locally; run `pond fsck`"
                    ) from None
                self.t.plan(size)
                self.store.put_file(layout.blob_key(digest), path)
                self.t.moved(size)
            except BaseException:
                self._failed.add(digest)
                raise
            finally:
                event.set()


def _upload_files(
    store: ObjectStore,
    table_dir: Path,
    table: str,
    rels: Iterable[str],
    t: _Transfers,
    blobs: _BlobPusher | None = None,
    blob_free: set[str] | frozenset[str] = frozenset(),
) -> list[Future[int]]:
    out = []
    for rel in rels:
        path = table_dir / rel
        if not path.exists():
            continue  # vacuumed locally after a compaction: history only (documented)
        finder = None if rel in blob_free else blobs
        out.append(_upload(store, f"{table}/{rel}", path, t, finder))
    return out


def _push_entries(store: ObjectStore, tp: _TablePush, t: _Transfers, gate: _Gate) -> int:
    """Put the entries in version order, each once its files are up (and, for control,
    once the gate lets it); returns how many were new on the remote. The data chain
    advances the gate."""
    pushed = 0
    for e in tp.entries:
        t.all(e.jobs)
        if tp.table == "control" and not gate.wait(e.records_upto):
            break  # the data chain failed: its error is the one raised
        key = layout.entry_key(tp.table, e.version)
        if store.put_if_absent(key, e.body):
            pushed += 1
            ms = layout.commit_time_ms(e.body)
            if ms is not None:  # readers time travel by an entry's modification time
                store.set_modified(key, ms)
        elif store.get(key) != e.body:
            raise _diverged(store, tp.table, e.version)
        # (else: pushed before a kill, already there)
        t.moved(len(e.body), files=0)
        if tp.table == "data":
            gate.advance(e.txn_seq)
    return pushed


def _push_chains(
    store: ObjectStore, data: _TablePush, control: _TablePush, t: _Transfers, gate: _Gate
) -> int:
    """The data entries on this thread, the control entries behind them on another
    (two sequences of one request each at a time, instead of one)."""
    result: list[int] = []
    errors: list[BaseException] = []

    def run_control() -> None:
        try:
            result.append(_push_entries(store, control, t, gate))
        except BaseException as e:  # re-raised on the calling thread
            errors.append(e)

    thread = threading.Thread(target=run_control, name="pond-remote-control", daemon=True)
    thread.start()
    ok = False
    try:
        pushed = _push_entries(store, data, t, gate)
        ok = True
    finally:
        gate.close(aborted=not ok)
        thread.join()
    if errors:
        raise errors[0]
    return pushed + result[0]


def _push_checkpoints(
    store: ObjectStore, root: Path, tp: _TablePush, tip: int, t: _Transfers
) -> None:
    """Checkpoints of the pushed versions (after their entries), the archive of pruned
    entries' metadata, then `_last_checkpoint`."""
    table_dir = root / tp.table
    log = table_dir / LOG
    have = tp.listed.checkpoints if tp.listed is not None else {}
    # From the watermark itself: `pond maintain` checkpoints a version already pushed.
    lo = -1 if tp.listed is not None else tp.start - 1
    todo: list[Future[int]] = []
    for v, names in sorted(tp.local.checkpoints.items()):
        if lo < v <= tip and v != tp.jump:
            for name in names:
                key = layout.log_key(tp.table, name)
                if name in have.get(v, []):
                    continue
                if v == tp.start and tp.listed is None:
                    info = store.head(key)
                    if info is not None and info.size == (log / name).stat().st_size:
                        continue
                todo.append(_upload(store, key, log / name, t))
    t.all(todo)
    if not todo and tp.jump is None and tp.listed is None:
        return  # nothing new: the archive and `_last_checkpoint` are unchanged
    arch = table_dir / layout.ARCHIVE_DIR
    if arch.is_dir():
        prefix = layout.archive_prefix(tp.table)
        remote = {o.key: o.size for o in store.list(prefix)}
        jobs = []
        for path in sorted(arch.iterdir()):
            if not layout.is_table_file(path.name) or not path.is_file():
                continue
            key = f"{prefix}/{path.name}"
            if remote.get(key) != path.stat().st_size:
                jobs.append(_upload(store, key, path, t))
        t.all(jobs)
    last = log / LAST_CHECKPOINT
    if last.exists():
        body = _read_local(last)
        try:
            named = int(json.loads(body)["version"])
        except (ValueError, KeyError, TypeError):
            return
        key = layout.log_key(tp.table, LAST_CHECKPOINT)
        if named <= tip and (todo or tp.jump is not None or _remote_bytes(store, key) != body):
            store.put(key, body)
            t.moved(len(body))


def _remote_bytes(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get(key)
    except RemoteNotFound:
        return None


def push(
    root: Path,
    store: ObjectStore,
    progress: Progress | None = None,
    *,
    since: RemoteTip | None = None,
) -> SyncReport:
    """Push the pond at `root` to `store`. `since`: the tip a previous push to this remote
    returned (the local watermark); without it the remote's logs are listed. Idempotent
    and resumable; refuses (RemoteError, nothing written) a remote that holds another
    pond, is ahead of this one, or diverged from it. The caller holds the write lock."""
    root = Path(root).absolute()
    locals_ = {table: layout.local_log(root / table) for table in TABLES}
    if locals_["data"].tip < 0:
        raise NotFoundError(f"no pond at {root}")
    hints = (
        {"data": None, "control": None}
        if since is None
        else {
            "data": since.data_version,
            "control": since.control_version,
        }
    )
    with _Transfers(progress) as t:
        data_listed = None
        if since is None or since.data_version < 0:
            # no watermark: check (or claim) the remote before anything else
            data_listed = _remote_log(store, "data")
            _claim(store, _local_pond_id(root), data_listed, t)
        plans: list[_TablePush] = []
        for table in TABLES:
            start, listed = _push_start(
                store,
                root,
                table,
                locals_[table],
                hints[table],
                data_listed if table == "data" else None,
            )
            plans.append(_TablePush(table, locals_[table], start, listed))
        data_plan = plans[0]
        blobs = _BlobPusher(store, root, t)
        for tp in plans:
            _plan_table(store, root, tp, t, blobs)
        start_seq = _txn_seq_at(
            locals_["data"], data_plan.start, _local_reader(root / "data"), "data"
        )
        entries = _push_chains(store, plans[0], plans[1], t, _Gate(start_seq))
        for tp in plans:
            _push_checkpoints(store, root, tp, tp.local.tip, t)
        tip_seq = _txn_seq_at(
            locals_["data"], locals_["data"].tip, _local_reader(root / "data"), "data"
        )
        return SyncReport(
            url=store.url,
            direction="push",
            start=RemoteTip(plans[0].start, plans[1].start, start_seq),
            tip=RemoteTip(locals_["data"].tip, locals_["control"].tip, tip_seq),
            entries=entries,
            files=t.files,
            bytes=t.bytes,
        )


# -- pull ------------------------------------------------------------------------------


def _check_same_pond(root: Path, store: ObjectStore) -> None:
    ident = remote_identity(store)
    if ident is None:
        raise RemoteError(f"remote {store.url} holds no pond ({layout.POND_JSON} is missing)")
    pond_id = _local_pond_id(root)
    if ident["pond_id"] != pond_id:
        raise RemoteError(
            f"remote {store.url} holds pond {ident['pond_id']}, not this pond {pond_id}"
        )


def _stamp(path: Path, body: bytes) -> None:
    """Give a copied log entry its commit's time as its modification time: Delta readers
    time travel by that time (`load_as_version(datetime)`), not by commitInfo."""
    ms = layout.commit_time_ms(body)
    if ms is not None:
        os.utime(path, ns=(ms * 1_000_000, ms * 1_000_000))


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
        _stamp(log / name, body)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _download(
    store: ObjectStore, key: str, dest: Path, t: _Transfers, sync: bool = True
) -> Future[int]:
    def job() -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return store.get_file(key, dest, sync=sync)

    return t.submit(job)


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


def pull(root: Path, store: ObjectStore, progress: Progress | None = None) -> SyncReport:
    """Fast-forward the pond at `root` to the remote: the local log must be a prefix of
    the remote's (compared by bytes at the local tip). Files first, then the entries in
    order, each synced and linked into place. The caller holds the write lock."""
    root = Path(root).absolute()
    start = local_tip(root)
    if start.data_version < 0:
        raise NotFoundError(f"no pond at {root}")
    _check_same_pond(root, store)
    entries = 0
    with _Transfers(progress) as t:
        for table in TABLES:
            entries += _pull_table(root, store, table, t)
        tip = local_tip(root)
        return SyncReport(store.url, "pull", start, tip, entries, t.files, t.bytes)


def _pull_table(root: Path, store: ObjectStore, table: str, t: _Transfers) -> int:
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
        listed = _remote_log(store, table)
        if listed.tip < tip and listed.tip in local.entries:
            if store.get(layout.entry_key(table, listed.tip)) != _read_local(
                log / local.entries[listed.tip]
            ):
                raise _diverged(store, table, listed.tip)
            return 0  # the remote is behind this pond: nothing to pull
        raise RemoteError(
            f"remote {store.url} lacks {table} version {tip} of this pond; cannot fast-forward"
        )
    if remote_body != _read_local(log / local.entries[tip]):
        raise _diverged(store, table, tip)
    newer = _remote_log(store, table, after=layout.entry_key(table, tip))
    if not newer.entries:
        return 0
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
        t.all([_download(store, layout.log_key(table, n), log / n, t) for n in names])
        live = _checkpoint_adds([log / n for n in names])
    fetched: dict[int, bytes] = {}
    t.all([t.submit(partial(_fetch, store, table, v, fetched), files=0) for v in versions])
    infos = {
        v: layout.parse_entry(fetched[v], f"remote {table} entry {v}", BLOB_THRESHOLD)
        for v in versions
    }
    # Files the new entries add, then the blobs their rows reference.
    files = sorted({p for v in versions for p in infos[v].adds} | set(live))
    file_jobs = [
        _download(store, f"{table}/{p}", table_dir / p, t)
        for p in files
        if not (table_dir / p).exists()
    ]
    t.all(file_jobs)
    _sync_dirs({(table_dir / p).parent for p in files})
    if table == "data":
        refs: set[str] = set()
        for v in versions:
            info = infos[v]
            if not info.maintenance:
                refs.update(_blob_refs(table_dir / p for p in info.adds if p not in info.blob_free))
        refs.update(_blob_refs(table_dir / p for p in live))
        blobs = root / layout.BLOBS
        blob_jobs = [
            _download(store, layout.blob_key(d), blobs / d[:2] / d, t)
            for d in sorted(refs)
            if not (blobs / d[:2] / d).exists()
        ]
        t.all(blob_jobs)
        _sync_dirs({blobs / d[:2] for d in refs} | {blobs})
    moved = 0
    for v in versions:
        if _link_entry(log, layout.entry_name(v), fetched[v], store, table, v):
            moved += 1
            t.moved(len(fetched[v]), files=0)
    fsync_dir(log)
    # Checkpoints and `_last_checkpoint` after the entries they summarize.
    ck_jobs = [
        _download(store, layout.log_key(table, n), log / n, t)
        for v, names in newer.checkpoints.items()
        for n in names
        if v <= newer.tip and not (log / n).exists()
    ]
    t.all(ck_jobs)
    if ck_jobs or bridge is not None:
        _pull_archive(store, table_dir, table, t)
    if newer.has_last_checkpoint:
        t.all([_download(store, layout.log_key(table, LAST_CHECKPOINT), log / LAST_CHECKPOINT, t)])
    fsync_dir(log)
    if bridge is not None:
        _close_gap(table_dir, table)
    return moved


def _close_gap(table_dir: Path, table: str) -> None:
    """A local log with a gap below a checkpoint (a pull that started from a checkpoint,
    perhaps killed before this ran) drops the entries before that checkpoint, their
    metadata archived as local pruning does: a local log must be contiguous."""
    from ..storage import deltafiles

    local = layout.local_log(table_dir)
    gaps = [v for v in range(max(local.start, 0), local.tip + 1) if v not in local.entries]
    bridges = [c for c in local.checkpoints if gaps and gaps[-1] <= c <= local.tip]
    if bridges:
        deltafiles.prune_log(table_dir, min(bridges), "pond_txn" if table == "data" else None)


def _fetch(store: ObjectStore, table: str, v: int, out: dict[int, bytes]) -> int:
    out[v] = store.get(layout.entry_key(table, v))
    return 0  # counted when the entry is linked


def _pull_archive(store: ObjectStore, table_dir: Path, table: str, t: _Transfers) -> None:
    prefix = layout.archive_prefix(table)
    arch = table_dir / layout.ARCHIVE_DIR
    jobs = []
    for obj in store.list(prefix):
        name = obj.key[len(prefix) + 1 :]
        if "/" in name or not layout.is_table_file(name):
            continue
        if not (arch / name).exists():
            jobs.append(_download(store, obj.key, arch / name, t))
    t.all(jobs)
    if jobs:
        fsync_dir(arch)


def _sync_dirs(dirs: Iterable[Path]) -> None:
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        if d.is_dir():
            fsync_dir(d)


# -- restore ---------------------------------------------------------------------------


def restore(root: Path, store: ObjectStore, progress: Progress | None = None) -> SyncReport:
    """Create the pond at `root` (absent or an empty directory) from the remote: every
    file of its data, control and blobs, downloaded into a sibling temp directory, synced,
    then renamed into place. Any failure removes the temp directory: nothing is left."""
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
    tmp = root.parent / f".{root.name}.restore-{os.urandom(6).hex()}"
    try:
        tmp.mkdir()
        dirs = {tmp / layout.BLOBS} | {(tmp / o.key).parent for o in keys}
        for d in sorted(dirs, key=lambda d: len(d.parts)):
            d.mkdir(parents=True, exist_ok=True)
        with _Transfers(progress) as t:
            for o in keys:
                t.plan(o.size)
            t.all([_download(store, o.key, tmp / o.key, t, sync=False) for o in keys])
            files, nbytes = t.files, t.bytes
        for o in keys:
            name = o.key.rsplit("/", 1)[-1]
            if "/_delta_log/" in o.key and name.endswith(".json") and name[:-5].isdigit():
                _stamp(tmp / o.key, (tmp / o.key).read_bytes())
        if not _sync_filesystem(tmp, [tmp / o.key for o in keys]):
            parents = set()
            for d in dirs:
                while d != tmp:
                    parents.add(d)
                    d = d.parent
            _sync_dirs(parents | {tmp})
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


# -- verify ----------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, store: ObjectStore) -> VerifyReport:
    """Compare the local pond with the remote: the pond id, every log entry both hold
    (by bytes), and every remote file by content hash (against the local file; a blob
    against its name). OK lines when equal or when one side is only behind; MISMATCH
    when they diverged or a remote file is missing or corrupt."""
    root = Path(root).absolute()
    lines: list[tuple[str, str]] = []
    mine = local_tip(root)
    if mine.data_version < 0:
        raise NotFoundError(f"no pond at {root}")
    ident = remote_identity(store)
    url = store.url
    if ident is None:
        lines.append((MISMATCH, f"{url} holds no pond ({layout.POND_JSON} is missing)"))
        return VerifyReport(url, lines, mine, RemoteTip(-1, -1, 0))
    pond_id = _local_pond_id(root)
    if ident["pond_id"] != pond_id:
        lines.append((MISMATCH, f"{url} holds pond {ident['pond_id']}, not this pond {pond_id}"))
        return VerifyReport(url, lines, mine, RemoteTip(-1, -1, 0))
    lines.append((OK, f"{url} holds this pond ({pond_id})"))
    theirs = remote_tip(store)
    objects = {o.key: o.size for o in store.list("")}
    with ThreadPoolExecutor(WORKERS) as pool:
        expected: set[str] = set()
        for table in TABLES:
            lines += _verify_log(root, store, table, objects, expected, pool)
        lines += _verify_files(root, store, objects, expected, theirs, pool)
    if theirs.txn_seq < mine.txn_seq:
        lines.append(
            (
                OK,
                f"{url} is behind by {mine.txn_seq - theirs.txn_seq} transactions "
                f"(txn_seq {theirs.txn_seq} < {mine.txn_seq}); push to catch up",
            )
        )
    elif theirs.txn_seq > mine.txn_seq:
        lines.append(
            (
                OK,
                f"{url} is ahead by {theirs.txn_seq - mine.txn_seq} transactions "
                f"(txn_seq {theirs.txn_seq} > {mine.txn_seq}); pull to catch up",
            )
        )
    elif all(s == OK for s, _ in lines):
        lines.append((OK, f"{url} is up to date (txn_seq {mine.txn_seq})"))
    return VerifyReport(url, lines, mine, theirs)


def _remote_sha(store: ObjectStore, key: str) -> str | None:
    try:
        return hashlib.sha256(store.get(key)).hexdigest()
    except RemoteNotFound:
        return None


def _verify_log(
    root: Path,
    store: ObjectStore,
    table: str,
    objects: dict[str, int],
    expected: set[str],
    pool: ThreadPoolExecutor,
) -> list[tuple[str, str]]:
    """Compare the entries both sides hold; collect the files the remote must hold."""
    table_dir = root / table
    local = layout.local_log(table_dir)
    remote = LogListing()
    prefix = f"{table}/{LOG}/"
    for key, size in objects.items():
        if key.startswith(prefix) and "/" not in key[len(prefix) :]:
            remote.add(key[len(prefix) :], size)
    out: list[tuple[str, str]] = []
    if remote.tip < 0:
        return [(OK, f"{table}: the remote holds no log entries yet (push to catch up)")]
    gaps = [v for v in range(remote.start, remote.tip + 1) if v not in remote.entries]
    # a gap is valid only below a checkpoint the remote holds (the log resumes after it)
    if gaps and not any(c >= gaps[-1] for c in remote.checkpoints if c <= remote.tip):
        out.append((MISMATCH, f"{table}: remote log entries missing: {_span(gaps)}"))
    common = sorted(set(local.entries) & set(remote.entries))
    shas = dict(
        zip(
            common,
            pool.map(lambda v: _remote_sha(store, layout.entry_key(table, v)), common),
            strict=True,
        )
    )
    diverged = [v for v in common if shas[v] != _sha256_file(table_dir / LOG / local.entries[v])]
    if diverged:
        out.append((MISMATCH, f"{table}: diverged from this pond at version {diverged[0]}"))
    else:
        out.append(
            (
                OK,
                f"{table}: {len(common)} log entries match (remote version {remote.tip}, "
                f"local {local.tip})",
            )
        )
    # Files the remote must hold: those added up to its tip (that this pond still has).
    upto = min(remote.tip, local.tip)
    ck = [c for c in local.checkpoints if c <= upto]
    if local.start > 0 and ck:
        # entries pruned locally: the files live at the oldest checkpoint stand for them
        oldest = local.checkpoints[min(ck)]
        for rel in _checkpoint_adds([table_dir / LOG / n for n in oldest]):
            expected.add(f"{table}/{rel}")
    for v in range(0, upto + 1):
        name = local.entries.get(v)
        if name is None:
            continue
        body = (table_dir / LOG / name).read_bytes()
        for rel in layout.parse_entry(body, f"{table} log entry {v}").adds:
            expected.add(f"{table}/{rel}")
    for v, names in local.checkpoints.items():
        if remote.start <= v <= upto:
            expected.update(layout.log_key(table, n) for n in names)
    return out


def _span(versions: list[int]) -> str:
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]}"


def _verify_files(
    root: Path,
    store: ObjectStore,
    objects: dict[str, int],
    expected: set[str],
    theirs: RemoteTip,
    pool: ThreadPoolExecutor,
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    # Blobs the remote must hold: those the expected data files' rows reference.
    data_files = [root / k for k in expected if k.startswith("data/") and f"/{LOG}/" not in k]
    expected_blobs = {layout.blob_key(d) for d in _blob_refs(p for p in data_files if p.exists())}
    expected = {k for k in expected if (root / k).exists()} | expected_blobs
    missing = sorted(k for k in expected if k not in objects)
    for key in missing[:20]:
        out.append((MISMATCH, f"missing on the remote: {key}"))
    if len(missing) > 20:
        out.append((MISMATCH, f"... and {len(missing) - 20} more files missing on the remote"))
    # Every remote file this pond can check: table files against the local copy, blobs
    # against their name.
    checks: list[tuple[str, str]] = []  # (key, wanted sha256)
    for key in sorted(objects):
        parts = key.split("/")
        if parts[0] == layout.BLOBS and len(parts) == 3:
            checks.append((key, parts[2]))
        elif parts[0] in TABLES and (root / key).is_file() and parts[-1] != LAST_CHECKPOINT:
            if f"/{LOG}/" in key and parts[-1].endswith(".json"):
                continue  # entries: compared above
            checks.append((key, _sha256_file(root / key)))
    got = list(pool.map(lambda c: _remote_sha(store, c[0]), checks))
    corrupt = [
        key for (key, want), sha in zip(checks, got, strict=True) if sha is not None and sha != want
    ]
    for key in corrupt[:20]:
        out.append((MISMATCH, f"corrupt on the remote (content hash differs): {key}"))
    if len(corrupt) > 20:
        out.append((MISMATCH, f"... and {len(corrupt) - 20} more corrupt files on the remote"))
    if not missing and not corrupt:
        nbytes = sum(objects[k] for k, _ in checks if k in objects)
        out.append(
            (OK, f"{len(checks)} remote files match their content hashes ({nbytes:,} bytes)")
        )
    return out
