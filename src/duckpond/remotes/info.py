"""Typed results of the remote commands (`--format json` prints their `to_json()`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reports import SyncReport, VerifyReport


@dataclass(frozen=True)
class RemoteInfo:
    """One line of `pond remote list` / `pond backup list` / `pond status`'s remotes."""

    name: str
    url: str
    mode: str
    mount: str | None
    pushed_txn_seq: int | None
    pulled_txn_seq: int | None
    last_error: str | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "mode": self.mode,
            "mount": self.mount,
            "pushed_txn_seq": self.pushed_txn_seq,
            "pulled_txn_seq": self.pulled_txn_seq,
            "last_error": self.last_error,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class PondStatus:
    """`pond status`: read from local files only (never waits on a remote)."""

    pond_id: str | None
    last_txn_seq: int
    incomplete: int  # unfinished transactions + tasks (`pond recover` finishes them)
    remotes: list[RemoteInfo] = field(default_factory=list)
    mirror_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pond_id": self.pond_id,
            "last_txn_seq": self.last_txn_seq,
            "incomplete": self.incomplete,
            "remotes": [r.to_json() for r in self.remotes],
        }


@dataclass(frozen=True)
class Transfer:
    """What one push or pull moved for one remote (`report`: remotes.reports.SyncReport)."""

    name: str
    url: str
    report: SyncReport

    @property
    def moved(self) -> bool:
        return not self.report.up_to_date

    def message(self) -> str:
        return f"{self.name}: {self.report.message()}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, **self.report.to_json()}


@dataclass(frozen=True)
class Verification:
    name: str
    url: str
    report: VerifyReport

    @property
    def ok(self) -> bool:
        return bool(self.report.ok)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, **self.report.to_json()}
