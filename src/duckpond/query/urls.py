"""Source URL parsing (SPEC §7 "URL forms accepted where a source is read").

Grammar: ``[host+]FORMAT[+COMPRESSION][+ENTRYTYPE]:///PATH[?OPTIONS]``, ``host:///PATH``,
``host+table|series[+COMPRESSION]:///PATH`` (Parquet) or a bare pond path (anything without a
scheme). FORMAT is a registered format (duckpond.formats: csv, oteljson, jsonlogs, weblog,
excelhtml, ...), COMPRESSION gzip, zstd or bzip2, ENTRYTYPE table or series (what `copy`
stores; host sources only). OPTIONS are the format's own (`?delimiter=;&header=false`);
an unknown option is an error, never silently ignored. Parsing is purely syntactic: nothing
is opened here, so the CLI can reject a bad argument before it starts a transaction.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from duckpond.errors import PondUsageError

# duckpond.formats (its registry and base classes, ~3 ms) is imported where a URL names a
# format or a compression: `host+table:///x.parquet` and pond paths never load it.

Entry = Literal["table", "series"]

VALID_FORMS = (
    "/pond/path",
    "FORMAT:///pond/path (FORMAT: csv, oteljson, jsonlogs, weblog, excelhtml)",
    "oteljson:///pond/glob-*.json",
    "host:///abs/path",
    "host:rel/path (against the current directory)",
    "host+table:///x.parquet",
    "host+series:///x.parquet",
    "host+FORMAT:///x",
    "host+csv+table:///x.csv",
    "host+oteljson+series:///x.json",
    "(+gzip, +zstd or +bzip2 after the format, e.g. host+csv+gzip+table:///x.csv.gz;"
    " options after ?, e.g. csv:///x.csv?delimiter=;&header=false)",
)

# A scheme is letters first (RFC 3986 style); a pond path starts with '/', so it never matches.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)
_ENTRIES = ("table", "series")
_PARQUET = ("table", "series")
_OPTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^&]*(?:&[A-Za-z_][A-Za-z0-9_]*=[^&]*)*$")


@dataclass(frozen=True)
class SourceURL:
    """A parsed source.

    - ``scheme``: "pond" (a bare pond path), "host" (a host file) or a format name (a pond
      file, or glob of files, read in that format: "csv", "oteljson", ...).
    - ``path``: the absolute host path for "host", the pond path (or glob) otherwise.
    - ``fmt``: how the bytes are interpreted: "raw" (as they are; for a pond path the node's
      own type decides), "table"/"series" (Parquet), or a format name.
    - ``entry``: what a copy stores it as ("table"/"series"), None for raw bytes or a read.
    - ``compression``: input compression to undo before parsing.
    - ``options``: the format's options from the query string, as (name, value) pairs.
    """

    scheme: str
    path: str
    fmt: str = "raw"
    entry: Entry | None = None
    compression: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def is_host(self) -> bool:
        return self.scheme == "host"

    @property
    def format(self) -> str | None:
        """The format the bytes are parsed with; None for raw bytes and Parquet."""
        return None if self.fmt == "raw" or self.fmt in _PARQUET else self.fmt

    def check_storable(self) -> None:
        """Refuse what `copy` (and `pond apply`) cannot store: a format that does not say
        whether it becomes a table or a series (reading one needs no such word)."""
        if self.format is not None and self.entry is None:
            f = self.format
            what = "a CSV" if f == "csv" else f"{f} input"
            raise PondUsageError(
                f"say how to store {what}: host+{f}+table:// or host+{f}+series://"
            )


def _usage(msg: str) -> PondUsageError:
    return PondUsageError(f"{msg}; valid forms: {', '.join(VALID_FORMS)}")


def _split_scheme(url: str) -> tuple[str, str] | None:
    m = _SCHEME_RE.match(url)
    if m is None:
        return None
    return m.group(1).lower(), m.group(2)


def is_host(url: str) -> bool:
    """True when ``url`` names a host file (any ``host`` / ``host+...`` scheme); never raises."""
    split = _split_scheme(url)
    return split is not None and split[0].split("+", 1)[0] == "host"


def _is_format(name: str) -> bool:
    from duckpond import formats

    return name in formats.names()


def _is_compression(name: str) -> bool:
    from duckpond import formats

    return name in formats.COMPRESSIONS


def _parse_modifiers(url: str, base: str, mods: list[str]) -> tuple[str, Entry | None, str | None]:
    fmt = "raw" if base == "host" else base
    entry: Entry | None = None
    compression: str | None = None
    for i, mod in enumerate(mods):
        if base == "host" and mod not in _ENTRIES and _is_format(mod):
            if i > 0:
                # the format must be the first modifier: it is the input's format
                raise _usage(f"'{mod}' must come first after 'host' in '{url}'")
            fmt = mod
        elif mod in _ENTRIES and base == "host":
            if entry is not None:
                raise _usage(f"more than one of table/series in '{url}'")
            entry = mod  # type: ignore[assignment]
            if fmt == "raw":
                fmt = mod
        elif _is_compression(mod):
            if compression is not None:
                raise _usage(f"more than one compression in '{url}'")
            if base == "host" and fmt == "raw":
                # raw bytes are copied as they are; compression only applies to a format
                raise _usage(f"+{mod} must follow a format (csv, table or series) in '{url}'")
            compression = mod
        else:
            raise _usage(f"unknown URL modifier '{mod}' in '{url}'")
    return fmt, entry, compression


def _split_options(fmt: str, path: str, url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split `?name=value&...` off a format URL's path. A `?` not followed by options is a
    glob character (`metrics-?.json`) and stays in the path."""
    if fmt == "raw" or fmt in _PARQUET:
        return path, ()
    cut = path.rfind("?")
    if cut < 0 or not _OPTION_RE.match(path[cut + 1 :]):
        return path, ()
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(path[cut + 1 :], keep_blank_values=True, strict_parsing=True)
    except ValueError as e:
        raise _usage(f"bad options in '{url}': {e}") from None
    from duckpond import formats

    known = formats.get(fmt).options
    for name, _ in pairs:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise PondUsageError(f"unknown option '{name}' for format {fmt} (options: {listed})")
    return path[:cut], tuple(pairs)


