"""Typed results of the `Pond` library's control-table methods (log, status, recover,
maintain, rebuild); the same conventions as `results`, which re-exports them (loaded on
first use)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .jsonvalues import JSON, as_int, opt_int, opt_str


@dataclass(frozen=True)
class FailedAttempt:
    """One failed run of a post-commit task, kept even when a later attempt succeeded."""

    attempt: int
    duration_ms: int | None
    error_message: str | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailedAttempt:
        return cls(
            attempt=as_int(d.get("attempt") or 1),
            duration_ms=opt_int(d.get("duration_ms")),
            error_message=opt_str(d.get("error_message")),
        )


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
    # every failed attempt, oldest first: a retry that fixed a task does not hide them
    failed_attempts: list[FailedAttempt] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSummary:
        return cls(
            execution_seq=as_int(d["execution_seq"]),
            factory_name=opt_str(d.get("factory_name")),
            config_path=opt_str(d.get("config_path")),
            status=str(d["status"]),
            attempt=as_int(d.get("attempt") or 1),
            duration_ms=opt_int(d.get("duration_ms")),
            error_message=opt_str(d.get("error_message")),
            txn_seq=opt_int(d.get("txn_seq")),
            failed_attempts=[FailedAttempt.from_dict(a) for a in d.get("failed_attempts", [])],
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
            txn_seq=as_int(d["txn_seq"]),
            txn_id=str(d["txn_id"]),
            transaction_type=str(d["transaction_type"]),
            status=str(d["status"]),
            command=str(d["command"]),
            started=opt_str(d.get("started")),
            ended=opt_str(d.get("ended")),
            duration_ms=opt_int(d.get("duration_ms")),
            error_message=opt_str(d.get("error_message")),
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
    error: str | None = None  # a failed attempt's error, as the control table records it


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
                RecoveredTxn(as_int(t["txn_seq"]), str(t["txn_id"]), str(t["action"]))
                for t in d.get("transactions", [])
            ],
            tasks=[
                RecoveredTask(
                    parent_txn_seq=as_int(t["parent_txn_seq"]),
                    execution_seq=as_int(t["execution_seq"]),
                    factory_name=opt_str(t.get("factory_name")),
                    config_path=opt_str(t.get("config_path")),
                    attempt=as_int(t["attempt"]),
                    outcome=str(t["outcome"]),
                    error=opt_str(t.get("error")),
                )
                for t in d.get("tasks", [])
            ],
        )

    def to_json(self) -> dict[str, JSON]:
        return {
            "transactions": [asdict(t) for t in self.transactions],
            "tasks": [
                {k: v for k, v in asdict(t).items() if k != "error" or v is not None}
                for t in self.tasks
            ],
        }

    @property
    def failed(self) -> list[RecoveredTask]:
        """The tasks whose attempt in this recovery failed."""
        return [t for t in self.tasks if t.outcome == "failed"]


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
