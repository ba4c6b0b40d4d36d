"""The commit protocol: the pond appends its own `_delta_log` entries (synced, linked into
place put-if-absent) rather than through delta-rs, which neither fsyncs nor advances its
handle, and replays the log on every commit. Also the protocol checks: which tables'
protocol, metadata and schema the pond may write."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from ..errors import PondError
from .durability import fsync_dir

if TYPE_CHECKING:
    # Handles come from the callers: plain reads never import deltalake (storage/deltalog).
    from deltalake import DeltaTable

    from .parquetwrite import FileAction


class LogView(Protocol):
    """What a commit needs of a table handle's view of the log: the version it has read,
    a way to read the commits made since, and whether the pond may write the table. The
    pond's own reader (deltalog.SnapshotThenDelta) serves it without delta-rs."""

    def log_version(self) -> int: ...

    def catch_up(self) -> None: ...

    def write_problem(self) -> str | None: ...


class DeltaView:
    """A bare delta-rs handle as a LogView (repairs that hold one already)."""

    def __init__(self, dt: DeltaTable) -> None:
        self.dt = dt

    def log_version(self) -> int:
        return self.dt.version()

    def catch_up(self) -> None:
        self.dt.update_incremental()

    def write_problem(self) -> str | None:
        return protocol_problem(self.dt)


class TableLog:
    """One table handle's view of its log between reads of it: the last version it
    committed (the next commit then needs no listing) and the version whose protocol and
    metadata it found writable (checked once, again only when the table has moved)."""

    def __init__(self, table_dir: Path) -> None:
        self.table_dir = table_dir
        self.known = -1  # last version this handle committed (-1: none yet)
        self.checked = -1  # log version whose protocol the pond may write (-1: unchecked)

    def check_writable(self, view: LogView) -> None:
        """Refuse a table whose protocol or metadata needs what the pond does not write."""
        version = view.log_version()
        if self.checked == version and self.checked >= 0:
            return
        problem = view.write_problem()
        if problem is not None:
            raise PondError(
                f"the {self.table_dir.name} table {problem}, which the pond does not write; "
                "nothing was written"
            )
        self.checked = version


# What the pond's own writes are compatible with. Writer features the pond "supports" by
# refusing to write whenever the table actually uses them (a CHECK constraint, an
# invariant): a table that only lists them is still written.
READER_FEATURES_OK: frozenset[str] = frozenset()
WRITER_FEATURES_OK = frozenset({"appendOnly", "invariants", "checkConstraints"})
FIELD_METADATA_REFUSED = {
    "delta.invariants": "a column invariant",
    "delta.generationExpression": "a generated column",
    "delta.identity.start": "an identity column",
    "delta.columnMapping.id": "column mapping",
}


def protocol_problem(dt: DeltaTable) -> str | None:
    """Why the pond may not write this table (one phrase), or None (a delta-rs handle)."""
    proto = dt.protocol()
    protocol = {
        "minReaderVersion": proto.min_reader_version,
        "minWriterVersion": proto.min_writer_version,
        "readerFeatures": proto.reader_features,
        "writerFeatures": proto.writer_features,
    }
    fields = json.loads(dt.schema().to_json()).get("fields", [])
    return write_problem(protocol, dt.metadata().configuration or {}, fields)


def write_problem(
    protocol: dict[str, Any], configuration: dict[str, str], fields: list[dict[str, Any]]
) -> str | None:
    """Why the pond may not write a table with this protocol action, metadata
    configuration and schema fields (as the Delta log spells them), or None."""
    reader = int(protocol.get("minReaderVersion") or 0)
    writer = int(protocol.get("minWriterVersion") or 0)
    rfeat = set(protocol.get("readerFeatures") or ())
    wfeat = set(protocol.get("writerFeatures") or ())
    if reader not in (1, 3) or (reader == 3 and rfeat - READER_FEATURES_OK):
        extra = f" ({', '.join(sorted(rfeat - READER_FEATURES_OK))})" if rfeat else ""
        return f"needs Delta reader version {reader}{extra}"
    if writer == 7:
        if wfeat - WRITER_FEATURES_OK:
            return f"needs Delta writer features {', '.join(sorted(wfeat - WRITER_FEATURES_OK))}"
    elif writer > 3:
        return f"needs Delta writer version {writer}"
    for key, value in sorted(configuration.items()):
        if key.startswith("delta.constraints."):
            return f"has CHECK constraint {key.removeprefix('delta.constraints.')} ({value})"
    if str(configuration.get("delta.appendOnly", "false")).lower() == "true":
        return "is append-only (delta.appendOnly)"
    if str(configuration.get("delta.enableChangeDataFeed", "false")).lower() == "true":
        return "records a change data feed (delta.enableChangeDataFeed)"
    for f in fields:
        for key, what in FIELD_METADATA_REFUSED.items():
            if key in (f.get("metadata") or {}):
                return f"has {what} on column {f.get('name')}"
    return None


