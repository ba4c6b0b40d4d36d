"""Secret values resolved from `${env:NAME}` never reach the disk or the output (SPEC §4, §8).

A job that echoes its secret (stderr, stdout, an error text) must leave the pond and every
output with the `${env:NAME}` reference instead: checked by scanning every byte under $POND
(and every Parquet file's decoded rows, since compacted files are compressed) and the CLI's
stdout and stderr, for the value and for any long fragment of it."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from steward_helpers import make_pond, mknod, pond_cli, yaml_file

NAME = "POND_TEST_SECRET"
REF = "${env:" + NAME + "}"
# Distinctive, with the characters that change under escaping and whitespace collapsing.
SECRETS = [
    "s3cr3t-Tok3n-9f8e7d6c5b4a",
    "pa55  w0rd\twith 'quote' and back\\slash-77",
]
FRAGMENT = 10  # no piece of the secret this long may appear anywhere


def _fragments(secret: str) -> set[str]:
    parts = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    return {p for p in parts if p.strip() == p and " " not in p}


def _leaks(secret: str, blob: str) -> list[str]:
    return sorted(p for p in _fragments(secret) | {secret} if p in blob)


def _pond_text(root: Path) -> str:
    """Every byte under the pond, plus the decoded rows of every Parquet file."""
    chunks: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        chunks.append(path.read_bytes().decode("utf-8", "replace"))
        if path.suffix == ".parquet":
            chunks.append(repr(pq.ParquetFile(path).read().to_pylist()))
    return "\n".join(chunks)


def _assert_clean(secret: str, root: Path, *outputs: str) -> None:
    text = _pond_text(root)
    assert not _leaks(secret, text), f"secret under $POND: {_leaks(secret, text)}"
    for out in outputs:
        assert not _leaks(secret, out), f"secret in output: {_leaks(secret, out)}\n{out}"


def _outputs(*procs) -> list[str]:
    return [s for p in procs for s in (p.stdout, p.stderr)]


# The job prints the secret on stdout, then twice on stderr among noise placed so that the
# kept tail of stderr (its last 500 characters) starts in the middle of the first one.
JOB = (
    "import os, sys\n"
    "s = os.environ['TOKEN']\n"
    "print('stdout says', s, flush=True)\n"
    "pad = 'y' * (500 - len(s) // 2 - len(s) - 12)\n"
    "sys.stderr.write('x' * 3000 + ' token=' + s + ' ' + pad + ' again=' + s + ' end')\n"
    "sys.exit(3)\n"
)


@pytest.mark.parametrize("secret", SECRETS)
def test_post_commit_job_echoing_its_secret(tmp_path: Path, secret: str) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    env = {NAME: secret}
    config = {
        "command": [sys.executable, "-c", JOB, REF],
        "env": {"TOKEN": REF},
    }
    cfg = yaml_file(tmp_path / "job.yaml", config)
    mk = pond_cli(
        root, "mknod", "command", "/etc/system.d/10-leak", "--config-path", str(cfg), env=env
    )
    src = tmp_path / "x.txt"
    src.write_text("x")
    copy = pond_cli(root, "copy", f"host://{src}", "/x.txt", env=env)
    assert "10-leak" in copy.stderr and REF in copy.stderr  # the warning names the reference
    # retried by recover: the same redaction on that path
    rec = pond_cli(root, "recover", "--retry-failed", env=env, expect=1)  # failed again
    shown = [
        pond_cli(root, "control", "--format", "json", env=env),
        pond_cli(root, "control", "detail", "--txn-seq", "3", "--format", "json", env=env),
        pond_cli(root, "control", "--sql", "SELECT * FROM control_table", env=env),
    ]
    assert REF in shown[0].stdout
    pond_cli(root, "maintain", env=env)  # compacted, checkpointed: still clean
    _assert_clean(secret, root, *_outputs(mk, copy, rec, *shown))


@pytest.mark.parametrize("secret", SECRETS[1:])
def test_pond_run_job_echoing_its_secret(tmp_path: Path, secret: str) -> None:
    root = tmp_path / "pond"
    make_pond(root)
    env = {NAME: secret}
    cfg = yaml_file(
        tmp_path / "job.yaml", {"command": [sys.executable, "-c", JOB], "env": {"TOKEN": REF}}
    )
    mk = pond_cli(root, "mknod", "command", "/jobs/leak", "--config-path", str(cfg), env=env)
    run = pond_cli(root, "run", "/jobs/leak", env=env, expect=1)
    assert run.stderr.splitlines()[-1].startswith("error: command exited with status 3")
    assert REF in run.stderr.splitlines()[-1]
    ctl = pond_cli(root, "control", "--format", "json", env=env)
    assert REF in ctl.stdout
    _assert_clean(secret, root, *_outputs(mk, run, ctl))


@pytest.mark.parametrize("secret", SECRETS)
def test_test_executor_error_texts_hide_the_secret(tmp_path: Path, secret: str) -> None:
    """Its failure message echoes `message`; a content mismatch echoes both sides, cut to
    80 characters (a secret placed across the cut must not leave its first half)."""
    root = tmp_path / "pond"
    pond = make_pond(root)
    mknod(pond, "/etc/system.d/10-fail", {"message": f"msg {REF} end", "fail": True})
    long_expected = "e" * (80 - len(secret) // 2 - 1) + REF
    mknod(
        pond,
        "/etc/system.d/20-check",
        {"file_to_read": "/x.txt", "expected_content": long_expected},
    )
    env = {NAME: secret}
    src = tmp_path / "x.txt"
    src.write_text("x")
    copy = pond_cli(root, "copy", f"host://{src}", "/x.txt", env=env)
    assert "10-fail" in copy.stderr and "20-check" in copy.stderr
    ctl = pond_cli(root, "control", "--format", "json", env=env)
    assert "intentionally failed" in ctl.stdout and REF in ctl.stdout
    _assert_clean(secret, root, *_outputs(copy, ctl))
