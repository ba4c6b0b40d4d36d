"""`pond fsck`: find damage in a pond and, with `repair`, do what is safe about it.

Checks: every log entry of both tables parses and the versions are contiguous; every
checkpoint is readable; every live Parquet file exists with its recorded size; every blob
exists and matches its sha256 and size (inline contents match their hash too); the data
table's `pond_txn` history agrees with the control table; no txn_seq was committed twice;
every reachable directory can be rebuilt from its rows and no node version is stored twice
(steward/fsck_dirs.py).

Repairs, safest first (each says what it did, and anything discarded is listed in `lost`):
1. a garbage checkpoint is set aside and readers fall back to an older one (or the full log);
2. a damaged log entry is set aside and replaced by one that keeps the versions contiguous
   and the txn_seq taken: when the transaction's Parquet files are still on disk (they are
   written and synced before the entry) they are linked again and nothing is lost;
3. a missing or damaged file (a Parquet file, a blob, a log entry) is fetched from a
   backup of this pond and checked against the log before it is put in place
   (steward/fsck_backup.py);
4. last resort: missing or damaged files are removed from the live table, versions whose
   blob is missing or corrupt are dropped, and directory entries left without rows are
   unlinked in one recorded write transaction, so everything else is readable again; in
   the same transaction a directory that cannot be rebuilt gets a snapshot of what is left.
A node version stored twice is reported, never repaired.
Damaged files are never deleted: they are moved to `$POND/lost+found/<time>/`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import nodes
from ..errors import NotFoundError
from ..lock import WriteLock
from ..storage import deltacommit, logcheck, parquetwrite, tableread
from ..storage.blobs import CHUNK, BlobStore
from ..storage.dataschema import APP_ID, FILE_SCHEMA, PARTITION
from ..storage.datatable import DataTable
from . import fsck_backup, fsck_dirs, fsck_tree
from .control import BEGIN, COMPLETED, DATA_COMMITTED, FAILED, ControlTable
from .rebuild import _records_for

LOST_FOUND = "lost+found"
TABLES = ("data", "control")


@dataclass
class Problem:
    """One piece of damage. `paths`: files (relative to the pond) and pond paths affected;
    `versions`: Delta versions of the table; `txn_seqs`: transactions affected."""

    kind: str
    table: str
    message: str
    paths: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    txn_seqs: list[int] = field(default_factory=list)
    repaired: bool = False
    action: str | None = None


@dataclass
class FsckResult:
    problems: list[Problem]
    checked: dict[str, int]
    lost: list[str]  # what the repair discarded, one line each
    repaired: bool  # whether a repair was asked for
    lost_found: str | None  # where damaged files were moved
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(p.repaired for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repaired": self.repaired,
            "checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
            "lost": self.lost,
            "lost_found": self.lost_found,
            "notes": self.notes,
        }


def fsck(root: Path, repair: bool = False, wait: float = 0.0) -> FsckResult:
    root = Path(root).absolute()
    if not (root / "data" / "_delta_log").is_dir():
        raise NotFoundError(f"no pond at {root}")
    run = _Fsck(root, repair)
    with WriteLock(root / "write.lock", wait):
        run.check()
    if repair and (run.dangling or run.broken):
        run.repair_tree()
    return run.result()


class _Fsck:
    def __init__(self, root: Path, repair: bool) -> None:
        self.root = root
        self.repair = repair
        self.problems: list[Problem] = []
        self.lost: list[str] = []
        self.notes: list[str] = []
        # Every key is present even when a table could not be opened (JSON shape is stable).
        self.checked: dict[str, int] = dict.fromkeys(
            [f"{t}_log_entries" for t in TABLES]
            + [f"{t}_files" for t in TABLES]
            + ["blobs", "transactions"],
            0,
        )
        self.stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.moved_any = False
        self.blobs = BlobStore(root / "blobs")
        self.dangling: list[tuple[str, str, str]] = []  # (dir id, name, path)
        self.broken: list[fsck_dirs.BrokenDir] = []
        self.backups = fsck_backup.Backups(root)
        self.scans: dict[str, logcheck.LogScan] = {}
        self.control_rows: pa.Table | None = None
        self.node_paths: dict[str, str] = {}

    @property
    def lost_found(self) -> Path:
        return self.root / LOST_FOUND / self.stamp

    def add(self, p: Problem) -> Problem:
        self.problems.append(p)
        return p

    def set_aside(self, path: Path) -> str:
        self.moved_any = True
        dest = logcheck.set_aside(path, self.lost_found, self.root)
        return str(dest.relative_to(self.root))

    def result(self) -> FsckResult:
        self.notes.extend(self.backups.notes)
        if self.problems and not self.repair:
            self.notes.append("run `pond fsck --repair` to repair what is safe")
        return FsckResult(
            self.problems,
            self.checked,
            self.lost,
            self.repair,
            str(self.lost_found.relative_to(self.root)) if self.moved_any else None,
            self.notes,
        )

    # -- the whole check ---------------------------------------------------------------------
    def check(self) -> None:
        control_dir = self.root / "control"
        has_control = (control_dir / "_delta_log").is_dir()
        for table in TABLES if has_control else ("data",):
            self.check_log(table)
        if not has_control:
            self.add(Problem("missing_table", "control", "the control table is missing"))
            self.notes.append("`pond rebuild-control` rebuilds it from the data table")
        data_damaged = self.check_checkpoints("data")
        control_damaged = self.check_checkpoints("control") if has_control else True
        if data_damaged:
            return  # the data table cannot be opened: nothing more can be checked
        data = DataTable(self.root / "data", logcheck.open_table(self.root / "data"))
        control = None
        if not control_damaged:
            control = ControlTable(control_dir, logcheck.open_table(control_dir))
            self.control_rows = self.read_control(control)
        rows = self.check_data_files(data)
        self.check_blobs(data, rows)
        self.check_agreement(data, control)
        self.check_dirs(rows)
        self.find_dangling(rows)

    # -- logs ------------------------------------------------------------------------------
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

    # -- files -------------------------------------------------------------------------------
    def read_control(self, control: ControlTable) -> pa.Table | None:
        bad = self.check_files("control", control.dt, control.path)
        if bad and self.repair:
            control.dt.update_incremental()
        try:
            return control.read_all()
        except Exception as e:  # noqa: BLE001 - reported, the rest is still checked
            self.notes.append(f"control rows not compared: {e}")
            return None

    def check_files(self, table: str, dtable: Any, tdir: Path) -> set[str]:
        """Live files missing, of the wrong size or unreadable; removed from the live table
        with repair. Returns their paths."""
        actions = tableread.add_actions(dtable)
        paths = actions.column("path").to_pylist()
        sizes = actions.column("size_bytes").to_pylist()
        parts = (
            actions.column(f"partition.{PARTITION}").to_pylist()
            if table == "data"
            else [None] * len(paths)
        )
        self.checked[f"{table}_files"] = len(paths)
        bad: dict[str, tuple[str | None, int, Problem]] = {}
        added_by = self._added_by(table)
        for rel, size, part in zip(paths, sizes, parts, strict=True):
            full = tdir / rel
            name = f"{table}/{rel}"
            if not full.exists():
                kind, why = "missing_file", "is missing"
            elif full.stat().st_size != size:
                kind, why = "damaged_file", f"has {full.stat().st_size} bytes, not {size}"
            else:
                try:
                    pq.ParquetFile(full).metadata  # noqa: B018 - reads the footer
                    continue
                except Exception as e:  # noqa: BLE001 - an unreadable file is damage
                    kind, why = "damaged_file", f"is unreadable ({e})"
            seqs = added_by.get(rel, [])
            p = self.add(Problem(kind, table, f"{name} {why}", [name], [], seqs))
            bad[rel] = (part, size, p)
        if bad and self.repair:
            self._remove_files(table, dtable, tdir, bad)
        return set(bad)

    def _added_by(self, table: str) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for e in self.scans[table].entries.values():
            raw = (e.info or {}).get("pond_txn")
            seq = json.loads(raw)["txn_seq"] if raw else None
            for a in e.adds:
                if seq is not None:
                    out[str(a.get("path"))].append(int(seq))
        return out

    def _remove_files(
        self,
        table: str,
        dtable: Any,
        tdir: Path,
        bad: dict[str, tuple[str | None, int, Problem]],
    ) -> None:
        removes = []
        for rel, (part, size, p) in bad.items():
            check = fsck_backup.parquet_check(size)
            if (src := self.backups.fetch(f"{table}/{rel}", check, self.set_aside)) is not None:
                p.repaired, p.action = True, f"restored from backup {src}"
                continue
            full = tdir / rel
            aside = self.set_aside(full) if full.exists() else None
            pv = {PARTITION: part} if part is not None else {}
            removes.append(parquetwrite.FileAction(rel, size, pv, 0, 0, remove=True))
            p.repaired = True
            p.action = "removed from the live table" + (f"; set aside to {aside}" if aside else "")
            seqs = f" (written by txn_seq {', '.join(map(str, p.txn_seqs))})" if p.txn_seqs else ""
            what = "the node versions it held" if table == "data" else "the control rows it held"
            self.lost.append(f"{table}/{rel}{seqs}: {what}")
        if removes:
            deltacommit.commit(
                deltacommit.DeltaView(dtable),
                tdir,
                removes,
                operation="DELETE",
                metadata={"pond_fsck": "removed missing or damaged files"},
            )
            dtable.update_incremental()

    def check_data_files(self, data: DataTable) -> list[tuple[str, nodes.NodeRow]]:
        """Every row of every readable live data file, with the file holding it."""
        bad = self.check_files("data", data.dt, data.path)
        if bad and self.repair:
            bad = set()
        actions = tableread.add_actions(data.dt)
        rows: list[tuple[str, nodes.NodeRow]] = []
        for rel, part in zip(
            actions.column("path").to_pylist(),
            actions.column(f"partition.{PARTITION}").to_pylist(),
            strict=True,
        ):
            if rel in bad:
                continue
            t = tableread.read_parquet(data.path / rel).cast(FILE_SCHEMA)
            rows.extend((rel, r) for r in _rows_of(part, t))
        self.node_paths = fsck_tree.node_paths([r for _, r in rows], self.blobs)
        for p in self.problems:
            if p.table == "data" and p.kind in ("missing_file", "damaged_file"):
                part = p.paths[0].split("/")[1].split("=", 1)[-1]
                p.paths.append(self.node_paths.get(part, f"directory id {part}"))
        return rows

    # -- blobs and hashes --------------------------------------------------------------------
    def check_blobs(self, data: DataTable, rows: list[tuple[str, nodes.NodeRow]]) -> None:
        by_digest: dict[str, list[tuple[str, nodes.NodeRow]]] = defaultdict(list)
        damaged: dict[str, list[nodes.NodeRow]] = defaultdict(list)  # file -> rows to drop
        for rel, r in rows:
            if r.in_blob:
                by_digest[r.content_hash or ""].append((rel, r))
            elif r.content is not None and r.content_hash is not None:
                if hashlib.sha256(r.content).hexdigest() != r.content_hash:
                    p = self.add(
                        Problem(
                            "hash_mismatch",
                            "data",
                            f"version {r.version} of {self._path(r)} does not match its hash",
                            [f"data/{rel}", self._path(r)],
                            [],
                            [r.txn_seq],
                        )
                    )
                    damaged[rel].append(r)
                    self._drop_note(p, r)
        self.checked["blobs"] = len(by_digest)
        for digest, refs in sorted(by_digest.items()):
            path = self.blobs.path_for(digest)
            rel_blob = str(path.relative_to(self.root))
            want = refs[0][1].size
            kind = None
            if not path.exists():
                kind, why = "missing_blob", "is missing"
            else:
                got, size = _sha256(path)
                if got != digest or size != want:
                    kind, why = "corrupt_blob", "does not match its sha256 or size"
            if kind is None:
                continue
            users = sorted({self._path(r) for _, r in refs})
            versions = ", ".join(f"{self._path(r)} version {r.version}" for _, r in refs)
            p = self.add(
                Problem(
                    kind,
                    "blobs",
                    f"blob {rel_blob} {why} (content of {versions})",
                    [rel_blob, *users],
                    [],
                    sorted({r.txn_seq for _, r in refs}),
                )
            )
            check = fsck_backup.blob_check(digest, want)
            if self.repair and (src := self.backups.fetch(rel_blob, check, self.set_aside)):
                p.repaired, p.action = True, f"restored from backup {src}"
            elif self.repair:
                if path.exists():
                    p.action = f"set aside to {self.set_aside(path)}; "
                p.action = (p.action or "") + "its versions removed from the live table"
                for rel, r in refs:
                    damaged[rel].append(r)
                    self.lost.append(
                        f"{self._path(r)} version {r.version} (txn_seq {r.txn_seq}): "
                        f"its content, blob {digest}"
                    )
                p.repaired = True
        if damaged and self.repair:
            self._drop_rows(data, damaged, rows)

    def _drop_note(self, p: Problem, r: nodes.NodeRow) -> None:
        if self.repair:
            p.repaired = True
            p.action = "version removed from the live table"
            self.lost.append(f"{self._path(r)} version {r.version} (txn_seq {r.txn_seq})")

    def _drop_rows(
        self,
        data: DataTable,
        damaged: dict[str, list[nodes.NodeRow]],
        rows: list[tuple[str, nodes.NodeRow]],
    ) -> None:
        """Rewrite each file holding damaged rows without them, in one commit."""
        actions = tableread.add_actions(data.dt)
        sizes = dict(
            zip(
                actions.column("path").to_pylist(),
                actions.column("size_bytes").to_pylist(),
                strict=True,
            )
        )
        out: list[parquetwrite.FileAction] = []
        for rel, drop in damaged.items():
            part = drop[0].part_id
            gone = {(r.node_id, r.version) for r in drop}
            t = tableread.read_parquet(data.path / rel).cast(FILE_SCHEMA)
            keep = [
                i
                for i, (n, v) in enumerate(
                    zip(t["node_id"].to_pylist(), t["version"].to_pylist(), strict=True)
                )
                if (n, v) not in gone
            ]
            if keep:
                out.append(parquetwrite.write_file(data.path, t.take(keep), {PARTITION: part}))
            size = sizes.get(rel, 0)
            out.append(parquetwrite.FileAction(rel, size, {PARTITION: part}, 0, 0, True))
            rows[:] = [(f, r) for f, r in rows if not (f == rel and (r.node_id, r.version) in gone)]
        deltacommit.commit(
            data,
            data.path,
            out,
            operation="DELETE",
            metadata={"pond_fsck": "removed versions whose content is lost"},
        )
        data.dt.update_incremental()

    def _path(self, r: nodes.NodeRow) -> str:
        return self.node_paths.get(r.node_id, f"node {r.node_id}")

    # -- data and control agree ------------------------------------------------------------
    def check_agreement(self, data: DataTable, control: ControlTable | None) -> None:
        data.dt.update_incremental()
        history = tableread.history_metadata(data.dt, data.path, "pond_txn")
        self.checked["transactions"] = len(history)
        by_seq: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for v, _, p in history:
            by_seq[int(p["txn_seq"])].append((v, str(p.get("txn_id"))))
        for seq, commits in sorted(by_seq.items()):
            if len({t for _, t in commits}) > 1:
                self.add(
                    Problem(
                        "txn_seq_reused",
                        "data",
                        f"txn_seq {seq} was committed by {len(commits)} transactions "
                        f"(data versions {', '.join(str(v) for v, _ in sorted(commits))})",
                        [],
                        sorted(v for v, _ in commits),
                        [seq],
                        action=None,
                    )
                )
        if self.control_rows is None or control is None:
            return
        t = self.control_rows
        recorded = defaultdict(set)  # txn_id -> record types
        committed_ctl: dict[int, set[str]] = defaultdict(set)
        committed_at: dict[int, int] = {}  # txn_seq -> data version the control table names
        for seq, txn_id, kind, at in zip(
            t["txn_seq"].to_pylist(),
            t["txn_id"].to_pylist(),
            t["record_type"].to_pylist(),
            t["data_fs_version"].to_pylist(),
            strict=True,
        ):
            recorded[txn_id].add(kind)
            if kind == DATA_COMMITTED:
                committed_ctl[int(seq)].add(txn_id)
                if at is not None:
                    committed_at[int(seq)] = int(at)
        data_ids = {t_id for commits in by_seq.values() for _, t_id in commits}
        for seq, ids in sorted(committed_ctl.items()):
            in_data = {t_id for _, t_id in by_seq.get(seq, [])}
            if ids <= in_data:
                continue
            if len(ids | in_data) > 1:
                self.add(
                    Problem(
                        "txn_seq_reused",
                        "control",
                        f"txn_seq {seq} was used by {len(ids | in_data)} transactions "
                        "that committed data",
                        [],
                        [],
                        [seq],
                    )
                )
            elif not any(seq in p.txn_seqs for p in self.problems if p.repaired):
                at = committed_at.get(seq)
                name = f"data/_delta_log/{logcheck.entry_name(at)}" if at is not None else ""
                p = self.add(
                    Problem(
                        "lost_commit",
                        "data",
                        f"the control table records txn_seq {seq} as committed"
                        + (f" as data version {at}" if at is not None else "")
                        + ", the data table holds no such commit",
                        [name] if name else [],
                        [at] if at is not None else [],
                        [seq],
                    )
                )
                # The newest entry vanished whole: put it back (its files may still be there).
                if self.repair and at is not None and at == data.dt.version() + 1:
                    self.replace_entry("data", at, None, self.pond_txn_of("data", at, None), p)
        missing = [(v, ts, p) for v, ts, p in history if str(p.get("txn_id")) not in recorded]
        for v, ts, p in missing:
            prob = self.add(
                Problem(
                    "unrecorded_commit",
                    "control",
                    f"data version {v} (txn_seq {p['txn_seq']}) has no control rows",
                    [],
                    [v],
                    [int(p["txn_seq"])],
                )
            )
            if self.repair:
                recs = [
                    r
                    for r in _records_for(v, ts * 1000, p)
                    if r.record_type in (BEGIN, DATA_COMMITTED, COMPLETED)
                ]
                control.append(recs)
                prob.repaired = True
                prob.action = "its lifecycle rows recorded again from its pond_txn"
        if data_ids and any(
            BEGIN in kinds and not kinds & {DATA_COMMITTED, COMPLETED, FAILED}
            for kinds in recorded.values()
        ):
            self.notes.append("unfinished transactions: `pond recover` finishes them")

    # -- the tree ----------------------------------------------------------------------------
    def find_dangling(self, rows: list[tuple[str, nodes.NodeRow]]) -> None:
        found = fsck_tree.dangling_entries([r for _, r in rows], self.blobs)
        if found is None:
            self.add(Problem("missing_root", "data", "the root directory has no rows"))
            return
        self.dangling = found
        if self.dangling:
            names = [c for _, _, c in self.dangling]
            p = self.add(
                Problem(
                    "dangling_entry",
                    "data",
                    f"{len(names)} directory entr{'y' if len(names) == 1 else 'ies'} "
                    "name nodes without rows",
                    names,
                )
            )
            if self.repair:
                p.repaired = True
                p.action = "unlinked from their directories in a recorded write"
                self.lost.extend(f"{c}: no version of it is left" for c in names)

    def check_dirs(self, rows: list[tuple[str, nodes.NodeRow]]) -> None:
        """Node versions stored twice (another Delta writer appended a copy: reported, not
        repaired, see the README), and directories whose entries cannot be rebuilt."""
        for (_, node, v), files in sorted(fsck_dirs.duplicate_versions(rows).items()):
            where = sorted({f"data/{f}" for f in files})
            seqs = sorted({r.txn_seq for f, r in rows if r.node_id == node and r.version == v})
            self.add(
                Problem(
                    "duplicate_version",
                    "data",
                    f"version {v} of {self._path_of(node)} is stored {len(files)} times "
                    f"(in {', '.join(where)}): a row another writer appended",
                    [*where, self._path_of(node)],
                    [],
                    seqs,
                    action="not repaired: remove the extra rows with the writer that added them",
                )
            )
        self.broken = fsck_dirs.broken_dirs([r for _, r in rows], self.blobs, self.node_paths)
        for b in self.broken:
            p = self.add(
                Problem(
                    "broken_directory",
                    "data",
                    f"directory {b.path} {b.why}: it cannot be read or written",
                    [b.path],
                )
            )
            if self.repair:
                p.repaired = True
                p.action = f"rewritten as a snapshot of its {len(b.entries)} entries left"
                self.lost.append(f"{b.path}: the names its lost versions recorded")
                self.lost.extend(f"{b.path}/{n}: no version of it is left" for n in b.dropped)
                if b.unnamed:
                    self.lost.append(
                        f"{b.path}: nodes no name reaches any more: {', '.join(b.unnamed)}"
                    )

    def _path_of(self, node_id: str) -> str:
        return self.node_paths.get(node_id, f"node {node_id}")

    def repair_tree(self) -> None:
        """Rebuild broken directories and drop entries without rows: one recorded write."""
        try:
            fsck_dirs.repair_tree(self.root, self.blobs, self.dangling, self.broken)
        except Exception as e:  # noqa: BLE001 - e.g. no control table, a tip still damaged
            for p in self.problems:
                if p.kind in ("dangling_entry", "broken_directory") and p.repaired:
                    p.repaired = False
                    p.action = f"not repaired: {e}"
            self.lost[:] = [line for line in self.lost if not _tree_loss(line, self)]


def _tree_loss(line: str, run: _Fsck) -> bool:
    """Whether a `lost` line was written by the tree repair (undone when it failed)."""
    heads = [c for _, _, c in run.dangling] + [b.path for b in run.broken]
    return any(line.startswith(f"{h}:") or line.startswith(f"{h}/") for h in heads)


def _rows_of(part_id: str, table: pa.Table) -> list[nodes.NodeRow]:
    """The rows of one data file (every column, content included)."""
    i = table.schema.get_field_index("timestamp")
    table = table.set_column(i, "timestamp", table.column(i).cast(pa.int64()))
    return [
        nodes.NodeRow(
            part_id=part_id,
            node_id=d["node_id"],
            file_type=d["file_type"],
            version=d["version"],
            timestamp=d["timestamp"],
            content=d["content"],
            content_hash=d["content_hash"],
            size=d["size"],
            txn_seq=d["txn_seq"],
            min_event_time=d["min_event_time"],
            max_event_time=d["max_event_time"],
            extended_attributes=json.loads(d["extended_attributes"])
            if d["extended_attributes"]
            else {},
            factory=d["factory"],
        )
        for d in table.to_pylist()
    ]


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _command(pond_txn: dict[str, Any]) -> str:
    args = pond_txn.get("args") or []
    return " ".join(str(a) for a in args) if args else "unknown command"
