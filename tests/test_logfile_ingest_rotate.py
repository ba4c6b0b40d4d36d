"""logfile-ingest against Debian's logrotate (copytruncate and create, with and without
compress), and SIGKILL at crash points during ingest: every host line exactly once."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from conftest import run_pond
from logfile_helpers import (
    LOGROTATE,
    NODE,
    b3,
    b3sum_lines,
    host_bytes,
    host_files,
    host_lines,
    ingest,
    logrotate,
    make_node,
    pond_log,
)

needs_logrotate = pytest.mark.skipif(
    LOGROTATE is None,
    reason="logrotate is not installed (apt-get install logrotate; .ci/run installs it)",
)


class Writer:
    """An application appending numbered lines to the active file (reopened per write, as
    an app that reopens its log after rotation does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0

    def write(self, count: int, partial: bytes = b"") -> None:
        with self.path.open("ab") as f:
            for _ in range(count):
                self.n += 1
                f.write(f"{self.n:06d} something happened in the application\n".encode())
            f.write(partial)


@needs_logrotate
@pytest.mark.parametrize("mode", ["create", "copytruncate"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compress"])
def test_logrotate(pond_dir: Path, tmp_path: Path, mode: str, compress: bool) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        f"{logdir}/app.log {{\n  rotate 50\n  {mode}\n"
        f"  {'compress' if compress else 'nocompress'}\n  missingok\n}}\n"
    )
    state = tmp_path / "logrotate.state"
    app = Writer(logdir / "app.log")
    app.write(5)
    make_node(pond_dir, logdir)
    ingest(pond_dir)
    assert pond_log(pond_dir) == host_lines(logdir)

    # lines written after the last run, then a rotation: the missed tail comes from the archive
    app.write(7)
    logrotate(conf, state)
    app.write(3)
    out = ingest(pond_dir)
    assert "rotated to" in out and "truncated" not in out
    assert pond_log(pond_dir) == host_lines(logdir)

    # two rotations between runs, the last line partial
    app.write(4)
    logrotate(conf, state)
    app.write(6)
    logrotate(conf, state)
    app.write(2, partial=b"000099 half a li")
    out = ingest(pond_dir)
    assert "newer archive(s) whole" in out and "waits for its newline" in out
    assert pond_log(pond_dir) == host_lines(logdir)
    if compress:
        assert any(p.suffix == ".gz" for p in host_files(logdir))
    app.write(1)  # completes the partial line
    ingest(pond_dir)
    expected = host_lines(logdir)
    assert pond_log(pond_dir) == expected
    # every line once; the partial one was completed by the next write
    assert expected.count(b"\n") == app.n and expected.count(b"half a li") == 1

    # b3sum: one line per generation, with the hashes of the host files' content
    sums = b3sum_lines(pond_dir)
    assert sorted(d for d, _ in sums) == sorted(b3(host_bytes(p)) for p in host_files(logdir))


CRASH_POINTS = ["logfile_after_append", "before_data_commit", "after_data_commit"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_during_ingest_then_rerun_gives_every_line_once(
    pond_dir: Path, tmp_path: Path, point: str
) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    app = Writer(logdir / "app.log")
    crash = {"POND_CRASH_AT": point}

    app.write(3)
    make_node(pond_dir, logdir)
    # killed during the first ingest
    run_pond("run", NODE, pond=pond_dir, env=crash, check=-9)
    ingest(pond_dir)
    assert pond_log(pond_dir) == host_lines(logdir)

    # killed during an append, more lines before the re-run
    app.write(4, partial=b"half")
    run_pond("run", NODE, pond=pond_dir, env=crash, check=-9)
    app.write(2)
    ingest(pond_dir)
    assert pond_log(pond_dir) == host_lines(logdir)

    # killed during the run that sees a rotation (renamed, then compressed)
    app.write(3)
    (logdir / "app.log").rename(logdir / "app.log.1")
    app.write(2)
    run_pond("run", NODE, pond=pond_dir, env=crash, check=-9)
    archive = logdir / "app.log.1"
    (logdir / "app.log.1.gz").write_bytes(gzip.compress(archive.read_bytes()))
    shutil.copystat(archive, logdir / "app.log.1.gz")
    archive.unlink()
    app.write(1)
    ingest(pond_dir)
    ingest(pond_dir)  # and nothing twice
    data = pond_log(pond_dir)
    assert data == host_lines(logdir)
    assert data.count(b"\n") == app.n and data.count(b"half") == 1  # every line once
    numbers = [line.removeprefix(b"half")[:6] for line in data.splitlines()]
    assert numbers == [f"{i:06d}".encode() for i in range(1, app.n + 1)]
