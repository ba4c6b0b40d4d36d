"""Format readers: the bytes of a file (on the host or in the pond) -> an Arrow table.

Used wherever a source is read: `pond cat`/`describe`/`--sql` over a format URL, factory
inputs and `pond copy` into a table or series. This package sits beside the query layer and
imports only duckpond.errors and pyarrow; the query layer maps URLs onto it.

The formats live in a registry (`register`), so a plugin can add one; `read` undoes the
compression, checks the options, runs the reader, reports skipped lines and keeps the result
in a bounded in-process cache keyed by the content's identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import FormatError, PondUsageError
from .base import MAX_LINE_BYTES, Format, Options, Parsed, Reader, Skipped, check_options
from .cache import ParsedCache

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "COMPRESSIONS",
    "MAX_LINE_BYTES",
    "Format",
    "Options",
    "Parsed",
    "Reader",
    "Skipped",
    "cache",
    "decompress",
    "get",
    "names",
    "read",
    "register",
]

# pond's compression names (formats.compression implements them; loaded on first use)
COMPRESSIONS = ("gzip", "zstd", "bzip2")
_REGISTRY: dict[str, Format] = {}
_BUILTINS_LOADED = False
cache = ParsedCache()


def register(fmt: Format, *, replace: bool = False) -> None:
    """Add a format (a plugin's, or a builtin one); a name is taken once unless `replace`."""
    _builtins()
    if fmt.name in _REGISTRY and not replace:
        raise ValueError(f"format {fmt.name!r} is already registered")
    if fmt.name in COMPRESSIONS or fmt.name in ("host", "table", "series", "file"):
        raise ValueError(f"{fmt.name!r} cannot name a format")
    _REGISTRY[fmt.name] = fmt
    cache.clear()  # results of a replaced reader must not be served


def names() -> list[str]:
    _builtins()
    return sorted(_REGISTRY)


def get(name: str) -> Format:
    _builtins()
    fmt = _REGISTRY.get(name)
    if fmt is None:
        raise PondUsageError(f"unknown format '{name}' (formats: {', '.join(names())})")
    return fmt


def read(
    name: str,
    data: bytes,
    *,
    what: str,
    compression: str | None = None,
    options: Options | None = None,
    key: str | None = None,
) -> pa.Table:
    """The table of one file's bytes in format `name`.

    `key` names the content (a pond version's content hash, a host file's inode, size and
    mtime): a second read with the same key, format, options and compression is served from
    the cache without parsing. Skipped malformed lines are reported on the `pond` logger
    (stderr in the CLI) on every read, cached or not: a loss is never silent."""
    fmt = get(name)
    opts = dict(options or {})
    check_options(fmt, opts)
    full_key = None
    if key is not None:
        full_key = (name, tuple(sorted(opts.items())), compression or "", key)
        hit = cache.get(full_key)
        if hit is not None:
            _report(hit.skipped, what)
            return hit.table
    raw = decompress(data, compression, what)
    try:
        parsed = fmt.read(raw, opts, what)
    except RecursionError:
        raise FormatError(f"{what} is not {name}: nested too deeply") from None
    except MemoryError:
        raise FormatError(f"{what} is too large to read as {name} in memory") from None
    _report(parsed.skipped, what)
    if full_key is not None:
        cache.put(full_key, parsed)
    return parsed.table


def time_column(name: str) -> str | None:
    """The column a series stored from format `name` is indexed by (None: detected)."""
    return get(name).time_column


def decompress(data: bytes, compression: str | None, what: str) -> bytes:
    """`data` with `compression` undone (bounded; see formats.compression)."""
    from . import compression as codecs

    return codecs.decompress(data, compression, what)


def _report(skipped: Skipped, what: str) -> None:
    if skipped.count:
        import logging  # only when there is something to say: `pond cat` starts fast

        logging.getLogger("pond").warning("%s", skipped.message(what))


# Builtin readers load on first use: parsing a URL (every `pond cat`) needs only the names.
_CSV_OPTIONS = frozenset(
    {
        "delimiter",
        "header",
        "has_header",
        "quote",
        "escape",
        "infer_rows",
        "schema_infer_max_records",
    }
)


def _lazy(module: str) -> Reader:
    def read(data: bytes, options: Options, what: str) -> Parsed:
        import importlib

        reader: Reader = importlib.import_module(f"{__name__}.{module}").read
        return reader(data, options, what)

    return read


def _builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for fmt in (
        Format("csv", _lazy("csv"), "comma-separated values", _CSV_OPTIONS),
        Format(
            "oteljson",
            _lazy("oteljson"),
            "OpenTelemetry metrics, JSON lines (OTLP file exporter)",
            time_column="timestamp",
        ),
        Format("jsonlogs", _lazy("jsonlogs"), "any JSON lines, one column per key"),
        Format(
            "weblog",
            _lazy("weblog"),
            "web access logs, Common or Combined Log Format",
            time_column="timestamp",
        ),
        Format(
            "excelhtml",
            _lazy("excelhtml"),
            "the HTML-table export of instrument software (HydroVu)",
            time_column="Date Time",
        ),
    ):
        _REGISTRY.setdefault(fmt.name, fmt)
