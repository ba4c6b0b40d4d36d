"""fsck: the tables' Parquet files and the blob store."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import nodes
from ..storage import deltacommit, parquetwrite, tableread
from ..storage.dataschema import FILE_SCHEMA, PARTITION
from ..storage.datatable import DataTable
from . import fsck_backup, fsck_tree
from .control import ControlTable
from .fsck_backup import sha256_file
from .fsck_run import FsckRun, Problem


class FileChecks(FsckRun):
    """Every live Parquet file exists with its recorded size; every blob exists and
    matches its hash and size; the last resort drops what cannot be fetched again."""

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
                got, size = sha256_file(path)
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
            gone_file = parquetwrite.FileAction(rel, size, {PARTITION: part}, 0, 0, True)
            out.append(gone_file)
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
