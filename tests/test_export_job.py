"""The `export` post-commit job: after every write it keeps a published copy fresh,
rewriting only the series that changed; a failing export fails its task, never the write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import run_pond
from export_helpers import add_version, normalized, parquet_files, pond_rows


def jobs_of_last_write(root: Path) -> dict[str, Any]:
    recent = json.loads(run_pond("control", "--format", "json", pond=root).stdout)
    return {j["config_path"]: j for j in recent[-1]["post_commit"]}


def mknod_export(root: Path, tmp: Path, config: dict[str, Any], **kw: Any) -> Any:
    cfg = tmp / "export.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return run_pond(
        "mknod", "export", "/etc/system.d/30-export", "--config-path", cfg, pond=root, **kw
    )


def test_the_job_exports_after_every_write_and_redoes_only_changed_series(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pond"
    out = tmp_path / "out"
    run_pond("init", pond=root)
    add_version(root, tmp_path, "/s/a", 0, 24)
    mknod_export(
        root, tmp_path, {"patterns": ["/s/*"], "dir": str(out), "temporal": "year,month,day"}
    )
    # the mknod's own write ran the job: /s/a is published
    assert parquet_files(out) == {"s/a/year=2024/month=1/day=1/data.parquet": 24}
    a_file = out / "s/a/year=2024/month=1/day=1/data.parquet"
    a_inode = a_file.stat().st_ino
    add_version(root, tmp_path, "/s/b", 24, 5)  # a new series: only it is written
    assert jobs_of_last_write(root)["/etc/system.d/30-export"]["status"] == "completed"
    assert parquet_files(out) == {
        "s/a/year=2024/month=1/day=1/data.parquet": 24,
        "s/b/year=2024/month=1/day=2/data.parquet": 5,
    }
    assert a_file.stat().st_ino == a_inode
    manifest = json.loads((out / "_pond_export.json").read_text())
    seqs = {p: e["txn_seq"] for p, e in manifest["series"].items()}
    add_version(root, tmp_path, "/s/a", 24, 2)  # /s/a changes: rewritten, /s/b kept
    manifest2 = json.loads((out / "_pond_export.json").read_text())
    assert manifest2["series"]["/s/b"]["txn_seq"] == seqs["/s/b"]
    assert manifest2["series"]["/s/a"]["txn_seq"] == manifest2["txn_seq"] > seqs["/s/a"]
    files = sorted((out / "s/a").rglob("*.parquet"))
    got = normalized(pa.concat_tables([pq.read_table(f, partitioning=None) for f in files]))
    assert got == pond_rows(root, "/s/a")
    assert len(got) == 26


def test_a_failing_export_fails_its_task_never_the_write(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    out = tmp_path / "out"
    run_pond("init", pond=root)
    (out / "s/a").mkdir(parents=True)  # in the way: no export wrote it
    mknod_export(root, tmp_path, {"patterns": ["/s/*"], "dir": f"file://{out}"})
    csv = tmp_path / "a.csv"
    csv.write_text("timestamp,v\n2024-01-01T00:00:00Z,1\n")
    run_pond("mkdir", "/s", pond=root)
    proc = run_pond("copy", f"host+csv+series://{csv}", "/s/a", pond=root)  # exit 0
    assert proc.stderr.decode().splitlines()[-1] == (
        "warning: post-commit task /etc/system.d/30-export (export) failed: "
        f"{out}/s/a exists and no earlier export wrote it: move it away or export elsewhere"
    )
    job = jobs_of_last_write(root)["/etc/system.d/30-export"]
    assert job["status"] == "failed"
    assert job["error_message"].startswith(f"{out}/s/a exists and no earlier export wrote it")
    assert len(pond_rows(root, "/s/a")) == 1  # the write itself committed
    assert list((out / "s/a").iterdir()) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"dir": "/x"}, "export: config needs 'patterns'"),
        ({"patterns": ["/s/*"], "dir": "rel/dir"}, "'dir' must be absolute"),
        ({"patterns": ["/s/*"], "dir": "/x", "format": "csv"}, "'format' must be parquet or delta"),
        ({"patterns": ["/s/*"], "dir": "/x", "temporal": "day"}, "use a prefix of year,month"),
        ({"patterns": ["s"], "dir": "/x"}, "'patterns' must be a list of absolute pond paths"),
        ({"patterns": ["/s"], "dir": "/x", "colour": 1}, "unknown config key(s): colour"),
        (
            {"patterns": ["/s"], "dir": "s3://bucket/p", "secret_access_key": "literal"},
            "must be an environment reference",
        ),
    ],
)
def test_a_bad_config_is_refused_before_anything_is_written(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    proc = mknod_export(root, tmp_path, config, check=1)
    err = proc.stderr.decode()
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert run_pond("list", "/etc/**", pond=root).stdout == b""


def test_the_job_keeps_an_s3_delta_export_fresh(tmp_path: Path, s3_remote: Any) -> None:
    from deltalake import DeltaTable, QueryBuilder

    root = tmp_path / "pond"
    run_pond("init", pond=root)
    opts = s3_remote.options
    env = {"EXPORT_SECRET": opts.secret_access_key}
    config = {
        "patterns": ["/s/*"],
        "dir": s3_remote.url,
        "format": "delta",
        "endpoint": opts.endpoint,
        "region": opts.region,
        "access_key_id": opts.access_key_id,
        "secret_access_key": "${env:EXPORT_SECRET}",
        "allow_http": True,
    }
    mknod_export(root, tmp_path, config, env=env)
    add_version(root, tmp_path, "/s/a", 0, 10, env=env)
    add_version(root, tmp_path, "/s/a", 10, 5, env=env)
    table = DeltaTable(f"{s3_remote.url}/s/a", storage_options=s3_remote.storage_options)
    assert table.version() == 1  # one overwrite per write that changed /s/a
    q = "select count(*) as n, sum(v) as total from t"
    got = pa.table(QueryBuilder().register("t", table).execute(q).read_all()).to_pylist()
    assert got == [{"n": 15, "total": sum(range(15))}]
    assert "EXPORT_SECRET" not in json.dumps(jobs_of_last_write(root))
