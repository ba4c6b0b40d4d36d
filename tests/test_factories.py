"""Executor factories (SPEC §8): config validation at mknod, `pond run`, list-factories,
`${env:NAME}`, the test-executor's options and the `command` factory."""

from __future__ import annotations

import json
import sys
import time

import pytest
import yaml
from deltalake import DeltaTable
from steward_helpers import (
    control_rows,
    data_version,
    make_pond,
    mknod,
    pond_cli,
    pond_json,
    rows_of_seq,
    task_rows,
    write_file,
    yaml_file,
)

from duckpond.errors import FactoryError
from duckpond.factories import registry
from duckpond.pond import Pond

BAD_CONFIGS = [
    ("test-executor", "message: [unclosed\n", "not valid YAML"),
    ("test-executor", "- a\n- list\n", "mapping"),
    ("test-executor", "message: hi\nbogus_key: 1\n", "bogus_key"),
    ("test-executor", "repeat_count: three\n", "repeat_count"),
    ("test-executor", "fail: 'yes'\n", "fail"),
    ("test-executor", "sleep_ms: -5\n", "sleep_ms"),
    ("test-executor", "file_to_read: /x\n", "expected_content"),
    ("command", "env: {}\n", "command"),
    ("command", "command: echo hi\n", "command"),
    ("command", "command: []\n", "command"),
    ("no-such-factory", "message: hi\n", "unknown factory"),
]


@pytest.fixture
def pond_root(tmp_path):
    root = tmp_path / "pond"
    make_pond(root)
    return root


@pytest.mark.parametrize(("factory", "config", "needle"), BAD_CONFIGS)
def test_bad_config_refused_in_library_and_nothing_written(pond_root, factory, config, needle):
    pond = Pond.open(pond_root)
    before = (data_version(pond_root), len(control_rows(pond_root)))
    with pytest.raises(FactoryError, match=needle):
        pond.mknod(factory, "/etc/system.d/10-bad", config.encode())
    assert (data_version(pond_root), len(control_rows(pond_root))) == before
    assert Pond.open(pond_root).lookup("/etc") is None


def test_bad_config_refused_by_cli(pond_root, tmp_path):
    before = data_version(pond_root)
    for i, (factory, config, needle) in enumerate(BAD_CONFIGS[:4]):
        cfg = tmp_path / f"bad{i}.yaml"
        cfg.write_text(config)
        proc = pond_cli(
            pond_root, "mknod", factory, "/jobs/bad", "--config-path", str(cfg), expect=1
        )
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        assert proc.stdout == ""
    missing = pond_cli(
        pond_root,
        "mknod",
        "test-executor",
        "/jobs/x",
        "--config-path",
        str(tmp_path / "nope"),
        expect=None,
    )
    assert missing.returncode in (1, 2) and "error:" in missing.stderr
    assert data_version(pond_root) == before


def test_mknod_overwrite(pond_root, tmp_path):
    one = yaml_file(tmp_path / "one.yaml", {"message": "one", "write_path": "/out/o"})
    two = yaml_file(tmp_path / "two.yaml", {"message": "two", "write_path": "/out/o"})
    pond_cli(pond_root, "mknod", "test-executor", "/jobs/j", "--config-path", str(one))
    before = data_version(pond_root)
    proc = pond_cli(
        pond_root, "mknod", "test-executor", "/jobs/j", "--config-path", str(two), expect=1
    )
    assert "exists" in proc.stderr and "--overwrite" in proc.stderr
    assert data_version(pond_root) == before
    pond_cli(
        pond_root, "mknod", "test-executor", "/jobs/j", "--config-path", str(two), "--overwrite"
    )
    pond = Pond.open(pond_root)
    assert yaml.safe_load(pond.read_bytes("/jobs/j")) == {"message": "two", "write_path": "/out/o"}
    assert [v.version for v in pond.versions("/jobs/j")] == [1, 2]
    assert pond.lookup("/jobs/j").file_type.endswith(":dynamic")
    # --overwrite validates too
    bad = tmp_path / "bad.yaml"
    bad.write_text("nope: 1\n")
    pond_cli(
        pond_root,
        "mknod",
        "test-executor",
        "/jobs/j",
        "--config-path",
        str(bad),
        "--overwrite",
        expect=1,
    )
    assert [v.version for v in Pond.open(pond_root).versions("/jobs/j")] == [1, 2]


def test_pond_run_writes_in_one_transaction(pond_root, tmp_path):
    cfg = yaml_file(
        tmp_path / "job.yaml", {"message": "ran", "repeat_count": 3, "write_path": "/out/ran.txt"}
    )
    pond_cli(pond_root, "mknod", "test-executor", "/jobs/job", "--config-path", str(cfg))
    last = Pond.open(pond_root).data.last_txn_seq()
    proc = pond_cli(pond_root, "run", "/jobs/job")
    assert proc.stderr.count("ran") == 3  # message logged repeat_count times
    pond = Pond.open(pond_root)
    assert pond.read_bytes("/out/ran.txt") == b"ran"
    assert pond.data.last_txn_seq() == last + 1
    mine = rows_of_seq(control_rows(pond_root), last + 1)
    assert [r["record_type"] for r in mine] == ["begin", "data_committed", "completed"]
    assert json.loads(mine[0]["cli_args"])[1:] == ["--pond", str(pond_root), "run", "/jobs/job"]


