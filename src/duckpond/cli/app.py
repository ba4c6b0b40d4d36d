"""The `pond` command group, its global options and the options several commands share.

The commands register on `cli` from their modules (files, factories, steward, remotes,
site, ...) when imported; the group imports a command's module only when that command is
asked for (COMMANDS below); `main.py` runs the group.
"""

from __future__ import annotations

import errno
import functools
import sys
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import PondUsageError
from ..query import limits

if TYPE_CHECKING:
    import logging
    from pathlib import Path

    from ..pond import Pond

# Only click is imported up front: pyarrow, deltalake, DataFusion, numpy and yaml load when
# a command needs them, so `pond --help` and `pond list` start fast (bench group `startup`).

FORMATS = click.Choice(["table", "json"])


class State:
    def __init__(self, pond: str | None, vars: dict[str, str], wait: float) -> None:
        self.pond_arg = pond
        self.vars = vars
        self.wait = wait
        self.argv = ["pond", *sys.argv[1:]]

    def path(self) -> Path:
        from ..pond import pond_path_from_env

        return pond_path_from_env(self.pond_arg)

    def open(self) -> Pond:
        from ..pond import Pond

        pond = Pond.open(self.path(), wait=self.wait)
        if sys.stderr.isatty():  # a terminal shows which job runs, and for how long
            from .progress import job_status

            pond.on_task = job_status
        return pond


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        if "=" not in v:
            raise PondUsageError(f"--var wants KEY=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k] = val
    return out


class BrokenPipe(Exception):
    """An EPIPE carried past click (which would exit 1 without a word), with whether it
    was stdout's reader that left (`pond cat ... | head`)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.stdout_closed = stdout_closed()


# Where each command is defined: `pond cat` imports files.py alone, not every command module
# (click's lazy-loading pattern, ~10 ms of a small `pond cat --sql`: bench group `engine`).
# A new command module adds its commands here; tests/test_cli_lazy.py checks this table
# against what the modules register, so it cannot go stale.
COMMANDS: dict[str, str] = {
    "apply": "factories",
    "backup": "remotes",
    "cat": "files",
    "control": "steward",
    "copy": "files",
    "describe": "files",
    "detect-overlaps": "series",
    "diff": "undo",
    "export": "export",
    "fsck": "steward",
    "init": "files",
    "list": "files",
    "list-factories": "factories",
    "log": "undo",
    "maintain": "steward",
    "mkdir": "files",
    "mknod": "factories",
    "mv": "undo",
    "pull": "remotes",
    "push": "remotes",
    "rebuild-control": "steward",
    "recover": "steward",
    "remote": "remotes",
    "restore": "remotes",
    "retention": "steward",
    "revert": "undo",
    "rm": "undo",
    "run": "factories",
    "set-temporal-bounds": "series",
    "site": "site",
    "sql": "sql",
    "status": "remotes",
    "tlog": "tlog",
    "verify": "remotes",
}
COMMAND_MODULES: tuple[str, ...] = tuple(sorted(set(COMMANDS.values())))


def load_command_modules(names: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Import command modules of this package (importing one registers its commands)."""
    import importlib

    for name in names:
        importlib.import_module(f"{__package__}.{name}")


class PondGroup(click.Group):
    """The group; a command's module is imported when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # only help, completion and to_info_dict list: every module is loaded, so a command
        # missing from the table is still listed (and the help stays what it was)
        load_command_modules()
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            # a name missing from the table (a module added without its row) still works
            module = COMMANDS.get(cmd_name)
            load_command_modules((module,) if module else COMMAND_MODULES)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise BrokenPipe(e) from None
            raise


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports POLLERR on it), so an
    EPIPE elsewhere (a socket, a child's pipe) stays an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


@click.group(cls=PondGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pond", message="%(prog)s %(version)s")
@click.option("--pond", "pond_path", metavar="PATH", help="The pond directory (else $POND).")
@click.option(
    "-v",
    "--var",
    "vars_",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template variable, recorded with the transaction (repeatable).",
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for another writer's lock instead of failing.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(
    ctx: click.Context, pond_path: str | None, vars_: tuple[str, ...], wait: float, quiet: bool
) -> None:
    """pond: a versioned, SQL-queryable data store on Delta Lake."""
    _setup_logging(quiet)
    ctx.obj = State(pond_path, _parse_vars(vars_), wait)


def log() -> logging.Logger:
    import logging

    return logging.getLogger("pond")


def _setup_logging(quiet: bool) -> None:
    import logging

    class Fmt(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            msg = record.getMessage()
            return f"warning: {msg}" if record.levelno >= logging.WARNING else msg

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Fmt())
    logger = logging.getLogger("pond")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def _memory_limit(_ctx: Any, _param: Any, value: str) -> int | None:
    """--memory-limit: bytes, and the process's own memory bounded by it (limits.py)."""
    size = limits.parse_size(value)
    limits.bound_process_memory(size)
    return size


def query_limits(f: Any) -> Any:
    """`--timeout` and `--memory-limit` (SPEC §7), parsed to seconds/bytes (None = no limit)."""
    f = click.option(
        "--memory-limit",
        metavar="SIZE",
        default=limits.format_size(limits.DEFAULT_MEMORY_LIMIT),
        show_default=True,
        callback=_memory_limit,
        help="Memory a query may use (512M, 2G; 0 = no limit); beyond it, spill or fail.",
    )(f)
    return click.option(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=limits.DEFAULT_TIMEOUT,
        show_default=True,
        callback=lambda _c, _p, v: limits.check_timeout(v),
        help="Seconds a query may run (0 = no limit).",
    )(f)


def s3_options(f: Any) -> Any:
    """The S3 connection options of `backup add`, `remote add` and `restore`, handed to
    the command as one `options: StoreOptions`."""

    @functools.wraps(f)
    def command(
        *args: Any,
        endpoint: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        allow_http: bool,
        timeout: float | None,
        **kwargs: Any,
    ) -> Any:
        from ..storage.objstore import StoreOptions

        options = StoreOptions(
            endpoint, region, access_key_id, secret_access_key, allow_http, timeout
        )
        return f(*args, options=options, **kwargs)

    for decorator in reversed(
        [
            click.option("--endpoint", help="S3 endpoint URL (MinIO, R2, a local server)."),
            click.option("--region", help="S3 region."),
            click.option("--access-key-id", help="S3 access key id (or ${env:NAME})."),
            click.option(
                "--secret-access-key",
                metavar="${env:NAME}",
                help="S3 secret: an ${env:NAME} reference, resolved at use, never stored.",
            ),
            click.option("--allow-http", is_flag=True, help="Allow plain http to the endpoint."),
            click.option(
                "--timeout",
                type=float,
                metavar="SECONDS",
                help="Seconds each S3 request may take before it fails (default 30).",
            ),
        ]
    ):
        command = decorator(command)
    return command
