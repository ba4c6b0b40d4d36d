"""fsck: the log entries and checkpoints of both tables."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import logcheck, parquetwrite
from ..storage.dataschema import APP_ID, PARTITION
from . import fsck_backup
from .control import BEGIN, DATA_COMMITTED
from .fsck_run import FsckRun, Problem


class LogChecks(FsckRun):
    """Both tables' logs and checkpoints: every entry parses, versions are contiguous, a
    damaged entry is replaced (keeping its transaction's files when they are on disk)."""

    def check_log(self, table: str) -> None:
        tdir = self.root / table
        scan = logcheck.scan_log(tdir)
        self.scans[table] = scan
        self.checked[f"{table}_log_entries"] = len(scan.entries)
        damaged = sorted(
            [(v, "torn_entry") for v, e in scan.entries.items() if e.problem]
            + [(v, "missing_entry") for v in scan.gaps]
        )
        for v, kind in damaged:
            entry = scan.entries.get(v)
            name = f"{table}/_delta_log/{logcheck.entry_name(v)}"
            pond_txn = self.pond_txn_of(table, v, entry)
            seqs = [int(pond_txn["txn_seq"])] if pond_txn else []
            what = f"is damaged: {entry.problem}" if entry else "is missing"
            if pond_txn:
                what += f" (txn_seq {pond_txn['txn_seq']}: {_command(pond_txn)})"
            p = self.add(Problem(kind, table, f"log entry {name} {what}", [name], [v], seqs))
            if self.repair:
                self.replace_entry(table, v, entry, pond_txn, p)

    def pond_txn_of(
        self, table: str, version: int, entry: logcheck.Entry | None
    ) -> dict[str, Any] | None:
        """The transaction a damaged data entry held: from what survives of it, else from
        the control table's `data_committed` row for that version."""
        if table != "data":
            return None
        info = entry.info if entry else None
        if info and info.get("pond_txn"):
            try:
                return dict(json.loads(info["pond_txn"]))
            except ValueError:
                pass
        if info and info.get("pond_maintenance"):
            return None
        rows = self._raw_control_rows()
        committed = [r for r in rows if r["record_type"] == DATA_COMMITTED]
        hit = next((r for r in committed if r["data_fs_version"] == version), None)
        if hit is None:
            return None
        begin = next(
            (r for r in rows if r["record_type"] == BEGIN and r["txn_id"] == hit["txn_id"]), {}
        )
        out: dict[str, Any] = {
            "txn_seq": int(hit["txn_seq"]),
            "txn_id": hit["txn_id"],
            "args": json.loads(begin.get("cli_args") or "[]"),
            "vars": json.loads(begin.get("vars") or "{}"),
            "begin_us": begin.get("timestamp"),
        }
        if begin.get("parent_txn_seq") is not None:
            out["parent_txn_seq"] = int(begin["parent_txn_seq"])
            out["execution_seq"] = begin.get("execution_seq")
        return out

    def _raw_control_rows(self) -> list[dict[str, Any]]:
        """Control rows straight from its Parquet files (the table may not open)."""
        cdir = self.root / "control"
        cols = [
            "txn_seq",
            "txn_id",
            "record_type",
            "data_fs_version",
            "timestamp",
            "cli_args",
            "vars",
            "parent_txn_seq",
            "execution_seq",
        ]
        out: list[dict[str, Any]] = []
        for path in sorted(cdir.glob("*.parquet")):
            try:
                t = pq.ParquetFile(path).read(columns=cols)
            except Exception:  # noqa: BLE001 - a damaged file is reported elsewhere
                continue
            t = t.set_column(4, "timestamp", t.column(4).cast(pa.int64()))
            out.extend(t.to_pylist())
        return out

    def replace_entry(
        self,
        table: str,
        version: int,
        entry: logcheck.Entry | None,
        pond_txn: dict[str, Any] | None,
        p: Problem,
    ) -> None:
        tdir = self.root / table
        path = tdir / "_delta_log" / logcheck.entry_name(version)
        rel = str(path.relative_to(self.root))
        check = fsck_backup.entry_check(version, pond_txn)
        if (src := self.backups.fetch(rel, check, self.set_aside)) is not None:
            p.repaired, p.action = True, f"restored from backup {src}"
            return
        aside = self.set_aside(path) if path.exists() else None
        now_ms = int(time.time() * 1000)
        info: dict[str, Any] = {
            "timestamp": now_ms,
            "operation": "FSCK REPAIR",
            "operationParameters": {"mode": "Append"},
            "clientVersion": logcheck.CLIENT,
        }
        actions: list[dict[str, Any]] = []
        restored: list[str] = []
        if pond_txn is not None:
            seq = int(pond_txn["txn_seq"])
            begin_us = pond_txn.pop("begin_us", None)
            info["pond_txn"] = json.dumps(pond_txn, sort_keys=True)
            actions.append({"txn": {"appId": APP_ID, "version": seq, "lastUpdated": now_ms}})
            for action in self.orphans_of(seq, begin_us):
                actions.append(action.to_json(now_ms))
                restored.append(f"data/{action.path}")
        did = f"set aside to {aside}" if aside else "was missing"
        if restored:
            info["pond_fsck"] = f"entry {version} rebuilt from its transaction's files"
            p.action = f"{did}; rebuilt from the transaction's files still on disk: " + ", ".join(
                restored
            )
        else:
            info["pond_fsck"] = f"entry {version} replaced: its actions were lost"
            p.action = f"{did}; replaced by an entry without its actions"
            if pond_txn is not None:
                self.lost.append(
                    f"txn_seq {pond_txn['txn_seq']} ({_command(pond_txn)}): the data it "
                    f"committed as data version {version}"
                )
            elif entry is not None and entry.info and entry.info.get("pond_maintenance"):
                p.action += " (a compaction: the files it replaced stay live, nothing lost)"
            else:
                self.lost.append(f"{table} version {version}: whatever it recorded")
        logcheck.write_entry(tdir, version, [{"commitInfo": info}, *actions])
        p.repaired = True

    def orphans_of(self, seq: int, begin_us: int | None) -> list[parquetwrite.FileAction]:
        """Parquet files on disk that no log entry adds, holding only rows of `seq`, newest
        per partition (a crashed earlier attempt under the same seq wrote older ones)."""
        ddir = self.root / "data"
        entries = self.scans["data"].entries.values()
        # Files some entry adds or removes are not this transaction's (a compaction may
        # have replaced them since: adding them again would duplicate rows).
        referenced = {a.get("path") for e in entries for a in e.adds}
        referenced |= {r for e in entries for r in e.removes}
        best: dict[str, tuple[int, Path]] = {}
        for path in ddir.glob(f"{PARTITION}=*/*.parquet"):
            rel = str(path.relative_to(ddir))
            if rel in referenced:
                continue
            try:
                born_ns = int(path.name.split("-")[1])
                seqs = pq.ParquetFile(path).read(columns=["txn_seq"]).column(0)
            except Exception:  # noqa: BLE001 - not a file this repair can use
                continue
            if begin_us is not None and born_ns < begin_us * 1000:
                continue
            if len(seqs) == 0 or pc.min(seqs).as_py() != seq or pc.max(seqs).as_py() != seq:
                continue
            part = path.parent.name.split("=", 1)[1]
            if part not in best or born_ns > best[part][0]:
                best[part] = (born_ns, path)
        out = []
        for part, (_, path) in sorted(best.items()):
            rel = str(path.relative_to(ddir))
            out.append(parquetwrite.action_for_file(ddir, rel, {PARTITION: part}))  # with stats
        return out

    def check_checkpoints(self, table: str) -> bool:
        """Report unreadable checkpoints; with repair fall back to an older one. Returns
        whether the table still cannot be opened."""
        tdir = self.root / table
        scan = self.scans[table]
        log = f"{table}/_delta_log"
        problems = []
        for v in scan.bad_checkpoints:
            name = f"{log}/{v:020d}.checkpoint.parquet"
            problems.append(
                self.add(
                    Problem(
                        "bad_checkpoint", table, f"checkpoint {name} is unreadable", [name], [v]
                    )
                )
            )
        lc_bad = scan.last_checkpoint_garbage or (
            scan.last_checkpoint is not None
            and scan.last_checkpoint not in scan.checkpoints
            and scan.last_checkpoint not in scan.bad_checkpoints  # reported just above
        )
        if lc_bad:
            name = f"{log}/_last_checkpoint"
            problems.append(
                self.add(
                    Problem(
                        "bad_checkpoint",
                        table,
                        f"{name} names no readable checkpoint",
                        [name],
                    )
                )
            )
        if not problems:
            return self._unopenable(table, problems)
        if not self.repair:
            return True
        tip = scan.tip
        fallback = next(
            (
                c
                for c in reversed(scan.checkpoints)
                if all(v in scan.entries for v in range(c + 1, tip + 1))
            ),
            None,
        )
        if fallback is None and not all(v in scan.entries for v in range(0, tip + 1)):
            for p in problems:
                p.action = "no older checkpoint with a complete log after it: restore a backup"
            return True
        for v in scan.bad_checkpoints:
            self.set_aside(tdir / "_delta_log" / f"{v:020d}.checkpoint.parquet")
        logcheck.write_last_checkpoint(tdir, fallback)
        for p in problems:
            p.repaired = True
            p.action = (
                f"set aside; readers fall back to checkpoint {fallback}"
                if fallback is not None
                else "set aside; readers replay the whole log"
            )
        return False

    def _unopenable(self, table: str, problems: list[Problem]) -> bool:
        try:
            logcheck.open_table(self.root / table)
        except Exception as e:  # noqa: BLE001 - reported as one problem
            if not any(not p.repaired for p in self.problems if p.table == table):
                self.add(Problem("unreadable_table", table, f"the {table} table: {e}"))
            return True
        return False


def _command(pond_txn: dict[str, Any]) -> str:
    args = pond_txn.get("args") or []
    return " ".join(str(a) for a in args) if args else "unknown command"
