"""Typed results of the `Pond` library methods.

Each result is a frozen dataclass; `to_json()` gives exactly the JSON shape of SPEC §7 that
`pond ... --format json` prints (scripts and tests read those shapes). The steward's internals
build plain dicts; `from_dict` turns them into these types at the library boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .jsonvalues import JSON


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
    # empty, never None: a raw file has no schema, a derived node no stored versions
    schema: list[FieldInfo] = field(default_factory=list)
    time_column: str | None = None
    versions: list[VersionInfo] = field(default_factory=list)
    config: JSON = None  # a factory node: its config (parsed YAML)
    entries: list[str] | None = None  # a dynamic directory: its children's names
    # a stored series (duckpond.seriesview): its bounds {"min", "max"} (ISO, None = open)
    # when set, and the highest version folded into a later one by a collapse
    temporal_bounds: dict[str, str | None] | None = None
    collapsed_through: int | None = None

    @property
    def is_series(self) -> bool:
        return self.type.startswith("file:series")

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"path": self.path, "type": self.type}
        if self.size is not None:
            out["size"] = self.size
        if self.factory:
            out["factory"] = self.factory
        if self.schema:
            out["schema"] = [asdict(f) for f in self.schema]
            if self.is_series:
                out["time_column"] = self.time_column
        if self.config is not None:
            out["config"] = self.config
        if self.entries is not None:
            out["entries"] = list(self.entries)
        if self.temporal_bounds is not None:
            out["temporal_bounds"] = dict(self.temporal_bounds)
        if self.collapsed_through is not None:
            out["collapsed_through"] = self.collapsed_through
        if self.versions:
            out["versions"] = [asdict(v) for v in self.versions]
        return out


# The control table's reports live in `reports` (10 more frozen dataclasses, ~3 ms to
# create): `pond list` and `pond cat` need only the classes above. Importable from here.
_REPORTS = frozenset(
    {
        "TaskSummary",
        "TxnSummary",
        "TxnDetail",
        "IncompleteTask",
        "IncompleteReport",
        "RecoveredTxn",
        "RecoveredTask",
        "RecoverReport",
        "MaintainReport",
        "RebuildReport",
    }
)


def __getattr__(name: str) -> object:
    if name in _REPORTS:
        from . import reports

        return getattr(reports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
