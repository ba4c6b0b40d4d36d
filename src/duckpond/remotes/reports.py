"""Typed results of push, pull, restore and verify (frozen dataclasses with `to_json()`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

OK = "OK"
MISMATCH = "MISMATCH"


class RemoteTip(NamedTuple):
    """Where a copy of a pond stands: the last data and control table versions, and the
    last committed txn_seq (0: none). -1 versions: the table is absent."""

    data_version: int
    control_version: int
    txn_seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "data_version": self.data_version,
            "control_version": self.control_version,
            "txn_seq": self.txn_seq,
        }


@dataclass(frozen=True)
class SyncReport:
    """What one push, pull or restore moved. `tip` is where the remote (push) or the local
    pond (pull, restore) stands afterwards; `start` where it stood before."""

    url: str
    direction: str  # push | pull | restore
    start: RemoteTip
    tip: RemoteTip
    entries: int  # Delta log entries moved
    files: int  # other files moved (Parquet files, checkpoints, blobs, the pond marker)
    bytes: int

    @property
    def up_to_date(self) -> bool:
        return self.entries == 0 and self.files == 0

    def message(self) -> str:
        if self.up_to_date:
            return f"{self.url}: already up to date (txn_seq {self.tip.txn_seq})"
        verb = {"push": "pushed", "pull": "pulled", "restore": "restored"}[self.direction]
        seqs = (
            f"txn_seq {self.start.txn_seq + 1}..{self.tip.txn_seq}"
            if self.tip.txn_seq > self.start.txn_seq
            else f"txn_seq {self.tip.txn_seq}"
        )
        return (
            f"{self.url}: {verb} {seqs} "
            f"({self.entries} log entries, {self.files} files, {self.bytes:,} bytes)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "direction": self.direction,
            "up_to_date": self.up_to_date,
            "start": self.start.to_json(),
            "tip": self.tip.to_json(),
            "entries": self.entries,
            "files": self.files,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class VerifyReport:
    """`verify`: one (OK|MISMATCH, message) line per finding; `ok` when no MISMATCH."""

    url: str
    lines: list[tuple[str, str]]
    local: RemoteTip
    remote: RemoteTip

    @property
    def ok(self) -> bool:
        return all(status == OK for status, _ in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "local": self.local.to_json(),
            "remote": self.remote.to_json(),
            "lines": [{"status": s, "message": m} for s, m in self.lines],
        }
