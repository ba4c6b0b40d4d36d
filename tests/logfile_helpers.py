"""Shared helpers of the logfile-ingest tests: a pond with one node, and the host's view."""

from __future__ import annotations

import bz2
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import blake3
from conftest import run_pond

from duckpond.pond import Pond

NODE = "/etc/jobs/logs"
# Debian installs it in /usr/sbin, not on every user's PATH
LOGROTATE = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
POND_LOG = "/logs/app/app.log"


# Set-up and read-back go through the library (`pond mknod`, `cat` and `describe` are
# tested through the CLI elsewhere; here they cost a `pond` process each, not the subject);
# `pond run NODE`, the subject, stays a real CLI process.
def make_node(pond: Path, logdir: Path, name: str = "app.log") -> None:
    cfg = logdir.parent / "logfile.yaml"
    cfg.write_text(
        f"archived_pattern: {logdir}/{name}.*\n"
        f"active_pattern: {logdir}/{name}\n"
        "pond_path: /logs/app\n"
    )
    Pond.open(pond).mknod("logfile-ingest", NODE, cfg.read_bytes())


def ingest(pond: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`pond run NODE`; its log lines (stderr) as text."""
    return run_pond("run", NODE, *args, pond=pond, env=env).stderr.decode()


def pond_log(pond: Path, path: str = POND_LOG) -> bytes:
    return Pond.open(pond).read_bytes(path)


def host_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".bz2":
        return bz2.decompress(path.read_bytes())
    return path.read_bytes()


def rotation_number(path: Path, active: str) -> int:
    m = re.match(re.escape(active) + r"\.(\d+)", path.name)
    return int(m.group(1)) if m else 0


def host_files(logdir: Path, active: str = "app.log") -> list[Path]:
    """The archives, oldest first (the highest number is the oldest, as logrotate and
    RotatingFileHandler number them), then the active file."""
    archives = [p for p in logdir.iterdir() if p.name.startswith(active + ".")]
    archives.sort(key=lambda p: -rotation_number(p, active))
    active_path = logdir / active
    return archives + ([active_path] if active_path.exists() else [])


def host_lines(logdir: Path, active: str = "app.log") -> bytes:
    """Every complete line of the host files, in order (a partial last line of the active
    file waits for its newline)."""
    data = b"".join(host_bytes(p) for p in host_files(logdir, active))
    return data[: data.rfind(b"\n") + 1]


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def b3sum_lines(pond: Path) -> list[tuple[str, str]]:
    out = run_pond("run", NODE, "b3sum", pond=pond).stdout.decode()
    pairs = []
    for line in out.splitlines():
        digest, path = line.split("  ", 1)
        pairs.append((digest, path))
    return pairs


def describe(pond: Path, path: str = POND_LOG) -> dict[str, object]:
    """`pond describe PATH --format json`, as the CLI prints it (`default=str`)."""
    out: dict[str, object] = json.loads(
        json.dumps(Pond.open(pond).describe(path).to_json(), default=str)
    )
    return out


def logrotate(conf: Path, state: Path) -> None:
    assert LOGROTATE is not None
    subprocess.run([LOGROTATE, "-f", "-s", str(state), str(conf)], check=True, capture_output=True)