def _host_path(rest: str, url: str) -> str:
    """`host:/abs/x` or `host:rel/x` (`?options` kept): a relative path is taken against the
    current directory, as a shell user expects; `host://name` stays refused (an authority)."""
    path, sep, query = rest.partition("?")
    if not path:
        raise _usage(f"'{url}' names no file")
    return os.path.abspath(path) + sep + query


def parse_source(url: str) -> SourceURL:
    """Parse a source argument. Raises PondUsageError for anything malformed."""
    if not url:
        raise _usage("empty source")
    split = _split_scheme(url)
    if split is None:
        return SourceURL(scheme="pond", path=url)
    scheme, rest = split
    base, *mods = scheme.split("+")
    if base != "host" and not _is_format(base):
        if _is_compression(base):
            raise _usage(f"a compression cannot be the first word of a scheme: '{scheme}'")
        raise _usage(f"unknown URL scheme '{scheme}' in '{url}'")
    if "" in mods:
        raise _usage(f"empty modifier in URL scheme '{scheme}'")
    if base == "host" and not rest.startswith("//"):
        rest = "//" + _host_path(rest, url)
    # host:///abs means an empty authority then an absolute path; anything else is ambiguous
    if not rest.startswith("///"):
        example = "host:///abs/path" if base == "host" else f"{base}:///pond/path"
        raise _usage(f"'{url}' needs three slashes and an absolute path, like {example}")
    fmt, entry, compression = _parse_modifiers(url, base, mods)
    path, options = _split_options(fmt, rest[2:], url)
    if base != "host":
        return SourceURL(scheme=base, path=path, fmt=fmt, compression=compression, options=options)
    return SourceURL(
        scheme="host", path=path, fmt=fmt, entry=entry, compression=compression, options=options
    )
