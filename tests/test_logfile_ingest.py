"""logfile-ingest end to end through the CLI: growth, partial lines, truncation, b3sum,
Python's RotatingFileHandler, and bad configs."""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import os
from pathlib import Path

import pytest
from conftest import run_pond
from logfile_helpers import (
    NODE,
    POND_LOG,
    b3,
    b3sum_lines,
    describe,
    host_bytes,
    host_files,
    host_lines,
    ingest,
    make_node,
    pond_log,
)


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "host"
    d.mkdir()
    return d


def test_growth_across_runs_appends_only_new_lines(pond_dir: Path, logdir: Path) -> None:
    active = logdir / "app.log"
    active.write_bytes(b"one\ntwo\n")
    make_node(pond_dir, logdir)
    out = ingest(pond_dir)
    assert "+8 bytes" in out
    assert pond_log(pond_dir) == b"one\ntwo\n"
    with active.open("ab") as f:
        f.write(b"three\n")
    ingest(pond_dir)
    assert pond_log(pond_dir) == b"one\ntwo\nthree\n"
    # an unchanged host writes nothing: no new version
    assert "no changes" in ingest(pond_dir)
    d = describe(pond_dir)
    assert [v["size"] for v in d["versions"]] == [8, 6]  # type: ignore[index]
    assert d["size"] == 14 and d["type"] == "file:data:physical"
    listed = json.loads(run_pond("list", POND_LOG, "--format", "json", pond=pond_dir).stdout)
    assert listed[0]["size"] == 14 and listed[0]["version"] == 2
    # a version read alone is the log as it was then
    assert run_pond("cat", POND_LOG, "--version", "1", pond=pond_dir).stdout == b"one\ntwo\n"


def test_partial_last_line_waits_for_its_newline(pond_dir: Path, logdir: Path) -> None:
    active = logdir / "app.log"
    active.write_bytes(b"x1\nx2-begin")
    make_node(pond_dir, logdir)
    out = ingest(pond_dir)
    assert "partial last line (8 bytes) waits" in out
    assert pond_log(pond_dir) == b"x1\n"
    with active.open("ab") as f:
        f.write(b"-end\nx3")
    ingest(pond_dir)
    assert pond_log(pond_dir) == b"x1\nx2-begin-end\n"
    versions = describe(pond_dir)["versions"]
    assert [v["size"] for v in versions] == [3, 13]  # type: ignore[index]
    # the pond's lines parse whole: no version starts mid-line
    lines = pond_log(pond_dir).decode().splitlines()
    assert lines == ["x1", "x2-begin-end"]


def test_truncation_is_said_and_the_new_content_follows(pond_dir: Path, logdir: Path) -> None:
    active = logdir / "app.log"
    active.write_bytes(b"old-1\nold-2\nold-3\n")
    make_node(pond_dir, logdir)
    ingest(pond_dir)
    active.write_bytes(b"new-1\n")  # truncated in place, no archive
    out = ingest(pond_dir)
    notes = [line for line in out.splitlines() if "truncated or rewritten" in line]
    assert len(notes) == 1 and "warning:" in notes[0] and str(active) in notes[0]
    assert pond_log(pond_dir) == b"old-1\nold-2\nold-3\nnew-1\n"
    with active.open("ab") as f:
        f.write(b"new-2\n")
    out = ingest(pond_dir)
    assert "truncated" not in out
    assert pond_log(pond_dir) == b"old-1\nold-2\nold-3\nnew-1\nnew-2\n"


def test_same_size_rewrite_is_noticed(pond_dir: Path, logdir: Path) -> None:
    active = logdir / "app.log"
    active.write_bytes(b"alpha\nbravo\n")
    make_node(pond_dir, logdir)
    ingest(pond_dir)
    active.write_bytes(b"ALPHA\nBRAVO\n")
    assert "truncated or rewritten" in ingest(pond_dir)
    assert pond_log(pond_dir) == b"alpha\nbravo\nALPHA\nBRAVO\n"


