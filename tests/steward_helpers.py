"""Helpers shared by the steward tests (control table, post-commit, recovery, factories).

Real ponds in tmp_path, the real CLI in subprocesses (`python -m duckpond.cli`), no mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from duckpond import nodes
from duckpond.pond import Pond
from duckpond.steward.control import ControlTable

CLI = [sys.executable, "-m", "duckpond.cli"]

# The design note's three recovery queries, verbatim (SPEC §5: they must run unchanged).
Q_PENDING_NEVER_STARTED = """SELECT parent_txn_seq, execution_seq, factory_name, config_path
FROM control_table
WHERE record_type = 'post_commit_pending'
  AND NOT EXISTS (
    SELECT 1 FROM control_table AS t2 
    WHERE t2.parent_txn_seq = control_table.parent_txn_seq
      AND t2.execution_seq = control_table.execution_seq
      AND t2.record_type = 'post_commit_started'
  )"""  # noqa: W291 - verbatim, trailing blank included

Q_STARTED_NEVER_FINISHED = """SELECT parent_txn_seq, execution_seq
FROM control_table
WHERE record_type = 'post_commit_started'
  AND NOT EXISTS (
    SELECT 1 FROM control_table AS t2 
    WHERE t2.parent_txn_seq = control_table.parent_txn_seq
      AND t2.execution_seq = control_table.execution_seq
      AND t2.record_type IN ('post_commit_completed', 'post_commit_failed')
  )"""  # noqa: W291 - verbatim, trailing blank included

Q_RECENT_FAILURES = """SELECT parent_txn_seq, execution_seq, factory_name, config_path, 
       error_message, duration_ms
