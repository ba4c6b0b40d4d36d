"""Issue 17 items 5 and 11c: what a job's host process is given, and what of its output
the pond keeps.

- A `command` job gets a small documented environment (PATH, HOME, LANG, LC_*, TZ, TMPDIR,
  its own `env:`, the POND_* facts), never the pond process's: the credentials of the
  remotes and of other nodes stay out of its reach.
- Whatever of a job's output the pond stores or prints has every value any pond config
  resolves from `${env:NAME}` replaced by its reference (a job may learn a secret some
  other way), checked over every byte of $POND, of a file:// backup and of an S3 bucket.
- A job is identified as the control table records its attempt (POND_PARENT_TXN_SEQ,
  POND_EXECUTION_SEQ, POND_ATTEMPT), also after `pond recover` re-runs it; it is never
  told a txn_seq of its own (one another transaction may get).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from conftest import CLI, cli_env, run_pond
from s3server import REGION, S3Server, s3_remote_on
from test_secrets import _leaks, _pond_text

from duckpond.pond import Pond

S3_SECRET = "S3-s3cr3t-Kx9Qw2Zr7Lm4"
S3_KEY_ID = "AKIA-key-id-Vb6Nn3Hh8"
OTHER_SECRET = "other-n0de-s3cr3t-Pp5Tt1"
SECRETS = (S3_SECRET, S3_KEY_ID, OTHER_SECRET)

# The facts and locale a job is given (LC_* as set), and nothing else.
ALLOWED = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "LC_TIME"}
FACTS = {
    "POND",
    "POND_PARENT_TXN_SEQ",
    "POND_EXECUTION_SEQ",
    "POND_ATTEMPT",
    "POND_ARGS",
    "POND_VARS",
}

# Records its environment in a host file, then says it (and the secrets it learned from a
# host file, as a job could from anywhere) on stdout and at the end of stderr, and fails.
LEAKY_JOB = (
    "import json, os, sys\n"
    "seen, learned = sys.argv[1], sys.argv[2]\n"
    "env = dict(os.environ)\n"
    "with open(seen, 'a') as f: f.write(json.dumps(env) + '\\n')\n"
    "text = open(learned).read()\n"
    "print('env:', json.dumps(env), 'learned:', text, flush=True)\n"
    "sys.stderr.write(json.dumps(env) + ' learned: ' + text + ' ' + repr(text))\n"
    "sys.exit(1)\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        "S3_SECRET": S3_SECRET,
        "S3_KEY_ID": S3_KEY_ID,
        "OTHER_SECRET": OTHER_SECRET,
        "NOT_FOR_JOBS": "the pond process's own setting",
        "HOME": str(tmp_path),
        "TZ": "Europe/Oslo",
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "LC_TIME": "C.UTF-8",
    }


def _bucket_text(server: S3Server, bucket: str) -> str:
    """Every object of the bucket, plus the decoded rows of every Parquet object."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    chunks: list[str] = []
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    assert keys, "nothing was pushed to the bucket"
    for key in keys:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        chunks.append(data.decode("utf-8", "replace"))
        if key.endswith(".parquet"):
            chunks.append(repr(pq.read_table(io.BytesIO(data)).to_pylist()))
    return "\n".join(chunks)


def _assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert not _leaks(secret, text), f"{secret!r} in {where}: {_leaks(secret, text)}"


def test_job_environment_is_small_and_no_secret_is_kept_anywhere(
    tmp_path: Path, s3_server: S3Server
) -> None:
    root, fbackup = tmp_path / "pond", tmp_path / "fbackup"
    env = _env(tmp_path)
    seen, learned = tmp_path / "seen.jsonl", tmp_path / "learned.txt"
    learned.write_text(" ".join(SECRETS))
    outputs: list[subprocess.CompletedProcess[bytes]] = []

    def pond(*args: object, check: int = 0) -> subprocess.CompletedProcess[bytes]:
        proc = run_pond(*args, pond=root, env=env, check=check)
        outputs.append(proc)
        return proc

    Pond.create(root)
    s3 = s3_remote_on(s3_server)
    pond(
        "backup", "add", "s3", s3.url, "--endpoint", s3_server.endpoint, "--region", REGION,
        "--access-key-id", "${env:S3_KEY_ID}", "--secret-access-key", "${env:S3_SECRET}",
        "--allow-http",
    )  # fmt: skip
    pond("backup", "add", "file", f"file://{fbackup}")
    # another node whose config resolves a secret
    other = tmp_path / "other.yaml"
    other.write_text("message: '${env:OTHER_SECRET}'\n")
    pond("mknod", "test-executor", "/jobs/other", "--config-path", other)
    pond("run", "/jobs/other")
    # the job: a post-commit task (run by its own mknod and by the write), and by `pond run`
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "command": [sys.executable, "-c", LEAKY_JOB, str(seen), str(learned)],
                "env": {"MINE": "its own setting"},
            }
        )
    )
    pond("mknod", "command", "/etc/system.d/10-env", "--config-path", job)
    src = tmp_path / "x.txt"
    src.write_text("x")
    copy = pond("copy", f"host://{src}", "/x.txt")
    assert b"10-env" in copy.stderr and b"warning" in copy.stderr
    pond("mknod", "command", "/jobs/env", "--config-path", job)
    run = pond("-v", "site=lab", "run", "/jobs/env", "extra-arg", check=1)
    assert b"\nerror: command exited with status 1" in run.stderr
    pond("recover", "--retry-failed", check=1)
    seq = Pond.open(root).data.last_txn_seq()
    pond("control")
    pond("control", "detail", seq, "--format", "json")
    pond("control", "--sql", "SELECT * FROM control_table")
    pond("push")

    # the job ran seven times (after its mknod, the copy and the second mknod; `pond run`;
    # those three again by recover) and saw only what it may
    runs = [json.loads(line) for line in seen.read_text().splitlines()]
    for got in runs:
        assert set(got) == ALLOWED | FACTS | {"MINE"}, sorted(got)
        assert {k: got[k] for k in ALLOWED} == {k: env[k] for k in ALLOWED - {"PATH"}} | {
            "PATH": os.environ["PATH"]
        }
        assert got["MINE"] == "its own setting" and got["POND"] == str(root)
    assert [r["POND_ATTEMPT"] for r in runs] == ["1", "1", "1", "", "2", "2", "2"]
    assert json.loads(runs[3]["POND_VARS"]) == {"site": "lab"}

    # nothing of any secret anywhere: the pond, both backups, every output
    _assert_clean("$POND", _pond_text(root))
    _assert_clean("the file:// backup", _pond_text(fbackup))
    _assert_clean("the S3 bucket", _bucket_text(s3_server, s3.url.split("/")[2]))
    for proc in outputs:
        _assert_clean(f"output of {proc.args[3:]}", (proc.stdout + proc.stderr).decode())
    # what the job said is there, with the references in place of the values
    failed = [
        r
        for r in Pond.open(root).control.read_all().to_pylist()
        if r["record_type"] == "post_commit_failed"
    ]
    assert failed and all("${env:S3_SECRET}" in r["error_message"] for r in failed)
    assert all("${env:OTHER_SECRET}" in r["error_message"] for r in failed)
    assert b"${env:S3_KEY_ID}" in run.stderr