def test_rotating_file_handler(pond_dir: Path, logdir: Path) -> None:
    """Python's RotatingFileHandler renames app.log -> app.log.1 -> app.log.2 ...; runs
    between rounds of writes, some rounds rotating several times."""
    active = logdir / "app.log"
    handler = logging.handlers.RotatingFileHandler(active, maxBytes=300, backupCount=100)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_logfile_ingest.rfh")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("line 0 start")
        make_node(pond_dir, logdir)
        n = 1
        for round_lines in (3, 10, 0, 25, 1, 60, 2):
            for _ in range(round_lines):
                logger.info("line %d of the rotating log, padded to rotate often", n)
                n += 1
            handler.flush()
            ingest(pond_dir)
            assert pond_log(pond_dir) == host_lines(logdir)
        assert len(host_files(logdir)) > 10  # it did rotate, many times
        # b3sum: one line per generation, the same hashes as the host files'
        sums = b3sum_lines(pond_dir)
        assert {d for d, _ in sums} == {b3(host_bytes(p)) for p in host_files(logdir)}
        assert sums[-1] == (b3(active.read_bytes()), str(active))
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_b3sum_lines_check_against_the_host_files(pond_dir: Path, logdir: Path) -> None:
    active = logdir / "app.log"
    active.write_bytes(b"a\nb\n")
    make_node(pond_dir, logdir)
    assert run_pond("run", NODE, "b3sum", pond=pond_dir).stdout == b""  # nothing yet
    ingest(pond_dir)
    with active.open("ab") as f:
        f.write(b"c\n")
    active.rename(logdir / "app.log.1")
    active.write_bytes(b"d\n")
    ingest(pond_dir)
    sums = b3sum_lines(pond_dir)
    # `b3sum --check` of these lines from anywhere: each names a host file and its hash
    assert sums == [
        (b3(b"a\nb\nc\n"), str(logdir / "app.log.1")),
        (b3(b"d\n"), str(active)),
    ]
    for digest, path in sums:
        assert b3(Path(path).read_bytes()) == digest
    # b3sum writes nothing
    assert [v["version"] for v in describe(pond_dir)["versions"]] == [1, 2]  # type: ignore[index]


def test_first_run_takes_existing_archives_oldest_first(pond_dir: Path, logdir: Path) -> None:
    (logdir / "app.log.3.gz").write_bytes(gzip.compress(b"gen1\n"))
    (logdir / "app.log.2").write_bytes(b"gen2\n")
    (logdir / "app.log.1").write_bytes(b"gen3\n")
    (logdir / "app.log").write_bytes(b"gen4\n")
    # modification times in rotation order (the oldest first)
    for i, name in enumerate(["app.log.3.gz", "app.log.2", "app.log.1", "app.log"]):
        os.utime(logdir / name, ns=(1_000_000_000 * (i + 1),) * 2)
    make_node(pond_dir, logdir)
    ingest(pond_dir)
    assert pond_log(pond_dir) == b"gen1\ngen2\ngen3\ngen4\n"


@pytest.mark.parametrize(
    "config, reason",
    [
        ("active_pattern: /x/app.log\npond_path: /logs\n", "needs 'archived_pattern'"),
        (
            "archived_pattern: /x/a.*\nactive_pattern: /x/a\npond_path: /l\ncolour: red\n",
            "unknown config key(s): colour",
        ),
        ("archived_pattern: ''\nactive_pattern: /x/a\npond_path: /l\n", "must not be empty"),
        ("archived_pattern: /x/a.*\nactive_pattern: /x/a\npond_path: l\n", "absolute pond"),
        ("archived_pattern: [1]\nactive_pattern: /x/a\npond_path: /l\n", "must be a string"),
    ],
)
def test_bad_config_is_refused(pond_dir: Path, tmp_path: Path, config: str, reason: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(config)
    before = run_pond("list", "--format", "json", pond=pond_dir).stdout
    p = run_pond("mknod", "logfile-ingest", NODE, "--config-path", cfg, pond=pond_dir, check=1)
    err = p.stderr.decode()
    assert err.startswith("error: ") and reason in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert run_pond("list", "--format", "json", pond=pond_dir).stdout == before


def test_unknown_subcommand_is_an_error(pond_dir: Path, logdir: Path) -> None:
    (logdir / "app.log").write_bytes(b"a\n")
    make_node(pond_dir, logdir)
    p = run_pond("run", NODE, "frobnicate", pond=pond_dir, check=1)
    assert b"unknown command 'frobnicate'" in p.stderr and b"Traceback" not in p.stderr
    assert run_pond("cat", POND_LOG, pond=pond_dir, check=1).returncode == 1  # nothing written


def test_same_name_in_two_directories_is_refused(pond_dir: Path, tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "app.log").write_bytes(b"x\n")
    cfg = tmp_path / "two.yaml"
    cfg.write_text(
        f"archived_pattern: {tmp_path}/*/app.log.*\n"
        f"active_pattern: {tmp_path}/*/app.log\npond_path: /logs/app\n"
    )
    run_pond("mknod", "logfile-ingest", NODE, "--config-path", cfg, pond=pond_dir)
    p = run_pond("run", NODE, pond=pond_dir, check=1)
    assert b"have the same name" in p.stderr


def test_a_zstd_archive_gives_the_missed_tail(pond_dir: Path, logdir: Path) -> None:
    """logrotate with `compresscmd zstd` names archives .zst: a rotation between two runs is
    followed into one, as into .gz, .bz2 and .xz archives."""
    import pyarrow as pa

    active = logdir / "app.log"
    active.write_bytes(b"one\n")
    make_node(pond_dir, logdir)
    ingest(pond_dir)
    with active.open("ab") as f:
        f.write(b"two\n")  # written after the run, then rotated and compressed
    with pa.CompressedOutputStream(str(logdir / "app.log.1.zst"), "zstd") as z:
        z.write(active.read_bytes())
    active.write_bytes(b"three\n")
    out = ingest(pond_dir)
    assert "app.log.1.zst" in out
    assert pond_log(pond_dir) == b"one\ntwo\nthree\n"
