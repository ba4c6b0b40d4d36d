"""A backup of a pond whose log was pruned (issue 17, item 3).

Once upkeep prunes the local log behind a checkpoint, a push must still give the remote
everything its oldest log version needs: the checkpoint, the files it lists, the entries
after it, the archive of pruned entries and `_last_checkpoint`. Pruning is made cheap the
way tests/test_log_pruning.py does it: `delta.logRetentionDuration` of 0 seconds, and a
checkpoint every 4 versions (in this process; the CLI subprocesses keep the default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_pond
from s3server import Remote
from test_log_pruning import create_without_log_retention
from test_remotes_cli import remote_args

from duckpond.pond import Pond
from duckpond.remotes import layout
from duckpond.storage import tableread, upkeep

BIG = 256 * 1024  # a blob

# Row counts of a Delta table at a version, by deltalake and by DuckDB's delta extension,
# in a subprocess (deltalake must not run in a forked child; each reader loads here only).
READERS = r"""
import glob, json, os, sys
from deltalake import DeltaTable, QueryBuilder
plan = json.loads(sys.argv[1])
out = []
for uri, version, options, duck in plan:
    dt = DeltaTable(uri, version=version, storage_options=options or None)
    q = QueryBuilder().register("t", dt).execute("select count(*) as n from t")
    counts = {"deltalake": q.read_all().column("n")[0].as_py()}
    if duck:
        import duckdb, duckdb_extension_delta
        base = os.path.dirname(duckdb_extension_delta.__file__)
        ext = glob.glob(f"{base}/extensions/v{duckdb.__version__}/delta.duckdb_extension")
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{ext[0]}'")
        sql = f"select count(*) from delta_scan('{uri}', version => {version})"
        counts["duckdb"] = con.execute(sql).fetchone()[0]
    out.append(counts)
# the engines' Rust runtimes (deltalake 1.6.6, Daft, Polars) can crash while the
# interpreter tears down (SIGSEGV after this line, CI stop 26): the reads are done
print(json.dumps(out), flush=True)
os._exit(0)
"""


def _write(pond: Pond, i: int) -> None:
    with pond.transaction(["test", "write", str(i)]) as tx:
        tx.write_bytes(f"/d{i % 3}/f{i}", os.urandom(BIG if i % 7 == 0 else 100), parents=True)


def _remote_log(remote: Remote, table: str) -> layout.LogListing:
    from duckpond.remotes.logs import remote_log

    return remote_log(remote.store(), table)


def _counts(plan: list[tuple[str, int, dict[str, str], bool]]) -> list[dict[str, int]]:
    proc = subprocess.run(
        [sys.executable, "-c", READERS, json.dumps(plan)], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return list(json.loads(proc.stdout))


def _check_backup(
    tmp_path: Path, root: Path, remote: Remote, label: str, seen: dict[str, int]
) -> None:
    """`pond verify` is clean; a restore passes `pond fsck` with the pond's history; other
    readers open the remote's oldest and newest versions and count what the pond counts
    there (`seen`: the pond's counts at versions it has pruned since, by an earlier call)."""
    args, env = remote_args(remote)
    run_pond("verify", pond=root, env=env)
    restored = tmp_path / f"restored-{label}"
    run_pond("restore", "b", remote.url, *args, pond=restored, env=env)
    fsck = run_pond("fsck", "--format", "json", pond=restored, env=env)
    assert json.loads(fsck.stdout)["problems"] == []
    assert sorted(Pond.open(restored).data.commit_history()) == sorted(
        Pond.open(root).data.commit_history()
    )
    duck = remote.options is None  # DuckDB's delta_scan reads the file:// backup
    plan, keys = [], []
    for table in ("data", "control"):
        listed = _remote_log(remote, table)
        assert listed.start >= 0 and listed.start in listed.checkpoints, table
        local = layout.local_log(root / table)
        # (the remote's control table lags by the rows recording its own push)
        for version in (listed.start, listed.tip):
            plan.append((remote.table_uri(table), version, remote.storage_options, duck))
            keys.append(f"remote {table}@{version}")
            if version in local.entries:
                plan.append((str(root / table), version, {}, duck))
                keys.append(f"pond {table}@{version}")
    counts = dict(zip(keys, _counts(plan), strict=True))
    for key, got in counts.items():
        if key.startswith("pond "):
            seen[key] = got["deltalake"]
    for key, got in counts.items():
        if key.startswith("remote "):
            want = seen[key.replace("remote ", "pond ")]
            assert got["deltalake"] == want > 0, key
            assert got.get("duckdb", want) == want, key


def test_a_backup_of_a_pruned_pond_holds_what_its_oldest_version_needs(
    tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY", 4)
    root = tmp_path / "pond"
    pond = create_without_log_retention(root)
    for i in range(34):  # control checkpoints and prunes more slowly than data
        _write(pond, i)
    for table in ("data", "control"):
        local = layout.local_log(root / table)
        assert local.start > 0 and local.start in local.checkpoints, table  # pruned
    assert list((root / "data" / tableread.ARCHIVE_DIR).glob("*.parquet"))

    args, env = remote_args(remote)
    run_pond("backup", "add", "b", remote.url, *args, pond=root, env=env)
    for table in ("data", "control"):
        listed = _remote_log(remote, table)
        assert listed.start in listed.checkpoints and listed.has_last_checkpoint, table
    seen: dict[str, int] = {}
    _check_backup(tmp_path, root, remote, "first", seen)

    # Later writes push after each commit (in this process) while upkeep prunes further.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pond = Pond.open(root)
    first_oldest = {t: _remote_log(remote, t).start for t in ("data", "control")}
    for i in range(34, 52):
        _write(pond, i)
    assert not pond.steward.failed_tasks
    for table in ("data", "control"):
        assert layout.local_log(root / table).start > first_oldest[table]  # pruned past it
    assert {t: _remote_log(remote, t).start for t in ("data", "control")} == first_oldest
    _check_backup(tmp_path, root, remote, "later", seen)
