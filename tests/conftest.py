"""Shared fixtures: a fresh pond in tmp_path, and the real CLI in a subprocess."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from launcher import Launcher

from duckpond.pond import Pond

CLI = [sys.executable, "-m", "duckpond.cli"]


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without pond settings, plus `env`."""
    out = {k: v for k, v in os.environ.items() if k not in ("POND", "POND_CRASH_AT")}
    out.update(env or {})
    return out


# Started on the first run_pond of a test process, stopped at its end (pytest_sessionfinish).
LAUNCHER = Launcher(cli_env())


def run_pond(
    *args: object,
    pond: Path | str | None = None,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    check: bool | int | None = True,
    timeout: float = 120,
    exec: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run `pond ARGS` in a subprocess; stdout/stderr are bytes.

    `pond` adds `--pond PATH`. `check`: True = exit 0 is required, an int = that exit code,
    False/None = not checked. The process is forked from a server that has the third-party
    libraries loaded (tests/forkserver.py); `exec=True` runs a freshly exec'd interpreter,
    for what depends on how a process starts (what it imports, in which order).
    """
    cli_args = [*(["--pond", str(pond)] if pond is not None else []), *map(str, args)]
    if isinstance(input, str):
        input = input.encode()
    proc = None if exec else LAUNCHER.run(cli_args, input, cli_env(env), timeout)
    if proc is None:
        LAUNCHER.execd += 1
        argv = [*CLI, *cli_args]
        proc = subprocess.run(
            argv, input=input, env=cli_env(env), capture_output=True, timeout=timeout
        )
    want = 0 if check is True else check
    if want is not None and want is not False:
        assert proc.returncode == want, (
            f"pond {' '.join(map(str, args))} exited {proc.returncode}, expected {want}\n"
            f"stdout: {proc.stdout[:2000]!r}\nstderr: {proc.stderr.decode(errors='replace')}"
        )
    return proc


def pytest_sessionfinish(session: pytest.Session) -> None:
    LAUNCHER.close()
    log = os.environ.get("POND_TEST_LAUNCHER_LOG")  # to measure: how many were forked
    if log:
        with open(log, "a") as f:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            f.write(f"{worker} forked={LAUNCHER.forked} exec'd={LAUNCHER.execd}\n")


@pytest.fixture
def pond_dir(tmp_path: Path) -> Path:
    """A fresh, initialized pond at tmp_path/pond."""
    root = tmp_path / "pond"
    Pond.create(root)
    return root


class PondTemplates:
    """Ponds built once per test process and copied for each test that asks for one.

    A fixture that builds the same pond with several `pond` subprocesses for every test pays
    that cost per test; a copy (shutil.copytree) costs milliseconds and gives each test its
    own pond, built by the same commands. The copy keeps the template's pond id and history:
    only for tests that make no second pond from the same template and compare them.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.built: dict[str, Path] = {}

    def copy(self, name: str, dest: Path, build: Callable[[Path, Path], None]) -> Path:
        """A copy at `dest` of the template `name`, which `build(root, scratch)` makes at
        `root` (with `scratch` for its input files) the first time it is asked for."""
        if name not in self.built:
            where = self.base / name
            scratch = where / "scratch"
            scratch.mkdir(parents=True)
            build(where / "pond", scratch)
            self.built[name] = where / "pond"
        shutil.copytree(self.built[name], dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def pond_templates(tmp_path_factory: pytest.TempPathFactory) -> PondTemplates:
    """Per test process (xdist worker): see PondTemplates."""
    return PondTemplates(tmp_path_factory.mktemp("templates"))


# -- how xdist shares the tests between workers ------------------------------------------------
# xdist's default (`load`) hands out single tests, so a file whose module-scoped fixture builds
# a pond (test_cli_errors.py's runs ~70 CLI commands) builds it once on EVERY worker. Such a
# file goes to one worker whole; every other test is still handed out alone, which balances
# best. (`--dist loadgroup` with xdist_group marks would say the same, but xdist 3.8 renames
# node ids through an attribute pytest 9 no longer reads, so its groups are ignored.)
_MODULE_FIXTURE = re.compile(r"""scope=["'](module|package|class)["']""")


@functools.cache
def _has_shared_fixture(path: Path) -> bool:
    try:
        return bool(_MODULE_FIXTURE.search(path.read_text()))
    except OSError:
        return False


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under the default distribution: a file with a module-scoped fixture is one unit of
    work; any other test is a unit of its own. An explicit other `--dist` is left alone."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    class SharedFixtureFilesWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return file if _has_shared_fixture(root / file) else nodeid

    return SharedFixtureFilesWhole(config, log)  # type: ignore[arg-type]


# The local S3 server and fresh remotes (file:// and s3://) for the remote tests.
# Headless Chromium (`browser`) for the site's browser tests.
from chromium import browser  # noqa: E402, F401
from s3server import remote, s3_remote, s3_server  # noqa: E402, F401
