"""The tests' pre-loaded `pond` launcher (tests/forkserver.py, tests/launcher.py): a forked
`pond` is the process an exec'd one is (output, exit code, signal death, traceback, atexit,
timeout), and run_pond still works when the server is gone or never started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import conftest
import launcher
import pytest
from conftest import LAUNCHER, cli_env, run_pond

from duckpond.pond import Pond

pytestmark = pytest.mark.skipif(
    os.environ.get("POND_TEST_EXEC") == "1", reason="POND_TEST_EXEC=1: every `pond` exec'd"
)


def _both(*args: object, **kw: object) -> tuple[tuple[int, bytes, bytes], ...]:
    """The same command forked and exec'd; the fork must have been used."""
    before = LAUNCHER.forked
    forked = run_pond(*args, check=None, **kw)  # type: ignore[arg-type]
    assert LAUNCHER.forked == before + 1, "run by the fork server"
    execd = run_pond(*args, check=None, exec=True, **kw)  # type: ignore[arg-type]
    return tuple((p.returncode, p.stdout, p.stderr) for p in (forked, execd))


def test_a_forked_pond_is_what_an_execd_one_is(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    Pond.create(root)
    host = tmp_path / "a.csv"
    host.write_text("a,b\n1,2\n3,4\n")
    forked, execd = _both("copy", f"host+csv+table://{host}", "/t", pond=root)
    assert forked == execd == (0, b"", b"")
    forked, execd = _both("copy", f"host+csv+table://{host}", "/u", pond=root)
    assert forked == execd == (0, b"", b"")
    forked, execd = _both("cat", "/t", "--format", "csv", pond=root)
    assert forked == execd == (0, b'"a","b"\n1,2\n3,4\n', b"")
    forked, execd = _both("cat", "/nope", pond=root)
    assert forked == execd == (1, b"", b"error: no such file or directory: /nope\n")
    forked, execd = _both("no-such-command")
    assert forked == execd == (2, b"", b"error: No such command 'no-such-command'.\n")
    statements = b"SELECT 4 AS s; SELECT 2 AS n;"
    forked, execd = _both("sql", "--format", "csv", pond=root, input=statements)  # stdin
    assert forked == execd == (0, b'"s"\n4\n"n"\n2\n', b"")


PROBE = """\
import gc, json, os, sys
def stream(s):
    return [type(s.buffer).__name__, s.name, s.mode, s.encoding, s.errors, s.line_buffering,
            s.write_through, s.isatty(), s.buffer.raw.name if hasattr(s.buffer, "raw") else None]
print(json.dumps({
    "streams": [stream(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
    "dunder": [s is d for s, d in zip((sys.stdin, sys.stdout, sys.stderr),
                                     (sys.__stdin__, sys.__stdout__, sys.__stderr__))],
    "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "gc": gc.get_threshold(),
    "main": sys.modules["__main__"].__spec__.name, "crash": os.environ.get("POND_CRASH_AT"),
    "purge": os.environ.get("MIMALLOC_PURGE_DELAY"), "pond": [
        m for m in sys.modules if m.startswith("duckdb")],
}))
sys.stdout.flush()
os._exit(3)
"""


def test_the_forked_interpreter_is_what_python_m_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen from inside: a duckdb.py in the working directory (first on sys.path) prints
    the standard streams, argv, sys.path[0], the collector's thresholds, the environment."""
    (tmp_path / "duckdb.py").write_text(PROBE)
    host = tmp_path / "a.csv"
    host.write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    args = ("cat", f"host+csv+table://{host}", "--sql", "SELECT 1 AS x")
    forked, execd = _both(*args, env={"POND_CRASH_AT": "nowhere"})
    assert forked == execd
    assert forked[0] == 3 and forked[2] == b""
    seen = json.loads(forked[1])
    main = Path(seen["argv"][0])  # which install: as sys.path finds it from tmp_path
    assert main.is_absolute() and main.parts[-3:] == ("duckpond", "cli", "__main__.py")
    assert seen["argv"][1:] == list(args)
    assert (seen["path0"], seen["cwd"]) == (str(tmp_path), str(tmp_path))
    assert (seen["crash"], seen["purge"], seen["gc"]) == ("nowhere", "0", [200_000, 20, 10])
    assert seen["pond"] == ["duckdb"]


def test_a_crash_point_kills_the_forked_pond_with_sigkill(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    Pond.create(root)
    host = tmp_path / "x.txt"
    host.write_bytes(b"x")
    crash = {"POND_CRASH_AT": "after_data_commit"}
    forked, execd = _both("copy", f"host://{host}", "/x", pond=root, env=crash)
    assert forked == execd == (-signal.SIGKILL, b"", b"")
    assert run_pond("recover", pond=root).returncode == 0


def test_an_uncaught_exception_prints_its_traceback_and_runs_atexit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` puts the working directory first on sys.path: a duckdb.py there is what
    the command imports, in a forked pond too (duckdb is never preloaded)."""
    (tmp_path / "duckdb.py").write_text(
        "import atexit\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "raise RuntimeError('boom from the working directory')\n"
    )
    host = tmp_path / "a.csv"
    host.write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    args = ("cat", f"host+csv+table://{host}", "--sql", "SELECT 1 AS x", "--format", "csv")
    runs = _both(*args, env={"POND_DEBUG": "1"})
    for (code, out, err), how in zip(runs, ("fork", "exec"), strict=True):
        assert (code, out) == (1, b"atexit ran\n"), how
        assert err.startswith(b"Traceback (most recent call last):\n"), how
        assert err.endswith(
            b'    import duckdb\n  File "' + bytes(tmp_path / "duckdb.py") + b'", line 3, '
            b"in <module>\n    raise RuntimeError('boom from the working directory')\n"
            b"RuntimeError: boom from the working directory\n"
        ), how


def test_a_timeout_kills_the_forked_pond(tmp_path: Path) -> None:
    host = tmp_path / "a.csv"
    host.write_text("a\n1\n")
    query = "SELECT count(*) FROM range(1000000000000) a"  # minutes of work
    before = LAUNCHER.forked
    with pytest.raises(subprocess.TimeoutExpired):
        run_pond("cat", f"host+csv+table://{host}", "--sql", query, timeout=1)
    assert LAUNCHER.forked == before + 1
    assert LAUNCHER.proc is not None
    pid = LAUNCHER.last_pid
    assert pid not in (None, LAUNCHER.proc.pid, os.getpid())
    with pytest.raises(ProcessLookupError):  # killed, and reaped by the server
        os.kill(pid, 0)  # type: ignore[arg-type]
    assert run_pond("--version").stdout.startswith(b"pond ")  # the server goes on


def test_run_pond_falls_back_to_exec_when_the_server_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = launcher.Launcher(cli_env())
    monkeypatch.setattr(conftest, "LAUNCHER", own)
    try:
        assert run_pond("--version").stdout.startswith(b"pond ")
        assert own.forked == 1 and own.proc is not None
        own.proc.send_signal(signal.SIGKILL)
        assert own.proc.wait() == -signal.SIGKILL
        root = tmp_path / "pond"
        assert run_pond("init", pond=root).stderr == f"created pond at {root}\n".encode()
        assert own.forked == 1  # exec'd
        assert Pond.open(root).list("/") == []
    finally:
        own.close()


def test_run_pond_falls_back_to_exec_when_the_server_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "SERVER", tmp_path / "missing.py")
    own = launcher.Launcher(cli_env())
    monkeypatch.setattr(conftest, "LAUNCHER", own)
    proc = run_pond("no-such-command", check=2)
    assert proc.stderr == b"error: No such command 'no-such-command'.\n"
    assert own.failed and own.forked == 0 and own.proc is None


def test_the_server_preloads_third_party_libraries_and_nothing_of_pond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = launcher.Launcher(cli_env({"MIMALLOC_VERBOSE": "1"}))  # mimalloc prints its options
    monkeypatch.setattr(conftest, "LAUNCHER", own)
    try:
        assert run_pond("--version", env={"MIMALLOC_VERBOSE": "1"}).stdout.startswith(b"pond ")
        assert own.forked == 1 and own.proc is not None and own.path is not None
        maps = Path(f"/proc/{own.proc.pid}/maps").read_text()
        assert "libarrow.so" in maps and "_multiarray_umath" in maps
        assert "duckdb" not in maps and "deltalake" not in maps
        log = Path(own.path).with_name("server.log").read_text()
        if "mimalloc" in log:  # pyarrow built with mimalloc: it took pond's setting
            assert "option 'purge_delay': 0 " in log
    finally:
        own.close()


def test_an_environment_read_at_start_up_is_exec_d() -> None:
    base = {"PATH": "/bin", "POND_CRASH_AT": "x"}
    assert launcher.forkable_env({"PATH": "/bin", "POND_CRASH_AT": "y", "COLUMNS": "80"}, base)
    assert launcher.forkable_env({"PATH": "/bin"}, base)
    for changed in ({"PATH": "/usr/bin"}, {"MIMALLOC_PURGE_DELAY": "250"}, {"PYTHONPATH": "x"}):
        assert not launcher.forkable_env({**base, **changed}, base)
    before = LAUNCHER.forked
    proc = run_pond("--version", env={"MIMALLOC_VERBOSE": "1"})
    assert LAUNCHER.forked == before  # mimalloc reads it as pyarrow loads: exec'd
    assert proc.stdout.startswith(b"pond ")
