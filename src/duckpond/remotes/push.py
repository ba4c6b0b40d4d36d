"""Push a pond to a remote (see layout.py for the layout).

Push never forks a remote's history: every log entry goes up with put-if-absent, after
every file it needs (Parquet files, the blobs its rows reference, a checkpoint it starts
from); a put that finds the entry already there compares bytes: the same bytes are an
entry pushed before (a push killed half-way resumes), other bytes are a diverged remote
and nothing more is written. A control entry goes up only once the data entries of the
transactions it records are (the two tables' entries go up on two threads), and
`_last_checkpoint` last. A reader of the remote therefore never sees a half-pushed
transaction.

When this pond's log was pruned past what the remote holds, the push starts from the
oldest checkpoint it still keeps: that checkpoint, every file it lists (and their blobs),
the archive of pruned entries' metadata and `_last_checkpoint` go up, so the remote's
oldest log version opens in any Delta reader; no checkpoint older than the remote's oldest
version is ever pushed.

An incremental push starts from the caller's watermark (`since`: the tip the previous push
returned), checked by fetching that one entry; without one it lists the remote's
`_delta_log/`. New blobs are found from the new entries' rows, never by listing the remote.

The caller holds the pond's write lock; push takes no lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotFoundError, RemoteError, RemoteNotFound
from ..storage.objstore import ObjectStore
from . import layout
from .layout import LAST_CHECKPOINT, LOG, TABLES, LogListing
from .logs import (
    BLOB_THRESHOLD,
    TXN_SEQ_LOOKBACK,
    blob_refs,
    checkpoint_adds,
    diverged,
    local_pond_id,
    local_reader,
    remote_identity,
    remote_log,
    txn_seq_at,
)
from .reports import RemoteTip, SyncReport
from .transfers import Progress, Transfers, read_local


def _claim(store: ObjectStore, pond_id: str, remote_data: LogListing, t: Transfers) -> None:
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
            if body != read_local(root / table / LOG / local.entries[hint]):
                raise diverged(store, table, hint)
            return hint, None
    if listed is None:
        listed = remote_log(store, table)
    tip = listed.tip
    if tip > local.tip:
        raise RemoteError(
            f"remote {store.url} has {table} versions this pond lacks "
            f"({tip} > {local.tip}); pushing would fork it"
        )
    if tip >= 0 and tip in local.entries:
        if store.get(layout.entry_key(table, tip)) != read_local(
            root / table / LOG / local.entries[tip]
        ):
            raise diverged(store, table, tip)
    elif tip >= 0 and table == "data" and not _archive_agrees(store, root, listed):
        raise diverged(store, table, tip)
    return tip, listed


def _archive_agrees(store: ObjectStore, root: Path, listed: LogListing) -> bool:
    """Whether the remote's newest transaction (its log entry's `pond_txn`) is the one
    this pond archived for that version, when this pond's log no longer holds the entry
    (pruned behind a checkpoint). Unknown (nothing to compare) counts as agreeing: the
    pond id matched."""
    from ..storage.tableread import archived_metadata

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
    store: ObjectStore, root: Path, tp: _TablePush, t: Transfers, blobs: _BlobPusher
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
        # The oldest one: the remote then holds every version this pond still keeps.
        c = min(bridge)
        tp.jump = c
        ck_paths = [table_dir / LOG / n for n in local.checkpoints[c]]
        live = checkpoint_adds(ck_paths)
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
        body = read_local(table_dir / LOG / name)
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
    t: Transfers,
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
            blobs.push(blob_refs([path]))
        return size

    return t.submit(job)


class _BlobPusher:
    """Uploads each blob once. A job that meets a blob another job is uploading waits for
    it: the entry that waits for this job must never land before the blob does."""

    def __init__(self, store: ObjectStore, root: Path, t: Transfers) -> None:
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
    t: Transfers,
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


def _push_entries(store: ObjectStore, tp: _TablePush, t: Transfers, gate: _Gate) -> int:
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
            raise diverged(store, tp.table, e.version)
        # (else: pushed before a kill, already there)
        t.moved(len(e.body), files=0)
        if tp.table == "data":
            gate.advance(e.txn_seq)
    return pushed


def _push_chains(
    store: ObjectStore, data: _TablePush, control: _TablePush, t: Transfers, gate: _Gate
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
    store: ObjectStore, root: Path, tp: _TablePush, tip: int, t: Transfers
) -> None:
    """Checkpoints of the pushed versions (after their entries), the archive of pruned
    entries' metadata, then `_last_checkpoint`."""
    table_dir = root / tp.table
    log = table_dir / LOG
    have = tp.listed.checkpoints if tp.listed is not None else {}
    # From the watermark itself: `pond maintain` checkpoints a version already pushed.
    lo = -1 if tp.listed is not None else tp.start - 1
    todo: list[Future[int]] = []
    # Never one below the remote's oldest version (or the jump): the remote lacks the
    # entries after it, and may lack the files it lists.
    if tp.jump is not None:
        lo = max(lo, tp.jump)
    elif tp.listed is not None and tp.listed.entries:
        lo = max(lo, tp.listed.start - 1)
    for v, names in sorted(tp.local.checkpoints.items()):
        if lo < v <= tip:
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
        body = read_local(last)
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
    with Transfers(progress) as t:
        data_listed = None
        if since is None or since.data_version < 0:
            # no watermark: check (or claim) the remote before anything else
            data_listed = remote_log(store, "data")
            _claim(store, local_pond_id(root), data_listed, t)
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
        start_seq = txn_seq_at(
            locals_["data"], data_plan.start, local_reader(root / "data"), "data"
        )
        entries = _push_chains(store, plans[0], plans[1], t, _Gate(start_seq))
        for tp in plans:
            _push_checkpoints(store, root, tp, tp.local.tip, t)
        tip_seq = txn_seq_at(
            locals_["data"], locals_["data"].tip, local_reader(root / "data"), "data"
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