def test_pond_run_failure_and_non_runnable(pond_root, tmp_path):
    cfg = yaml_file(tmp_path / "f.yaml", {"message": "m", "fail": True, "write_path": "/out/f"})
    pond_cli(pond_root, "mknod", "test-executor", "/jobs/fail", "--config-path", str(cfg))
    before = data_version(pond_root)
    last = Pond.open(pond_root).data.last_txn_seq()
    proc = pond_cli(pond_root, "run", "/jobs/fail", expect=1)
    assert "intentionally failed" in proc.stderr
    assert data_version(pond_root) == before
    assert Pond.open(pond_root).lookup("/out/f") is None
    mine = rows_of_seq(control_rows(pond_root), last + 1)
    assert [r["record_type"] for r in mine] == ["begin", "failed"]
    assert "intentionally failed" in mine[1]["error_message"]
    # not a factory node / no such path
    write_file(Pond.open(pond_root), "/plain", b"x")
    assert "error:" in pond_cli(pond_root, "run", "/plain", expect=1).stderr
    assert "error:" in pond_cli(pond_root, "run", "/missing", expect=1).stderr


def test_list_factories(tmp_path):
    proc = pond_cli(None, "list-factories")
    assert "test-executor" in proc.stdout and "command" in proc.stdout
    facs = pond_json(None, "list-factories", "--format", "json")
    by_name = {f["name"]: f for f in facs}
    assert {"test-executor", "command"} <= set(by_name)
    assert all(f["description"] for f in facs)
    assert {"test-executor", "command"} <= {f.name for f in registry.all_factories()}
    assert by_name["test-executor"]["kind"] == by_name["command"]["kind"] == "executor"


def test_env_reference_expanded_at_run_time_never_stored(pond_root, tmp_path):
    secret = "s3cr3t-value-42"
    cfg = yaml_file(
        tmp_path / "env.yaml",
        {"message": "token=${env:POND_TEST_SECRET}", "write_path": "/out/secret.txt"},
    )
    # validated and stored without the variable set
    pond_cli(pond_root, "mknod", "test-executor", "/jobs/env", "--config-path", str(cfg))
    stored = Pond.open(pond_root).read_bytes("/jobs/env")
    assert b"${env:POND_TEST_SECRET}" in stored and secret.encode() not in stored
    # unset at run time: the job fails, naming the variable
    proc = pond_cli(pond_root, "run", "/jobs/env", expect=1)
    assert "POND_TEST_SECRET" in proc.stderr
    pond_cli(pond_root, "run", "/jobs/env", env={"POND_TEST_SECRET": secret})
    pond = Pond.open(pond_root)
    assert pond.read_bytes("/out/secret.txt") == f"token={secret}".encode()
    assert pond.read_bytes("/jobs/env") == stored
    # never recorded: not in the control table, not in the data commits' metadata
    for r in control_rows(pond_root):
        assert secret not in json.dumps(r, default=str)
    for h in DeltaTable(str(pond_root / "data")).history():
        assert secret not in json.dumps(h, default=str)


def test_test_executor_sleep_and_missing_file(pond_root, tmp_path):
    pond = Pond.open(pond_root)
    mknod(pond, "/jobs/sleep", {"sleep_ms": 300})
    t0 = time.monotonic()
    pond.run("/jobs/sleep")
    assert time.monotonic() - t0 >= 0.3
    mknod(pond, "/jobs/read", {"file_to_read": "/nope", "expected_content": "x"})
    with pytest.raises(FactoryError, match="does not exist"):
        pond.run("/jobs/read")


def test_write_path_commit_metadata_via_delta_history(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root, [("10-w", {"message": "w", "write_path": "/out/w"})])
    seq = write_file(pond, "/in", b"1")
    commits = {}
    for h in DeltaTable(str(root / "data")).history():
        if "pond_txn" in h:
            p = json.loads(h["pond_txn"])
            commits[p["txn_seq"]] = p
    task = commits[seq + 1]
    assert task["parent_txn_seq"] == seq
    assert task["execution_seq"] == 1
    assert task["txn_id"] != commits[seq]["txn_id"]
    assert "parent_txn_seq" not in commits[seq]
    # the task's row carries its own txn_seq in the data table
    pond = Pond.open(root)
    assert pond.versions("/out/w")[-1].txn_seq == seq + 1


def _env_dump_command(out: str) -> list[str]:
    script = (
        "import json, os, sys; "
        f"open({out!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
        "'env': {k: os.environ.get(k) for k in "
        "('POND', 'POND_TXN_SEQ', 'POND_PARENT_TXN_SEQ', 'POND_EXECUTION_SEQ', "
        "'POND_ATTEMPT', 'POND_ARGS', 'POND_VARS')}}) + '\\n')"
    )
    return [sys.executable, "-c", script]


