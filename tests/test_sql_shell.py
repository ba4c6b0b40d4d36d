"""The interactive `pond sql` shell, driven through a real pseudo-terminal: the real CLI in
a subprocess whose stdin, stdout and stderr are the pty's slave end. Every step waits for
the prompt to come back (no sleeps)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import termios
from pathlib import Path

import pytest
from conftest import CLI, cli_env

from duckpond.cli.render import human_size
from duckpond.pond import Pond

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")
PROMPT = b"pond> "
MORE = b"  ...> "
# a deadline that only stops a hung shell from hanging the suite; never a speed assertion
HANG = 120.0


def _controlling_terminal() -> None:
    """In the child: a session of its own with the pty as its terminal, so Ctrl-C typed
    there is a SIGINT to it, as in a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PtyShell:
    def __init__(self, pond: Path, state: Path, *args: str) -> None:
        master, slave = os.openpty()
        env = cli_env({"XDG_STATE_HOME": str(state), "TERM": "xterm", "NO_COLOR": "1"})
        env["COLUMNS"] = "100"
        self.proc = subprocess.Popen(
            [*CLI, "--pond", str(pond), "sql", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.master = master
        self.pending = b""

    def until(self, marker: bytes) -> str:
        """What the shell printed up to and including `marker` (escape codes dropped)."""
        while marker not in ANSI.sub(b"", self.pending):
            ready, _, _ = select.select([self.master], [], [], HANG)
            assert ready, f"no {marker!r} from the shell; so far: {self.pending!r}"
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            assert chunk, f"the shell ended before {marker!r}; so far: {self.pending!r}"
            self.pending += chunk
        clean = ANSI.sub(b"", self.pending)
        cut = clean.index(marker) + len(marker)
        self.pending = b""
        assert not clean[cut:], clean[cut:]  # the shell waits at the prompt: nothing after it
        return clean[:cut].decode()

    def type(self, line: str, marker: bytes = PROMPT) -> str:
        os.write(self.master, line.encode() + b"\n")
        out = self.until(marker)
        echoed = line + "\n"
        assert out.startswith(echoed), out  # the terminal echoes what was typed
        return out[len(echoed) :]

    def finish(self) -> int:
        code = self.proc.wait(HANG)
        os.close(self.master)
        return code


@pytest.fixture
def pond(tmp_path: Path) -> Path:
    host = tmp_path / "t.csv"
    host.write_text("time,value\n2024-01-01T00:00:00Z,1.5\n2024-01-01T01:00:00Z,2.5\n")
    root = tmp_path / "pond"
    made = Pond.create(root)  # the library: the shell, not the loading, is under test
    made.copy_in([f"host+csv+series://{host}"], "/sensors/a", parents=True)
    made.copy_in([f"host+csv+series://{host}"], "/sensors/b")
    return root


def test_a_session(pond: Path, tmp_path: Path) -> None:
    shell = PtyShell(pond, tmp_path / "state")
    banner = shell.until(PROMPT)
    assert banner == "pond sql: end statements with ';'; .help for commands, .quit to leave\npond> "
    # a statement over three lines: the continuation prompt until the ';'
    assert shell.type("SELECT filename, sum(value) AS total", MORE) == "  ...> "
    assert shell.type("FROM '/sensors/*'", MORE) == "  ...> "
    out = shell.type("GROUP BY filename ORDER BY filename;")
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [" ".join(r.strip("│ ").split()) for r in rows] == [
        "/sensors/a │ 4.0",
        "/sensors/b │ 4.0",
    ]
    assert out.endswith("2 rows\npond> ")
    sizes = {e.path: human_size(e.size) for e in Pond.open(pond).sql_tables()}
    tables = shell.type(".tables")
    assert [" ".join(r.strip("│ ").split()) for r in tables.splitlines() if "│" in r] == [
        f"/sensors/a │ series │ 1 │ {sizes['/sensors/a']}",
        f"/sensors/b │ series │ 1 │ {sizes['/sensors/b']}",
    ]
    assert "┃ path " in tables and tables.endswith("2 rows\npond> ")
    assert shell.type(".schema /sensors/a") == (
        "  time: timestamp[us, tz=UTC]\n  value: double\npond> "
    )
    # an error is one line, and the shell goes on
    assert shell.type("SELECT * FROM sensors;") == (
        "error: no table sensors: quote a pond path, FROM '/dir/file' (in /: /sensors/)\npond> "
    )
    assert shell.type("DROP TABLE x;") == (
        "error: only read-only queries are allowed: DDL (DROP) is refused\npond> "
    )
    assert shell.type(".nope") == (
        "error: unknown command .nope: .tables, .schema, .help or .quit\npond> "
    )
    assert shell.type("SELECT 41 + 1 AS answer;").endswith("│     42 │\n└────────┘\n1 row\npond> ")
    os.write(shell.master, b".quit\n")
    assert shell.finish() == 0
    # the history file holds each statement on one line, the multi-line one joined
    history = (tmp_path / "state" / "pond" / "sql_history").read_text().splitlines()
    assert history == [
        "SELECT filename, sum(value) AS total FROM '/sensors/*' GROUP BY filename ORDER BY "
        "filename;",
        ".tables",
        ".schema /sensors/a",
        "SELECT * FROM sensors;",
        "DROP TABLE x;",
        ".nope",
        "SELECT 41 + 1 AS answer;",
        ".quit",
    ]


def test_history_is_recalled_in_the_next_session_and_ctrl_d_leaves(
    pond: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = PtyShell(pond, state)
    first.until(PROMPT)
    first.type("SELECT count(*) AS n FROM '/sensors/a';")
    os.write(first.master, b"\x04")  # Ctrl-D at an empty line
    assert first.finish() == 0

    second = PtyShell(pond, state)
    second.until(PROMPT)
    os.write(second.master, b"\x1b[A\n")  # up arrow: the last statement, then Enter
    out = second.until(b"1 row\npond> ")
    assert "SELECT count(*) AS n FROM '/sensors/a';" in out
    assert "│ 2 │" in out
    os.write(second.master, b"\x04")
    assert second.finish() == 0


def test_ctrl_c_stops_a_running_query_and_the_shell_goes_on(pond: Path, tmp_path: Path) -> None:
    shell = PtyShell(pond, tmp_path / "state", "--timeout", "0")  # no time limit
    shell.until(PROMPT)
    shell.type("SELECT 1 AS warm;")  # everything a statement needs is loaded now
    endless = "SELECT count(*) AS n FROM range(1000000000000) AS r WHERE r.range % 7 = 9;"
    os.write(shell.master, endless.encode() + b"\n")
    # the query is running once the shell has spent a second of CPU since Enter
    # (an idle shell spends none): wait for that, then press Ctrl-C
    start = cpu_seconds(shell.proc.pid)
    while cpu_seconds(shell.proc.pid) < start + 1.0:
        assert shell.proc.poll() is None
        ready, _, _ = select.select([shell.master], [], [], 0.05)  # the echo, kept
        if ready:
            shell.pending += os.read(shell.master, 65536)
    os.write(shell.master, b"\x03")
    out = shell.until(PROMPT)
    assert out.endswith("error: interrupted\npond> "), out
    assert shell.type("SELECT 6 * 7 AS answer;").endswith("│     42 │\n└────────┘\n1 row\npond> ")
    os.write(shell.master, b".quit\n")
    assert shell.finish() == 0
