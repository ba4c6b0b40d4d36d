"""A pre-loaded launcher for the tests' `pond` processes (docs/developer/testing.md).

Every `pond` process spends ~0.25 s of CPU importing numpy, pyarrow and click before it does
anything; a suite runs ~2,000 of them. The server (this file run as a script, one per pytest
worker) imports only those third-party modules, then forks one child per request. The child
takes the request's stdin/stdout/stderr (passed over a Unix socket, SCM_RIGHTS), cwd, argv
and environment, and runs `python -m duckpond.cli` as the interpreter does (runpy): a real
process with its own pid, whose exit status the server reports as waitpid gives it.

The server never imports anything of duckpond (no pond state or import-time setting is
shared), nor DuckDB (importing it opens a database with a worker thread, which a fork
would leave half alive) nor deltalake (its Rust runtime must never be forked; importing it
saves ~30 ms). It makes the settings `pond`'s entry point makes before pyarrow loads
(cli/launch.py): mimalloc reads MIMALLOC_PURGE_DELAY as pyarrow's library loads.

The client (`Launcher`) falls back to an ordinary exec'd process (returns None) when the
server cannot start or has died, and when a request's environment differs from the server's
in anything but the variables pond reads at run time (POND*, COLUMNS, XDG_*, HOME, ...):
the preloaded libraries and the interpreter read the others as they start.
"""

from __future__ import annotations

import gc
import os
import sys

# What a `pond` process preloads here, in the order the CLI imports them.
PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
    "pyarrow.csv",
    "click",
    "yaml",
    "rich.console",
    "rich.markup",
)
NEVER = ("duckpond", "duckdb", "deltalake")  # checked in the server, and by a test


def _serve(path: str) -> tuple[dict[str, object], list[int]]:
    """Listen at `path`; return only in a forked child, with its request and its 3 fds."""
    import json
    import select
    import signal
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd is what wakes select
    children: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([listener, wake_r, 0], [], [])
        if 0 in ready and not os.read(0, 4096):  # the pytest worker is gone (or done)
            os._exit(0)
        if wake_r in ready:
            while os.read(wake_r, 4096) if _readable(wake_r) else b"":
                pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid)
            try:
                conn.sendall(f"{status}\n".encode())
            except OSError:
                pass
            conn.close()
        if listener in ready:
            conn, _ = listener.accept()
            try:
                request, fds = _receive(conn)
            except (OSError, ValueError):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for sock in (listener, conn, *children.values()):
                    sock.close()
                os.close(wake_r)
                os.close(wake_w)
                return json.loads(request), fds
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            try:
                conn.sendall(f"{pid}\n".encode())
            except OSError:
                pass


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def _receive(conn: object) -> tuple[bytes, list[int]]:
    """A request: 8 bytes of length, then that much JSON; the 3 fds come with the start."""
    import socket

    assert isinstance(conn, socket.socket)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(fds) != 3 or len(data) < 8:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request comes with 3 fds")
    size = int.from_bytes(data[:8], "big")
    body = bytearray(data[8:])
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise ValueError("request cut short")
        body += more
    return bytes(body), fds


def _become(request: dict[str, object], fds: list[int]) -> None:
    """Turn this forked child into the process `python -m duckpond.cli ARGS` would be."""
    import importlib
    import io

    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # dup2 clears close-on-exec: pond's own subprocesses see them
    for fd in fds:
        if fd > 2:
            os.close(fd)
    cwd = str(request["cwd"])
    os.chdir(cwd)
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    args = request["args"]
    assert isinstance(args, list)
    sys.argv = ["-m", *map(str, args)]  # runpy puts the module's path first
    sys.orig_argv = [sys.executable, "-m", "duckpond.cli", *map(str, args)]
    sys.path[:] = _sys_path(cwd)
    for key in [k for k in sys.path_importer_cache if not os.path.isabs(k)]:
        del sys.path_importer_cache[key]
    importlib.invalidate_caches()
    # The standard streams as the interpreter makes them for these fds (Python/pylifecycle.c
    # create_stdio): with -u / PYTHONUNBUFFERED, unbuffered and write-through; else
    # buffered, line-buffered for a terminal (stderr always); newline "\n".
    buffered = not sys.stdout.write_through  # the server's: the same flags and environment
    streams = []
    for fd, mode, name in ((0, "rb", "<stdin>"), (1, "wb", "<stdout>"), (2, "wb", "<stderr>")):
        old = (sys.stdin, sys.stdout, sys.stderr)[fd]  # as made for the same environment
        buffering = 0 if not buffered and fd else -1
        buffer = open(fd, mode, buffering=buffering, closefd=False)  # noqa: SIM115
        raw = buffer if buffering == 0 else buffer.raw  # type: ignore[union-attr]
        raw.name = name  # type: ignore[union-attr]
        text = io.TextIOWrapper(
            buffer,  # type: ignore[arg-type]
            encoding=old.encoding,
            errors=old.errors,
            newline="\n",
            line_buffering=buffered and (fd == 2 or raw.isatty()),
            write_through=not buffered,
        )
        text.mode = mode[0]  # type: ignore[misc]
        streams.append(text)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _pythonpath() -> list[str]:
    """PYTHONPATH's entries as the interpreter puts them on sys.path: absolute against the
    working directory it starts in."""
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return [os.path.abspath(e) for e in entries if e]


def _pth_entries() -> list[str]:
    """The directories site-packages' .pth files add (site.addpackage): an editable
    install's source directory, which site skips when PYTHONPATH already put it first."""
    import site

    found = []
    for folder in site.getsitepackages():
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for line in f:
                    line = line.rstrip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        path = os.path.abspath(os.path.join(folder, line))
                        if os.path.exists(path):
                            found.append(path)
    return found


def _sys_path(cwd: str) -> list[str]:
    """sys.path as `python -m` started in `cwd` with this environment makes it: the working
    directory, PYTHONPATH (relative entries against `cwd`), the standard library and
    site-packages, then what .pth files add and is not on it yet."""
    here = _pythonpath()
    rest = [p for p in STARTED_PATH[1:] if p not in STARTED_PYTHONPATH]
    rest += [p for p in _pth_entries() if p not in rest]
    return [cwd, *here, *(p for p in rest if p not in here)]


STARTED_PATH = list(sys.path)  # this server's, as it started in its working directory
STARTED_PYTHONPATH = _pythonpath()

if __name__ == "__main__":
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")  # as cli/launch.py, before pyarrow
    gc.set_threshold(200_000, 20, 10)
    for _name in PRELOAD:
        __import__(_name)
    _loaded = [m for m in sys.modules if m.split(".")[0] in NEVER]
    if _loaded:
        sys.exit(f"forkserver: {_loaded} must not be preloaded")
    _request, _fds = _serve(sys.argv[1])
    del _name, _loaded
    _become(_request, _fds)
    del _request, _fds
    import runpy

    # What `python -m duckpond.cli` runs; an exception or SystemExit leaves this script
    # as it would leave the interpreter (traceback, exit code), atexit handlers and all.
    runpy.run_module("duckpond.cli", run_name="__main__", alter_sys=True)
