"""The interactive `pond sql` shell: line editing and history (Python's readline, the
history in $XDG_STATE_HOME/pond/sql_history), statements over several lines ending at `;`,
dot-commands (.tables, .schema, .help, .quit). An error prints one line and the shell goes
on; Ctrl-C drops the statement being typed or stops the running one; Ctrl-D leaves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import PondError

if TYPE_CHECKING:
    from .app import State
    from .sqlrun import SqlRun

PROMPT = "pond> "
CONTINUE = "  ...> "
HISTORY_LENGTH = 1000
GLOB_CHARS = frozenset("*?[")

HELP = """\
End each SQL statement with ';' (it may span lines). Each quoted pond path is a table:
  SELECT * FROM '/weather/EWR' AS e JOIN '/weather/JFK' AS j USING (time_hour);
  SELECT filename, count(*) FROM '/weather/*' GROUP BY ALL;   (a glob: one table)
  SELECT * FROM 'csv:///data/readings.csv';                   (a raw file as CSV)
.tables [PATTERN]   tables and series (under a directory, or matching a glob)
.schema PATH        the columns of a table, series, glob or format URL
.help               this text
.quit               leave (or Ctrl-D)"""


def history_path() -> Path:
    """Where the shell keeps its history: $XDG_STATE_HOME/pond/sql_history, else
    ~/.local/state/pond/sql_history (the XDG base directory default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "pond" / "sql_history"


def _error(message: str) -> None:
    click.echo(f"error: {' '.join(message.split())}", err=True)


class Shell:
    def __init__(self, st: State, run: SqlRun) -> None:
        self.st = st
        self.run = run
        self.history = history_path()

    # -- history -----------------------------------------------------------------------------
    def _load_history(self) -> None:
        import readline

        readline.set_history_length(HISTORY_LENGTH)
        try:
            readline.read_history_file(self.history)
        except OSError:  # none yet, or unreadable: start without
            pass

    def _save_history(self) -> None:
        import readline

        try:
            self.history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(self.history)
        except OSError as e:
            _error(f"history not saved to {self.history}: {e.strerror or e}")

    @staticmethod
    def _as_one_entry(lines: list[str]) -> None:
        """A statement typed over several lines is recalled as one line, when joining them
        keeps its meaning (the history file holds one entry a line)."""
        import readline

        from ..query.multisql import one_line

        joined = one_line(lines) if len(lines) > 1 else None
        if joined is None:
            return
        for _ in lines:
            last = readline.get_current_history_length()
            if last > 0:
                readline.remove_history_item(last - 1)
        readline.add_history(joined)

    # -- the loop ----------------------------------------------------------------------------
    def loop(self) -> None:
        self._load_history()
        click.echo("pond sql: end statements with ';'; .help for commands, .quit to leave")
        try:
            self._read_eval()
        finally:
            self._save_history()

    def _read_eval(self) -> None:
        lines: list[str] = []
        while True:
            try:
                line = input(CONTINUE if lines else PROMPT)
            except EOFError:  # Ctrl-D
                click.echo()
                return
            except KeyboardInterrupt:  # Ctrl-C: drop what was typed
                click.echo()
                lines = []
                continue
            try:
                if not self._take(line, lines):
                    return
            except KeyboardInterrupt:  # Ctrl-C after Enter: whatever it hit, stop it there
                _error("interrupted")
                lines.clear()

    def _take(self, line: str, lines: list[str]) -> bool:
        """Add one typed line; run the statement or dot-command it completes. False when
        it ends the shell."""
        from ..query.multisql import statement_complete

        if not lines and line.strip().startswith("."):
            return self.command(line.strip())
        if not lines and not line.strip():
            return True
        lines.append(line)
        text = "\n".join(lines)
        if statement_complete(text):
            self._as_one_entry(lines)
            lines.clear()
            self.execute(text)
        return True

    def execute(self, text: str) -> None:
        from ..query.multisql import split_statements
        from .sqlrun import run_statement

        for statement in split_statements(text):
            try:
                run_statement(self.st, statement, self.run)
            except PondError as e:
                _error(str(e))
            except KeyboardInterrupt:
                _error("interrupted")
                return

    # -- dot-commands ------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        """Run one dot-command; False when it ends the shell."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if name in (".quit", ".exit"):
                return False
            if name == ".help":
                click.echo(HELP)
            elif name == ".tables":
                self.tables(arg)
            elif name == ".schema":
                self.schema(arg)
            else:
                _error(f"unknown command {name}: .tables, .schema, .help or .quit")
        except PondError as e:
            _error(str(e))
        except KeyboardInterrupt:
            _error("interrupted")
        return True

    def tables(self, pattern: str) -> None:
        import pyarrow as pa

        from . import render

        if not pattern:
            pattern = "/**/*"
        elif not GLOB_CHARS & set(pattern):  # a directory: everything below it
            pattern = pattern.rstrip("/") + "/**/*"
        found = self.st.open().sql_tables(pattern)
        if not found:
            click.echo(f"no tables or series match {pattern}")
            return
        kinds = [_kind(e.type) for e in found]
        listing = pa.table(
            {
                "path": [e.path for e in found],
                "kind": kinds,
                "version": [e.version for e in found],
                "size": [render.human_size(e.size) if e.size else "" for e in found],
            }
        )
        render.table(listing, "table")

    def schema(self, ref: str) -> None:
        if not ref:
            _error(".schema wants a path: .schema /dir/file")
            return
        quoted = "'" + ref.replace("'", "''") + "'"
        empty = self.st.open().sql(
            f"SELECT * FROM {quoted} LIMIT 0",
            timeout=self.run.timeout,
            memory_limit=self.run.memory_limit,
        )
        for field in empty.schema:
            click.echo(f"  {field.name}: {field.type}")


def _kind(file_type: str) -> str:
    from .. import nodes

    kind = "series" if nodes.is_series(file_type) else "table"
    return f"{kind} (derived)" if nodes.is_dynamic(file_type) else kind
