"""fsck: data and control tables agree; the directory tree."""

from __future__ import annotations

from collections import defaultdict

from .. import nodes
from ..storage import logcheck, tableread
from ..storage.datatable import DataTable
from . import fsck_dirs, fsck_tree
from .control import BEGIN, COMPLETED, DATA_COMMITTED, FAILED, ControlTable
from .fsck_log import LogChecks
from .fsck_run import Problem
from .rebuild import _records_for


class AgreementChecks(LogChecks):
    """The data table's transactions agree with the control table; the directory tree
    can be rebuilt from its rows, and its repair."""

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
        repaired, see docs/reliability/fsck.md), and directories whose entries cannot be rebuilt."""
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


def _tree_loss(line: str, run: AgreementChecks) -> bool:
    """Whether a `lost` line was written by the tree repair (undone when it failed)."""
    heads = [c for _, _, c in run.dangling] + [b.path for b in run.broken]
    return any(line.startswith(f"{h}:") or line.startswith(f"{h}/") for h in heads)