def test_command_factory_environment(tmp_path):
    root = tmp_path / "pond"
    out = tmp_path / "env.jsonl"
    pond = make_pond(root)
    mknod(pond, "/etc/system.d/10-cmd", {"command": _env_dump_command(str(out))}, "command")
    mknod_seq = pond.data.last_txn_seq()
    seq = write_file(pond, "/x", b"x")
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    # once for the mknod's own post-commit, once for the write
    assert [s["env"]["POND_PARENT_TXN_SEQ"] for s in seen] == [str(mknod_seq), str(seq)]
    assert seen[-1]["env"]["POND_TXN_SEQ"] is None  # a number it may never get: not given
    assert (seen[-1]["env"]["POND_EXECUTION_SEQ"], seen[-1]["env"]["POND_ATTEMPT"]) == ("1", "1")
    assert seen[-1]["env"]["POND"] == str(root)
    assert seen[-1]["argv"] == []
    rows = control_rows(root)
    assert task_rows(rows, seq, 1)[-1] == "post_commit_completed"

    # pond run: no parent, run arguments appended
    out.unlink()
    mknod(pond, "/jobs/cmd", {"command": _env_dump_command(str(out))}, "command")
    pond_cli(root, "-v", "site=lab", "run", "/jobs/cmd", "a1", "--b2")
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    [run] = [s for s in seen if s["env"]["POND_PARENT_TXN_SEQ"] == ""]  # not 10-cmd's runs
    assert run["argv"] == ["a1", "--b2"]
    assert run["env"]["POND_PARENT_TXN_SEQ"] == ""
    assert run["env"]["POND"] == str(root)
    assert run["env"]["POND_TXN_SEQ"] is None
    assert run["env"]["POND_EXECUTION_SEQ"] == run["env"]["POND_ATTEMPT"] == ""
    assert json.loads(run["env"]["POND_VARS"]) == {"site": "lab"}
    # template variables are recorded with the transaction
    begin = [r for r in control_rows(root) if r["record_type"] == "begin"][-1]
    assert json.loads(begin["vars"]) == {"site": "lab"}
    assert "site=lab" in json.loads(begin["cli_args"])


def test_command_factory_nonzero_exit_is_failure_with_stderr_tail(tmp_path):
    root = tmp_path / "pond"
    pond = make_pond(root)
    noise = "x" * 2000
    script = (
        f"import sys; sys.stderr.write({noise!r} + ' the real reason: disk on fire'); sys.exit(3)"
    )
    mknod(pond, "/etc/system.d/10-bad", {"command": [sys.executable, "-c", script]}, "command")
    seq = write_file(pond, "/x", b"x")
    rows = control_rows(root)
    failed = [r for r in rows if r["record_type"] == "post_commit_failed" and r["txn_seq"] == seq]
    [f] = failed
    assert "3" in f["error_message"]
    assert f["error_message"].endswith("the real reason: disk on fire")
    assert len(f["error_message"]) < 1000
    mknod(pond, "/jobs/missing", {"command": ["/no/such/binary-xyz"]}, "command")
    proc = pond_cli(root, "run", "/jobs/missing", expect=1)
    assert "/no/such/binary-xyz" in proc.stderr


def test_command_task_cannot_recurse_into_a_write(tmp_path):
    """A post-commit command that itself writes to the pond meets the lock (exit 3): no
    recursion, no deadlock; the task fails and the user's write still completes."""
    root = tmp_path / "pond"
    pond = make_pond(root)
    host = tmp_path / "y.txt"
    host.write_text("y")
    cmd = [sys.executable, "-m", "duckpond.cli", "copy", f"host://{host}", "/y.txt"]
    mknod(pond, "/etc/system.d/10-rewrite", {"command": cmd}, "command")
    seq = write_file(pond, "/x", b"x")
    rows = control_rows(root)
    [failed] = [r for r in rows if r["record_type"] == "post_commit_failed" and r["txn_seq"] == seq]
    assert "status 3" in failed["error_message"] and "locked" in failed["error_message"]
    assert rows_of_seq(rows, seq)[-1]["record_type"] == "completed"
    assert Pond.open(root).lookup("/y.txt") is None
    assert not [r for r in rows if r["parent_txn_seq"] and r["parent_txn_seq"] > seq]


def test_test_executor_clips_a_huge_message(tmp_path):
    # issue 17 item 10c: a 50 MB message was printed (and logged) whole at every write.
    # 2 MB is as huge to the clipping (a few thousand chars kept) and 25x cheaper to parse.
    big = "m" * 2_000_000
    root = tmp_path / "pond"
    make_pond(root, [("10-big", {"message": big, "fail": True, "repeat_count": 2})])
    proc = pond_cli(root, "mkdir", "/a", timeout=600)
    assert len(proc.stderr) < 10_000 and "(2,000,000 chars)" in proc.stderr
    stored = json.dumps(control_rows(root), default=str)
    assert "m" * 3000 not in stored
    assert "intentionally failed: mmm" in stored