class CommitConflict(PondError):
    """Another writer committed first and made this commit's actions invalid."""


def commit(
    view: LogView,
    table_dir: Path,
    actions: list[FileAction],
    *,
    operation: str = "WRITE",
    metadata: dict[str, str] | None = None,
    app_txn: tuple[str, int] | None = None,
    durable: bool = True,
    log: TableLog | None = None,
) -> int:
    """Append one Delta commit; returns its version. `durable=False` skips only the last
    sync (the log directory): after a power loss such a commit may be missing, but the
    table is never torn, since its files and entry were synced before being linked.

    The pond writes the log entry itself rather than through delta-rs: delta-rs neither
    fsyncs nor advances its handle, and replays the log on every commit. The entry is
    written to a temp file, synced, then linked into place (put-if-absent, atomic), and the
    log directory synced. `view` is the table handle's view of the log and `log` its
    commit state (a fresh one re-checks the protocol). First the protocol is checked (see
    TableLog.check_writable). A version
    taken by another writer (a foreign process, or another handle behind this one) is read:
    the commit moves on to the next version only if its actions are still valid.
    """
    log = log if log is not None else TableLog(table_dir)
    log.check_writable(view)
    log_dir = table_dir / "_delta_log"
    now_ms = int(time.time() * 1000)
    info: dict[str, Any] = {
        "timestamp": now_ms,
        "operation": operation,
        "operationParameters": {"mode": "Append"},
        "clientVersion": "duckpond",
        **(metadata or {}),
    }
    lines = [{"commitInfo": info}]
    if app_txn is not None:
        lines.append({"txn": {"appId": app_txn[0], "version": app_txn[1], "lastUpdated": now_ms}})
    lines.extend(a.to_json(now_ms) for a in actions)
    hashes = {a.path: a.sha256 for a in actions if a.sha256 and not a.remove}
    if hashes:  # what a restore checks each downloaded file against
        info["pond_sha256"] = hashes
    info["pond_lines"] = len(lines)  # an entry cut at a line boundary is then seen (fsck)
    body = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines).encode()
    tmp = log_dir / f".tmp-{os.getpid()}-{os.urandom(6).hex()}.json"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fdatasync(f.fileno())
    try:
        version = _next_version(view, log)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                os.link(tmp, log_dir / f"{version:020d}.json")
            except FileExistsError:
                _check_winner(view, log, version, actions, app_txn)
                version += 1
                continue
            if durable:
                fsync_dir(log_dir)
            log.known = version
            return version
        raise CommitConflict(
            f"another process keeps writing {table_dir} without the pond's lock; nothing "
            "was written"
        )
    finally:
        tmp.unlink(missing_ok=True)


# A commit that finds its version taken reads the winner's entry and tries the next one;
# after this many taken versions it gives up (someone is writing without the lock).
MAX_COMMIT_ATTEMPTS = 20


def _check_winner(
    view: LogView,
    log: TableLog,
    version: int,
    actions: list[FileAction],
    app_txn: tuple[str, int] | None,
) -> None:
    """Whether this commit's actions still hold after the entry another writer put at
    `version`: raises CommitConflict if not. A file this commit removes must not have been
    removed by the winner (a compaction would re-add rows, or a delete remove twice); an
    application transaction must not have been taken to the same or a later number; a new
    protocol or metadata is checked as at the start."""
    name = log.table_dir.name
    path = log.table_dir / "_delta_log" / f"{version:020d}.json"
    try:
        winner = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise CommitConflict(
            f"the {name} table's version {version} was written by another process and "
            f"cannot be read ({e}); nothing was written"
        ) from None
    removed = {unquote(a["remove"]["path"]) for a in winner if "remove" in a}
    ours = {unquote(a.path) for a in actions if a.remove}
    clash = sorted(ours & removed)
    if clash:
        raise CommitConflict(
            f"another writer removed {clash[0]} from the {name} table (version {version}) "
            "while this commit replaced it; nothing was written"
        )
    if app_txn is not None:
        for a in winner:
            txn = a.get("txn")
            if txn and txn.get("appId") == app_txn[0] and int(txn["version"]) >= app_txn[1]:
                raise CommitConflict(
                    f"another writer committed {name} transaction {txn['version']} "
                    f"(version {version}) while this one committed {app_txn[1]}; nothing "
                    "was written"
                )
    if any("protocol" in a or "metaData" in a for a in winner):
        view.catch_up()
        log.checked = -1
        log.check_writable(view)


def _next_version(view: LogView, log: TableLog) -> int:
    version = max(log.known, view.log_version()) + 1
    # A gap in the log would corrupt the table: the previous entry must exist.
    if version > 0 and not (log.table_dir / "_delta_log" / f"{version - 1:020d}.json").exists():
        log.known = -1
        view.catch_up()
        version = view.log_version() + 1
    return version
