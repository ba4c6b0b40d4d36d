"""Shared fixtures: a fresh pond in tmp_path, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from duckpond.pond import Pond

CLI = [sys.executable, "-m", "duckpond.cli"]


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without pond settings, plus `env`."""
    out = {k: v for k, v in os.environ.items() if k not in ("POND", "POND_CRASH_AT")}
    out.update(env or {})
    return out


def run_pond(
    *args: object,
    pond: Path | str | None = None,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    check: bool | int | None = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run `pond ARGS` in a subprocess; stdout/stderr are bytes.

    `pond` adds `--pond PATH`. `check`: True = exit 0 is required, an int = that exit code,
    False/None = not checked.
    """
    argv = [*CLI, *(["--pond", str(pond)] if pond is not None else []), *map(str, args)]
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(argv, input=input, env=cli_env(env), capture_output=True, timeout=timeout)
    want = 0 if check is True else check
    if want is not None and want is not False:
        assert proc.returncode == want, (
            f"pond {' '.join(map(str, args))} exited {proc.returncode}, expected {want}\n"
            f"stdout: {proc.stdout[:2000]!r}\nstderr: {proc.stderr.decode(errors='replace')}"
        )
    return proc


@pytest.fixture
def pond_dir(tmp_path: Path) -> Path:
    """A fresh, initialized pond at tmp_path/pond."""
    root = tmp_path / "pond"
    Pond.create(root)
    return root


# The local S3 server and fresh remotes (file:// and s3://) for the remote tests.
from s3server import remote, s3_remote, s3_server  # noqa: E402, F401
