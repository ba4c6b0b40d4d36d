"""The `pond` console script: `pond --help` and `pond --version` without importing click.

Importing click costs ~50 ms, most of a `pond --help` process (bench group `startup`,
13a: goal 60 ms). `pond --version` prints a constant. The top-level help (`pond`,
`pond -h`, `pond --help`) is the text click itself renders, cached in the user's cache
directory (`$XDG_CACHE_HOME/duckpond`, else `~/.cache/duckpond`), never in the installed
package: the first request renders it through click and stores it; later ones print the
stored text. The file's name carries what the text depends on: the install (where
duckpond and click live), pond's version and the sources of the CLI and of click (their
sizes and mtimes), and the terminal width click reads (COLUMNS or the terminal's). An edit,
an upgrade or another width renders and stores it anew. Every other command, an
unwritable cache (then click renders the help every time) and any failure here go to
`main.main`.

The process settings a library must not make are made here, for the `pond` process only
(docs/developer/process-settings.md): the allocator's purge delay and the cyclic GC's
thresholds.

Only gc, os and sys are imported here (gc is built in): everything else would cost the
time this saves.
"""

from __future__ import annotations

import gc
import os
import sys

CACHE_PREFIX = "pond-help-"
# The group's options that take a value (cli/main.py), and its flags: `pond --pond P
# --help` is the same help, whatever the values (click runs the eager --help first).
TAKES_VALUE = ("--pond", "-v", "--var", "--wait")
FLAGS = ("-q", "--quiet")
WITH_VALUE = ("--pond=", "--var=", "--wait=")
EAGER = {"--help": "help", "-h": "help", "--version": "version"}


def _eager_request(args: list[str]) -> str | None:
    """What click would only print, "help" or "version": for no arguments, or exactly one
    -h/--help/--version among the group's own options. None for anything else (a
    command, any other option, a missing value): that is left to click."""
    if not args:
        return "help"
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in TAKES_VALUE:
            i += 1  # click takes the next argument as the value, whatever it is
        elif a not in FLAGS and not a.startswith(WITH_VALUE):
            rest.append(a)
        i += 1
    if i > len(args) or len(rest) != 1:  # an option's value missing: click's error
        return None
    return EAGER.get(rest[0])


def main() -> None:
    # pyarrow's default memory pool is mimalloc 3, which keeps freed pages resident for
    # `purge_delay` (1 s) in case they are reused. A pond's upkeep allocates a few MB
    # every few dozen commits, so in a long-lived process the pages of one burst were
    # still held when the next came elsewhere in the arena (bench 12: ~50 MB held for
    # 12 MB in use). mimalloc reads the setting when pyarrow's library loads, so it is set
    # here, before anything imports pyarrow; a value the user set is kept. The library
    # leaves the environment alone: an embedder sets it itself (docs/developer/performance.md
    # "Memory of a long-lived process"; docs/developer/process-settings.md).
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    # A command that lists or reads many entries allocates an object or more per entry
    # (a NodeRow, its attributes, its content loader); with the default thresholds the
    # cyclic GC walks them (and every module's objects) over and over: ~20 % of `pond list
    # '/**'` over 100,000 files (bench 11b). 50,000 left ~6 % of it once the library no
    # longer paused the collector while building rows; 200,000 costs what the pause did
    # (same peak memory). The library leaves the collector alone: an embedder chooses
    # (docs/developer/process-settings.md).
    gc.set_threshold(200_000, 20, 10)
    request = _eager_request(sys.argv[1:])
    if request == "version":
        from .. import __version__

        _print_and_exit(f"pond {__version__}")
    if request == "help":
        path = _help_cache_path()
        text = _read(path) if path else None
        if text is not None:
            _print_and_exit(text)
        from .main import main as full

        if path:
            _store(path, _render_help())
        full()
    from ..query.limits import use_default_database

    # the first query uses the database DuckDB opens at import, not a second one
    # (docs/developer/process-settings.md)
    use_default_database()
    from .main import main as full

    full()


def _print_and_exit(text: str) -> None:
    """As click.echo then `main.main` do: the text and a newline, flush, os._exit(0)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more can be said
        pass
    os._exit(0)


def _columns() -> str:
    """What click's width comes from (shutil.get_terminal_size): COLUMNS, else the
    terminal's columns; used as given, so any width click would compute maps to its own
    text."""
    columns = os.environ.get("COLUMNS", "")
    try:
        return f"{columns}:{os.get_terminal_size(sys.__stdout__.fileno()).columns}"  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return f"{columns}:"


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_mtime_ns:x}.{st.st_size:x}"


def _digest(text: str) -> str:
    """A stable digest without importing hashlib (~6 ms)."""
    digest = 0
    for ch in text.encode():
        digest = (digest * 131 + ch) % (1 << 61)
    return f"{digest:016x}"


def _cache_dir() -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        home = os.path.expanduser("~")
        if home == "~":
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "duckpond")


def _help_cache_path() -> str | None:
    """Where the help text for this install, version, sources and width is kept; None
    when the sources or the cache directory cannot be found (then click renders the help
    every time)."""
    from .. import __version__

    folder = _cache_dir()
    if folder is None:
        return None
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        sources = sorted(os.path.join(here, n) for n in os.listdir(here) if n.endswith(".py"))
        sources.append(os.path.join(os.path.dirname(here), "__init__.py"))  # __version__
        click_dir = next(
            (
                os.path.join(p, "click")
                for p in sys.path
                if p and os.path.isfile(os.path.join(p, "click", "formatting.py"))
            ),
            None,
        )
        if click_dir is None:
            return None
        sources += [os.path.join(click_dir, "core.py"), os.path.join(click_dir, "formatting.py")]
        stamps = "-".join([__version__, *map(_stamp, sources)])
    except OSError:
        return None
    install = _digest(f"{here}\0{click_dir}")
    name = f"{CACHE_PREFIX}{install}-{_digest(stamps)}-{_digest(_columns())}.txt"
    return os.path.join(folder, name)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def _render_help() -> str:
    """The top-level help exactly as click prints it for `pond --help`."""
    from .main import cli

    with cli.make_context("pond", [], resilient_parsing=True) as ctx:
        return ctx.get_help()


def _store(path: str, text: str) -> None:
    """Write the help text atomically (a concurrent reader sees all of it or nothing) and
    drop this install's texts stored for older sources (other widths and other installs
    stay); an unwritable directory stores nothing."""
    folder, name = os.path.split(path)
    install, sources = name.split("-")[2:4]
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        for other in os.listdir(folder):
            if (
                other.startswith(f"{CACHE_PREFIX}{install}-")
                and not other.startswith(f"{CACHE_PREFIX}{install}-{sources}-")
                and not other.endswith(".tmp")
            ):
                os.unlink(os.path.join(folder, other))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
