"""Typed results of the `Pond` library methods.

Each result is a frozen dataclass; `to_json()` gives exactly the JSON shape of SPEC §7 that
`pond ... --format json` prints (scripts and tests read those shapes). The steward's internals
build plain dicts; `from_dict` turns them into these types at the library boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# A JSON value as the pond prints it.
JSON = Any


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    raise TypeError(f"expected an integer, got {value!r}")


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class EntryInfo:
    """One entry of `Pond.list` (`pond list --format json`)."""

    path: str
    type: str
    version: int
    size: int

    def to_json(self) -> dict[str, JSON]:
        # not asdict(): its deep copy costs more than the listing itself for big ones
        return {"path": self.path, "type": self.type, "version": self.version, "size": self.size}


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str


@dataclass(frozen=True)
class VersionInfo:
    """One version of a node; event times only for series."""

    version: int
    txn_seq: int
    timestamp: str | None
    size: int
    min_event_time: str | None = None
    max_event_time: str | None = None


@dataclass(frozen=True)
class Description:
    """`Pond.describe`: a pond node (type, size, versions) or a host file (schema only)."""

    path: str
    type: str
    size: int | None = None
    factory: str | None = None
    schema: list[FieldInfo] | None = None
    time_column: str | None = None
    versions: list[VersionInfo] | None = None
    config: JSON = None  # a factory node: its config (parsed YAML)
    entries: list[str] | None = None  # a dynamic directory: its children's names

    @property
    def is_series(self) -> bool:
        return self.type.startswith("file:series")

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"path": self.path, "type": self.type}
        if self.size is not None:
            out["size"] = self.size
        if self.factory:
            out["factory"] = self.factory
        if self.schema is not None:
            out["schema"] = [asdict(f) for f in self.schema]
            if self.is_series:
                out["time_column"] = self.time_column
        if self.config is not None:
            out["config"] = self.config
        if self.entries is not None:
            out["entries"] = list(self.entries)
        if self.versions is not None:
            out["versions"] = [asdict(v) for v in self.versions]
        return out


@dataclass(frozen=True)
class TaskSummary:
    """A post-commit task as `control recent` shows it; `txn_seq` is the task's own
    transaction when it wrote data."""

    execution_seq: int
    factory_name: str | None
    config_path: str | None
    status: str  # pending | started | completed | failed
    attempt: int
    duration_ms: int | None
    error_message: str | None
    txn_seq: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSummary:
        return cls(
            execution_seq=_int(d["execution_seq"]),
            factory_name=_opt_str(d.get("factory_name")),
            config_path=_opt_str(d.get("config_path")),
            status=str(d["status"]),
            attempt=_int(d.get("attempt") or 1),
            duration_ms=_opt_int(d.get("duration_ms")),
            error_message=_opt_str(d.get("error_message")),
            txn_seq=_opt_int(d.get("txn_seq")),
        )

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)


@dataclass(frozen=True)
class TxnSummary:
    """One user write transaction with its post-commit tasks (`control recent`)."""

    txn_seq: int
    txn_id: str
    transaction_type: str
    status: str  # committed | completed | failed | incomplete
    command: str
    started: str | None
    ended: str | None
    duration_ms: int | None
    error_message: str | None
    post_commit: list[TaskSummary] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TxnSummary:
        return cls(
            txn_seq=_int(d["txn_seq"]),
            txn_id=str(d["txn_id"]),
            transaction_type=str(d["transaction_type"]),
            status=str(d["status"]),
            command=str(d["command"]),
            started=_opt_str(d.get("started")),
            ended=_opt_str(d.get("ended")),
            duration_ms=_opt_int(d.get("duration_ms")),
            error_message=_opt_str(d.get("error_message")),
            post_commit=[TaskSummary.from_dict(t) for t in d.get("post_commit", [])],
        )

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)


@dataclass(frozen=True)
class TxnDetail:
    """`control detail`: the transaction's summary (when its `begin` is recorded), every
    summary under that seq, and every control row of it and its tasks in recorded order."""

    txn_seq: int
    summary: TxnSummary | None
    transactions: list[TxnSummary]
    records: list[dict[str, JSON]]

    def to_json(self) -> dict[str, JSON]:
        head: dict[str, JSON] = (
            self.summary.to_json() if self.summary else {"txn_seq": self.txn_seq}
        )
        return {
            **head,
            "transactions": [t.to_json() for t in self.transactions],
            "records": self.records,
        }


@dataclass(frozen=True)
class IncompleteTask:
    parent_txn_seq: int
    execution_seq: int
    factory_name: str | None
    config_path: str | None
    state: str  # pending | started
    attempt: int


@dataclass(frozen=True)
class IncompleteReport:
    """`control incomplete`: what a crash left unfinished."""

    transactions: list[TxnSummary]
    tasks: list[IncompleteTask]

    def __bool__(self) -> bool:
        return bool(self.transactions or self.tasks)

    def to_json(self) -> dict[str, JSON]:
        return {
            "transactions": [t.to_json() for t in self.transactions],
            "tasks": [asdict(t) for t in self.tasks],
        }


@dataclass(frozen=True)
class RecoveredTxn:
    txn_seq: int
    txn_id: str
    action: str


@dataclass(frozen=True)
class RecoveredTask:
    parent_txn_seq: int
    execution_seq: int
    factory_name: str | None
    config_path: str | None
    attempt: int
    outcome: str  # completed | failed | completed (its data had committed) ...


@dataclass(frozen=True)
class RecoverReport:
    """`Pond.recover`: every action taken; empty when there was nothing to do."""

    transactions: list[RecoveredTxn] = field(default_factory=list)
    tasks: list[RecoveredTask] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transactions or self.tasks)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecoverReport:
        return cls(
            transactions=[
                RecoveredTxn(_int(t["txn_seq"]), str(t["txn_id"]), str(t["action"]))
                for t in d.get("transactions", [])
            ],
            tasks=[
                RecoveredTask(
                    parent_txn_seq=_int(t["parent_txn_seq"]),
                    execution_seq=_int(t["execution_seq"]),
                    factory_name=_opt_str(t.get("factory_name")),
                    config_path=_opt_str(t.get("config_path")),
                    attempt=_int(t["attempt"]),
                    outcome=str(t["outcome"]),
                )
                for t in d.get("tasks", [])
            ],
        )

    def to_json(self) -> dict[str, JSON]:
        return {
            "transactions": [asdict(t) for t in self.transactions],
            "tasks": [asdict(t) for t in self.tasks],
        }


Scalar = int | float | str | bool | None


@dataclass(frozen=True)
class MaintainReport:
    """`Pond.maintain`: per table (`data`, `control`, and any other part maintenance
    reports) the counts it reported, e.g. `files_before`, `files_after`, `files_vacuumed`,
    `version`; `other` keeps any top-level figure that is not a per-part mapping."""

    tables: dict[str, dict[str, Scalar]]
    other: dict[str, JSON] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Scalar]:
        return self.tables.get("data", {})

    @property
    def control(self) -> dict[str, Scalar]:
        return self.tables.get("control", {})

    @property
    def blobs(self) -> dict[str, Scalar]:
        """`removed` (unreferenced blobs) and `temp_files_removed` by this run."""
        return self.tables.get("blobs", {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaintainReport:
        tables: dict[str, dict[str, Scalar]] = {}
        other: dict[str, JSON] = {}
        for k, v in d.items():
            if isinstance(v, dict) and all(
                isinstance(x, int | float | str | bool | None) for x in v.values()
            ):
                tables[str(k)] = {str(n): x for n, x in v.items()}
            else:
                other[str(k)] = v
        return cls(tables, other)

    def to_json(self) -> dict[str, JSON]:
        return {**{k: dict(v) for k, v in self.tables.items()}, **self.other}


@dataclass(frozen=True)
class RebuildReport:
    """`Pond.rebuild_control`: how many committed transactions were recorded again, and
    what could not be (one message per line)."""

    transactions: int
    messages: list[str]

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)
