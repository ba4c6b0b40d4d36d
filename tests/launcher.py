"""The client of tests/forkserver.py: run `pond ARGS` as a forked child of a preloaded server.

`Launcher.run` returns what subprocess.run(capture_output=True) would, or None when the
command must (or can only) run as an ordinary exec'd process: no server (it failed to start
or died), or an environment the preloaded server cannot give (see forkserver.py).
docs/developer/testing.md, "Keeping the suite fast".
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SERVER = Path(__file__).with_name("forkserver.py")
# What `pond` reads at run time, not as the interpreter or a preloaded library starts: a
# request whose environment differs from the server's only here can be forked (pytest
# sets PYTEST_CURRENT_TEST for each test).
RUNTIME_ENV = ("POND", "COLUMNS", "LINES", "XDG_", "HOME", "AWS_", "NO_COLOR", "TERM", "PYTEST_")


def forkable_env(env: dict[str, str], server_env: dict[str, str]) -> bool:
    keys = set(env) | set(server_env)
    return all(k.startswith(RUNTIME_ENV) for k in keys if env.get(k) != server_env.get(k))


class Launcher:
    """One fork server per test process, started on first use; `close` stops it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env  # the server's environment: the tests' own, without pond settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: str | None = None
        self.failed = os.environ.get("POND_TEST_EXEC") == "1"  # every command exec'd
        self.forked = 0  # commands run by the server (a test checks it is used)
        self.execd = 0  # run_pond's commands it exec'd instead (counted by run_pond)
        self.last_pid: int | None = None  # the last forked `pond`
        self.starting = threading.Lock()  # run_pond is called from threads too

    def _start(self) -> bool:
        with self.starting:
            return self._start_once()

    def _start_once(self) -> bool:
        if self.failed:
            return False
        if self.proc is None:
            folder = tempfile.mkdtemp(prefix="pond-fs-")
            self.path = os.path.join(folder, "socket")
            self.proc = subprocess.Popen(
                [sys.executable, str(SERVER), self.path],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(os.path.join(folder, "server.log"), "wb"),  # noqa: SIM115
            )
            assert self.proc.stdout is not None
            ready = self.proc.stdout.readline()  # after its imports, as it listens
            self.proc.stdout.close()
            if ready != b"ready\n":
                self.failed = True
                self.close()
                return False
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the server exits
            self.proc.wait(timeout=60)
            if self.path is not None:
                for name in (self.path, os.path.join(os.path.dirname(self.path), "server.log")):
                    if os.path.exists(name):
                        os.unlink(name)
                os.rmdir(os.path.dirname(self.path))
            self.proc = None

    def run(
        self, args: list[str], input: bytes | None, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[bytes] | None:
        if not forkable_env(env, self.env) or not self._start():
            return None
        assert self.path is not None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
        except OSError:  # the server is gone: nothing was run
            conn.close()
            return None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if input is not None else (0, -1)  # None: inherit, as run()
        body = json.dumps({"args": args, "env": env, "cwd": os.getcwd()}).encode()
        try:
            socket.send_fds(conn, [len(body).to_bytes(8, "big") + body], [in_r, out_w, err_w])
        except OSError:
            for fd in (out_r, out_w, err_r, err_w, *((in_r, in_w) if in_w >= 0 else ())):
                os.close(fd)
            conn.close()
            return None
        for fd in (out_w, err_w, *((in_r,) if in_w >= 0 else ())):
            os.close(fd)
        self.forked += 1
        argv = [sys.executable, "-m", "duckpond.cli", *args]
        with conn:
            return _communicate(self, conn, argv, input, in_w, out_r, err_r, timeout)


def _communicate(
    launcher: Launcher,
    conn: socket.socket,
    argv: list[str],
    input: bytes | None,
    in_w: int,
    out_r: int,
    err_r: int,
    timeout: float,
) -> subprocess.CompletedProcess[bytes]:
    """Feed stdin, read stdout and stderr to their ends, then take the exit status; past
    `timeout`, SIGKILL the child and raise TimeoutExpired, as subprocess.run does."""
    deadline = time.monotonic() + timeout
    pid_line = _line(conn)
    if not pid_line:
        for fd in (out_r, err_r, *((in_w,) if in_w >= 0 else ())):
            os.close(fd)
        raise RuntimeError("the fork server died before it could start the command")
    pid = launcher.last_pid = int(pid_line)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ)
    sel.register(err_r, selectors.EVENT_READ)
    pending = memoryview(input or b"")
    if in_w >= 0 and pending:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    elif in_w >= 0:
        os.close(in_w)  # empty input: EOF at once
        in_w = -1

    def expired() -> subprocess.TimeoutExpired:
        _kill(pid, conn)
        out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
        return subprocess.TimeoutExpired(argv, timeout, out, err)

    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise expired()
            for key, _ in sel.select(left):
                if key.fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[:65536]) :]
                    except BrokenPipeError:
                        pending = pending[:0]  # the child stopped reading: as run() does
                    if not pending:
                        sel.unregister(in_w)
                        os.close(in_w)
                        in_w = -1
                    continue
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
        conn.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            status_line = _line(conn)
        except TimeoutError:
            raise expired() from None
    finally:
        sel.close()
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                os.close(fd)
    if not status_line:
        raise RuntimeError(f"the fork server died while `pond` (pid {pid}) ran")
    code = os.waitstatus_to_exitcode(int(status_line))
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    return subprocess.CompletedProcess(argv, code, out, err)


def _line(conn: socket.socket) -> bytes:
    """One line the server sent (a pid, a wait status); b"" if it closed first. Read a
    byte at a time: nothing of the next line is taken early."""
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            return b""
        line += byte
    return line


def _kill(pid: int, conn: socket.socket) -> None:
    """SIGKILL the child unless its status already came (then its pid may be reused), and
    wait for the server to report its end."""
    conn.setblocking(False)
    try:
        done = conn.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        done = False
    conn.setblocking(True)
    if not done:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    conn.settimeout(60)
    try:
        _line(conn)
    except OSError:
        pass
