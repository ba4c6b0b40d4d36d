"""`pond`: the command group and the process around it.

Each command parses its arguments, calls the library, renders; they live by what they serve:
files.py, factories.py, steward.py, remotes.py, site.py, ... (the group, shared options and
the table of which module defines which command: app.py; what they print: render.py; the
progress bar: progress.py).
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import PondError
from . import app, keep_pandas_out
from .app import COMMAND_MODULES, cli

__all__ = ["COMMAND_MODULES", "cli", "main"]

# The command modules are not imported here: the group imports the one a command needs
# (app.COMMANDS), so `pond cat` loads files.py alone.


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and end the process without interpreter teardown.

    Native libraries (deltalake, DataFusion) keep runtime threads that, destroyed during
    interpreter shutdown, occasionally abort the process ("terminate called without an
    active exception", exit 134) after the command's work is done. Every exit path flushes
    the standard streams and leaves with os._exit, so the exit code is always the command's.
    """
    try:
        _run(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    else:
        code = 0
    from ..query.limits import remove_spill_dirs

    remove_spill_dirs()  # os._exit skips atexit: no query's spill files outlive it
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _run(argv: list[str] | None) -> None:
    keep_pandas_out()
    try:
        cli.main(args=argv, prog_name="pond", standalone_mode=False)
    except click.UsageError as e:
        if type(e).__name__.startswith("NoArgsIsHelp"):
            click.echo(e.ctx.get_help() if e.ctx else e.format_message())
            sys.exit(0)
        click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except PondError as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(e.exit_code)
    except (app.BrokenPipe, BrokenPipeError) as e:
        if not (e.stdout_closed if isinstance(e, app.BrokenPipe) else app.stdout_closed()):
            click.echo(f"error: {e}", err=True)  # another pipe (a child's, a socket)
            sys.exit(1)
        # The reader stopped reading (`pond cat ... | head`): it has what it wanted, so
        # exit 0, quietly (pipefail scripts do not fail on it); the rest is discarded.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except MemoryError:  # past the process bound that --memory-limit sets (query/limits.py)
        click.echo(
            "error: out of memory: past the memory limit (raise it with --memory-limit SIZE)",
            err=True,
        )
        sys.exit(1)
    except OSError as e:
        click.echo(
            f"error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": "), err=True
        )
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - the last resort still prints one line
        if os.environ.get("POND_DEBUG"):
            raise
        click.echo(
            f"error: internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            " (POND_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)
