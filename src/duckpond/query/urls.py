"""Source URL parsing (SPEC §7 "URL forms accepted where a source is read").

Grammar: ``SCHEME://PATH`` where SCHEME is ``host`` or ``csv`` followed by ``+``-separated
modifiers, or a bare pond path (anything without a scheme). Parsing is purely syntactic: nothing
is opened here, so the CLI can reject a bad argument before it starts a transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from duckpond.errors import PondUsageError

Scheme = Literal["pond", "host", "csv"]
Fmt = Literal["raw", "table", "series", "csv"]
Entry = Literal["table", "series"]
Compression = Literal["gzip", "zstd"]

VALID_FORMS = (
    "/pond/path",
    "csv:///pond/path",
    "host:///abs/path",
    "host+table:///x.parquet",
    "host+series:///x.parquet",
    "host+csv:///x.csv",
    "host+csv+table:///x.csv",
    "host+csv+series:///x.csv",
    "(+gzip or +zstd after the format, e.g. host+csv+gzip+table:///x.csv.gz)",
)

# A scheme is letters first (RFC 3986 style); a pond path starts with '/', so it never matches.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)
_ENTRIES = ("table", "series")
_COMPRESSIONS = ("gzip", "zstd")


@dataclass(frozen=True)
class SourceURL:
    """A parsed source.

    - ``scheme``: "pond" (a bare pond path), "host" (a host file) or "csv" (a raw pond file read
      as CSV).
    - ``path``: the absolute host path for "host", the pond path otherwise.
    - ``fmt``: how the bytes are interpreted: "raw" (as they are; for a pond path the node's own
      type decides), "table"/"series" (Parquet), "csv".
    - ``entry``: what a copy stores it as ("table"/"series"), None for raw bytes or a plain read.
    - ``compression``: input compression to undo before parsing.
    """

    scheme: Scheme
    path: str
    fmt: Fmt = "raw"
    entry: Entry | None = None
    compression: Compression | None = None

    @property
    def is_host(self) -> bool:
        return self.scheme == "host"

    def check_storable(self) -> None:
        """Refuse what `copy` (and `pond apply`) cannot store: a CSV that does not say
        whether it becomes a table or a series (reading one needs no such word)."""
        if self.fmt == "csv" and self.entry is None:
            raise PondUsageError("say how to store a CSV: host+csv+table:// or host+csv+series://")


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


def _parse_modifiers(
    url: str, base: str, mods: list[str]
) -> tuple[Fmt, Entry | None, Compression | None]:
    fmt: Fmt = "raw"
    entry: Entry | None = None
    compression: Compression | None = None
    for mod in mods:
        if mod == "csv" and base == "host":
            if fmt == "csv" or entry is not None or compression is not None:
                # csv must be the first modifier: it is the input format
                raise _usage(f"'csv' must come first after 'host' in '{url}'")
            fmt = "csv"
        elif mod in _ENTRIES and base == "host":
            if entry is not None:
                raise _usage(f"more than one of table/series in '{url}'")
            entry = mod  # type: ignore[assignment]
            if fmt == "raw":
                fmt = mod  # type: ignore[assignment]
        elif mod in _COMPRESSIONS:
            if compression is not None:
                raise _usage(f"more than one compression in '{url}'")
            if base == "host" and fmt == "raw":
                # raw bytes are copied as they are; compression only applies to a format
                raise _usage(f"+{mod} must follow a format (csv, table or series) in '{url}'")
            compression = mod  # type: ignore[assignment]
        else:
            raise _usage(f"unknown URL modifier '{mod}' in '{url}'")
    return fmt, entry, compression


def parse_source(url: str) -> SourceURL:
    """Parse a source argument. Raises PondUsageError for anything malformed."""
    if not url:
        raise _usage("empty source")
    split = _split_scheme(url)
    if split is None:
        return SourceURL(scheme="pond", path=url)
    scheme, rest = split
    base, *mods = scheme.split("+")
    if base not in ("host", "csv"):
        raise _usage(f"unknown URL scheme '{scheme}' in '{url}'")
    if "" in mods:
        raise _usage(f"empty modifier in URL scheme '{scheme}'")
    # host:///abs means an empty authority then an absolute path; anything else is ambiguous
    if not rest.startswith("///"):
        example = "host:///abs/path" if base == "host" else "csv:///pond/path"
        raise _usage(f"'{url}' needs three slashes and an absolute path, like {example}")
    path = rest[2:]
    fmt, entry, compression = _parse_modifiers(url, base, mods)
    if base == "csv":
        return SourceURL(scheme="csv", path=path, fmt="csv", compression=compression)
    return SourceURL(scheme="host", path=path, fmt=fmt, entry=entry, compression=compression)