FROM control_table
WHERE record_type = 'post_commit_failed'
ORDER BY timestamp DESC
LIMIT 10"""  # noqa: W291 - verbatim, trailing blank included

# SPEC §7 JSON shapes.
RECENT_KEYS = {
    "txn_seq",
    "txn_id",
    "transaction_type",
    "status",
    "command",
    "started",
    "ended",
    "duration_ms",
    "error_message",
    "post_commit",
}
# The listed task keys, plus the task's own txn_seq ("nested ... with their own txn_seq").
TASK_KEYS = {
    "execution_seq",
    "factory_name",
    "config_path",
    "status",
    "attempt",
    "duration_ms",
    "error_message",
    "txn_seq",
    "failed_attempts",
}
INCOMPLETE_TASK_KEYS = {
    "parent_txn_seq",
    "execution_seq",
    "factory_name",
    "config_path",
    "state",
    "attempt",
}
SPEC_CONTROL_COLUMNS = {
    "txn_seq",
    "txn_id",
    "record_type",
    "transaction_type",
    "timestamp",
    "parent_txn_seq",
    "execution_seq",
    "factory_name",
    "config_path",
    "data_fs_version",
    "duration_ms",
    "error_message",
    "attempt",
    "cli_args",
}


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POND", "POND_CRASH_AT")}
    env.update(extra or {})
    return env


def pond_cli(
    pond: Path | str | None,
    *args: str,
    env: dict[str, str] | None = None,
    expect: int | None = 0,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; `expect` is the exit code to assert (None: don't check)."""
    argv = [*CLI, *(["--pond", str(pond)] if pond is not None else []), *args]
    proc = subprocess.run(argv, env=cli_env(env), capture_output=True, text=True, timeout=timeout)
    if expect is not None:
        assert proc.returncode == expect, (
            f"{args} exited {proc.returncode} (expected {expect})\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def pond_json(pond: Path | str, *args: str, env: dict[str, str] | None = None) -> Any:
    proc = pond_cli(pond, *args, env=env)
    return json.loads(proc.stdout)


def yaml_file(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_pond(root: Path, factories: list[tuple[str, dict[str, Any]]] = ()) -> Pond:
    """A fresh pond with post-commit factories /etc/system.d/NAME (test-executor)."""
    pond = Pond.create(root)
    for name, config in factories:
        mknod(pond, f"/etc/system.d/{name}", config)
    return pond


def mknod(pond: Pond, path: str, config: dict[str, Any], factory: str = "test-executor") -> None:
    raw = yaml.safe_dump(config, sort_keys=False).encode()
    pond.mknod(factory, path, raw, args=["pond", "mknod", factory, path])


def write_file(pond: Pond, path: str, data: bytes, args: list[str] | None = None) -> int:
    with pond.transaction(args or ["pond", "copy", path]) as tx:
        tx.write_bytes(path, data, parents=True)
        return tx.txn_seq
    raise AssertionError("unreachable")


def control_rows(root: Path | str) -> list[dict[str, Any]]:
    """Every control row, in recorded order (read with a fresh handle)."""
    return ControlTable.open(Path(root) / "control").read_all().to_pylist()


def control_version(root: Path | str) -> int:
    return ControlTable.open(Path(root) / "control").dt.version()


def data_version(root: Path | str) -> int:
    return Pond.open(root).data.version()


def pond_txns(root: Path | str) -> list[dict[str, Any]]:
    """`pond_txn` metadata of every data commit, oldest first."""
    return [p for _, p in reversed(Pond.open(root).data.pond_txns())]


def rows_of_seq(rows: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    return [r for r in rows if r["txn_seq"] == seq]


def task_rows(rows: list[dict[str, Any]], parent: int, execution_seq: int) -> list[str]:
    return [
        r["record_type"]
        for r in rows
        if r["parent_txn_seq"] == parent
        and r["execution_seq"] == execution_seq
        and r["record_type"].startswith("post_commit_")
    ]


def latest_task_states(rows: list[dict[str, Any]]) -> dict[tuple[int, int], tuple[str, int]]:
    """(parent_txn_seq, execution_seq) -> (latest post_commit_* record type, its attempt)."""
    out: dict[tuple[int, int], tuple[str, int]] = {}
    for r in rows:
        if r["record_type"].startswith("post_commit_"):
            out[(r["parent_txn_seq"], r["execution_seq"])] = (r["record_type"], r["attempt"])
    return out


def write_outcomes(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """txn_id of every `begin` -> its terminal record type (None if it has none)."""
    out: dict[str, str | None] = {}
    for r in rows:
        if r["record_type"] == "begin":
            out.setdefault(r["txn_id"], None)
        elif r["record_type"] in ("completed", "failed") and r["txn_id"] in out:
            out[r["txn_id"]] = r["record_type"]
    return out


def snapshot(root: Path | str) -> dict[str, tuple[Any, ...]]:
    """What a user sees: every entry's type, version, size and (for files) bytes.

    Directory contents hold node ids (random) and are left out; everything else must match
    between a crashed-and-recovered pond and the same run without a crash."""
    pond = Pond.open(root)
    out: dict[str, tuple[Any, ...]] = {}
    for e in pond.list("/**/*"):
        content = None if nodes.is_dir(e.type) else pond.read_bytes(e.path)
        versions = None
        if not nodes.is_dir(e.type):
            versions = [pond.read_bytes(e.path, version=v.version) for v in pond.versions(e.path)]
        out[e.path] = (
            e.type,
            e.version,
            None if nodes.is_dir(e.type) else e.size,
            content,
            versions,
        )
    return out


def cli_snapshot(root: Path | str) -> dict[str, tuple[Any, ...]]:
    """The same through the CLI: `pond list --format json` + `pond cat`."""
    entries = pond_json(root, "list", "--format", "json")
    out: dict[str, tuple[Any, ...]] = {}
    for e in entries:
        content = None
        if e["type"].startswith("file:data"):
            content = subprocess.run(
                [*CLI, "--pond", str(root), "cat", e["path"]],
                env=cli_env(),
                capture_output=True,
                check=True,
            ).stdout
        out[e["path"]] = (e["type"], e["version"], content)
    return out


def wait_for(predicate: Any, timeout: float = 120.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a table being written may not be readable yet
            pass
        time.sleep(interval)
    raise AssertionError("timed out waiting for a condition")