# Appends its identity to a host file; when ARMED exists it removes it and then waits to
# be killed with the pond (the test kills the pond once the attempt is recorded started).
ID_JOB = (
    "import json, os, sys, time\n"
    "seen, armed = sys.argv[1], sys.argv[2]\n"
    "ids = {k: v for k, v in os.environ.items() if k.startswith('POND')}\n"
    "with open(seen, 'a') as f: f.write(json.dumps(ids) + '\\n')\n"
    "if os.path.exists(armed):\n"
    "    os.remove(armed)\n"
    "    time.sleep(3600)\n"
)


def _started(root: Path) -> list[dict[str, Any]]:
    return [
        r
        for r in Pond.open(root).control.read_all().to_pylist()
        if r["record_type"] == "post_commit_started" and r["config_path"] == "/etc/system.d/20-id"
    ]


def test_job_identity_is_the_control_tables(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    seen, armed = tmp_path / "seen.jsonl", tmp_path / "armed"
    Pond.create(root)
    first = tmp_path / "a.yaml"
    first.write_text("message: a\n")
    run_pond("mknod", "test-executor", "/etc/system.d/10-a", "--config-path", first, pond=root)
    job = tmp_path / "id.yaml"
    job.write_text(json.dumps({"command": [sys.executable, "-c", ID_JOB, str(seen), str(armed)]}))
    run_pond("mknod", "command", "/etc/system.d/20-id", "--config-path", job, pond=root)
    src = tmp_path / "x.txt"
    src.write_text("x")
    run_pond("copy", f"host://{src}", "/x.txt", pond=root)

    # a crash while the job runs: killed once its attempt is recorded started
    armed.write_text("")
    before = len(_started(root))
    proc = subprocess.Popen(
        [*CLI, "--pond", str(root), "copy", f"host://{src}", "/y.txt"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while len(_started(root)) == before or armed.exists():
            assert proc.poll() is None, "the write ended before its job was recorded started"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_seq = max(r["parent_txn_seq"] for r in _started(root))
    report = json.loads(run_pond("recover", "--format", "json", pond=root).stdout)
    assert [(t["parent_txn_seq"], t["execution_seq"], t["attempt"]) for t in report["tasks"]] == [
        (killed_seq, 2, 2)
    ]

    lines = [json.loads(line) for line in seen.read_text().splitlines()]
    ids = [
        (int(e["POND_PARENT_TXN_SEQ"]), int(e["POND_EXECUTION_SEQ"]), int(e["POND_ATTEMPT"]))
        for e in lines
    ]
    started = [(r["parent_txn_seq"], r["execution_seq"], r["attempt"]) for r in _started(root)]
    assert ids == started  # one line per recorded attempt, the same identity
    assert ids[-2:] == [(killed_seq, 2, 1), (killed_seq, 2, 2)]
    for e in lines:  # exactly these facts, and no txn_seq of its own
        assert set(e) == {
            "POND",
            "POND_PARENT_TXN_SEQ",
            "POND_EXECUTION_SEQ",
            "POND_ATTEMPT",
            "POND_ARGS",
            "POND_VARS",
        }


def test_output_is_withheld_when_the_configs_cannot_be_read() -> None:
    from duckpond.factories.base import Secrets

    def broken(_: Secrets) -> None:
        raise OSError("damaged")

    secrets = Secrets(broken)
    assert secrets.redact("") == ""  # nothing said: nothing read
    assert secrets.redact("the job said a secret") == Secrets.WITHHELD
