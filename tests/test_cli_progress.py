"""The CLI's one progress bar: on a terminal a copy of 16 MiB or more and a push show a
transient byte-count bar on stderr; off a terminal nothing of it is printed."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from conftest import CLI, cli_env, run_pond


def _on_a_terminal(*args: object, pond: Path) -> tuple[int, bytes]:
    """Run `pond ARGS` with stderr on a pseudo-terminal; its exit code and what the
    terminal received."""
    master, slave = os.openpty()
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            [*CLI, "--pond", str(pond), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=cli_env(),
            timeout=120,
        )
    finally:
        os.close(slave)
        reader.join()
        os.close(master)
    return proc.returncode, b"".join(received)


def test_a_large_copy_and_a_push_show_the_bar_on_a_terminal_only(
    tmp_path: Path, pond_dir: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(17 << 20))
    code, tty = _on_a_terminal("copy", f"host://{big}", "/big.bin", pond=pond_dir)
    assert code == 0
    assert b"copying" in tty and b"17.8/17.8 MB" in tty

    code, tty = _on_a_terminal(
        "backup", "add", "b1", f"file://{tmp_path / 'backup'}", pond=pond_dir
    )
    assert code == 0
    assert b"pushing" in tty and b"backup b1 attached" in tty

    piped = run_pond("copy", f"host://{big}", "/again.bin", pond=pond_dir)
    assert b"copying" not in piped.stderr and b"pushing" not in piped.stderr
    assert run_pond("cat", "/again.bin", pond=pond_dir).stdout == big.read_bytes()
