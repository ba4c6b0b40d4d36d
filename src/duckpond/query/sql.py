"""SQL over pond files with DuckDB (SPEC §3 series reads, §7 read-only SQL).

A file is a list of Parquet *parts* (one per series version, or one for a table). They are
registered as the table ``source`` (alias ``series``): a view over ``read_parquet`` of the
parts' paths (``union_by_name``: added columns read as null, types widened). Inline parts
(bytes from the pond's table) in a run of many, as a series of many small versions has, are
handed to DuckDB as ONE Arrow dataset over the bytes in memory (one registration, one lazy
scan, no file written or footer read by the engine per part: issue 19); a few are written as
small files in a private directory. Runs are joined in version order (``UNION ALL BY NAME``).
A time window prunes whole parts by their recorded range before anything is opened, and
filters rows with a WHERE that DuckDB pushes into the scan (row groups outside it are
skipped by their statistics).

Each context is one DuckDB connection of its own: `memory_limit`, a private spill directory
(`temp_directory`), no replacement scans of Python variables. Before the first user query it
is locked: external access off (only the parts' paths and directory stay readable),
`lock_configuration` on, so user SQL can neither read other files or URLs nor change a
setting. Registering after that replays the registrations onto a fresh connection.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import duckdb

from duckpond.errors import FormatError, QueryError

from .limits import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    QueryTimeout,
    apply_process_bound,
    clear_spill_dir,
    format_size,
    new_spill_dir,
    remove_spill_dir,
    take_default_database,
)
from .sqltext import literal, quote

if TYPE_CHECKING:  # pyarrow loads where Arrow data is made: a small `cat --sql` never needs it
    import pyarrow as pa

SOURCE_NAMES: tuple[str, ...] = ("source", "series")

_MAX_MESSAGE = 400
_BATCH_ROWS = 65_536
# Inline parts are small (the pond keeps big ones as blobs): tmpfs where there is one.
_LINK_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


_AFTER_CONNECT = ("SET TimeZone = 'UTC'", "SET parquet_metadata_cache = true")


def _setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return literal(str(value))


def _close_all(holder: list[Any], spill: str, files: list[str]) -> None:
    for con in holder:
        try:
            con.close()
        except Exception:  # noqa: BLE001 - closing at exit or collection must not raise
            pass
    holder.clear()
    remove_spill_dir(spill)
    for d in files:
        shutil.rmtree(d, ignore_errors=True)


class QueryContext:
    """One DuckDB connection with the pond's tables registered; see the module docstring."""

    def __init__(self, memory_limit: int | None, deadline: float | None = None) -> None:
        self.memory_limit = memory_limit
        self.deadline = deadline  # time.monotonic() by which pond's own work must stop
        self.spill = new_spill_dir()
        self._holder: list[duckdb.DuckDBPyConnection] = []
        self._files: list[str] = []  # private directories holding inline parts
        # registrations, replayed in order onto a new connection: ("arrow", name, table or
        # dataset) or ("sql", statement, None)
        self._ops: list[tuple[str, str, Any]] = []
        self._tables: dict[str, str] = {}  # public name -> the view's SELECT
        self._paths: set[str] = set()
        self._locked = False
        self._finalizer = weakref.finalize(self, _close_all, self._holder, self.spill, self._files)
        self._holder.append(self._connect())

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self._holder[0]

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {
            "temp_directory": self.spill,
            "python_enable_replacements": False,  # `FROM x` must not read a Python variable
        }
        if self.memory_limit:
            config["memory_limit"] = f"{self.memory_limit}B"
        if take_default_database():
            # the CLI's first context: a connection of its own (a cursor) to the database
            # DuckDB opened at import, configured as a new one would be; its configuration
            # is locked with this context's (limits.use_default_database)
            con = duckdb.default_connection().cursor()
            con.execute("; ".join(f"SET {k} = {_setting(v)}" for k, v in config.items()))
        else:
            con = duckdb.connect(":memory:", config=config)
        # results in UTC whatever the machine's zone; footers read once per context, not per
        # query (both need an extension loaded first, hence not in the connect config)
        try:
            con.execute(";".join(_AFTER_CONNECT))
        except duckdb.Error:  # one of them failed: each on its own, as far as it goes
            for setting in _AFTER_CONNECT:
                try:
                    con.execute(setting)
                except duckdb.Error:
                    pass
        return con

    def table_exist(self, name: str) -> bool:
        return name in self._tables

    @property
    def tables(self) -> Mapping[str, str]:
        """Each registered public name's SELECT (read-only: relations.publish adds them)."""
        return MappingProxyType(self._tables)

    @property
    def locked(self) -> bool:
        """Whether SQL on the connection can no longer reach files or settings (lock)."""
        return self._locked

    def files_dir(self) -> str:
        if not self._files:
            try:
                self._files.append(tempfile.mkdtemp(prefix="pond-query-", dir=_LINK_ROOT))
            except OSError:  # /dev/shm full or restricted: the default temp dir works
                self._files.append(tempfile.mkdtemp(prefix="pond-query-"))
        return self._files[0]

    def _apply(self, con: duckdb.DuckDBPyConnection, op: tuple[str, str, Any]) -> None:
        kind, what, table = op
        if kind == "arrow":
            con.register(what, table)
        else:
            con.execute(what)

    def run(self, op: tuple[str, str, Any]) -> None:
        """Apply one registration (a locked connection is replaced by a fresh one first)."""
        if self._locked:
            fresh = self._connect()
            for old in self._ops:
                self._apply(fresh, old)
            stale = self._holder[0]
            self._holder[0] = fresh
            self._locked = False
            stale.close()
        self._apply(self.con, op)
        self._ops.append(op)

    def allow(self, path: str) -> None:
        self._paths.add(os.path.abspath(path))

    def lock(self) -> None:
        """No file, URL or setting is reachable from SQL from here on but the parts."""
        if self._locked:
            return
        settings = []
        if self._paths:
            paths = ", ".join(literal(p) for p in sorted(self._paths))
            settings.append(f"SET allowed_paths = [{paths}]")
        if self._files:
            settings.append(f"SET allowed_directories = [{literal(self._files[0] + os.sep)}]")
        settings += ["SET enable_external_access = false", "SET lock_configuration = true"]
        self.con.execute("; ".join(settings))  # one call: in order, stopping at an error
        self._locked = True

    def close(self) -> None:
        self._finalizer()


def make_context(
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT, timeout: float | None = None
) -> QueryContext:
    """A context whose queries may use at most `memory_limit` bytes (None: no limit),
    spilling to a directory of its own under $TMPDIR (see limits.py); `timeout`: the
    seconds from now that work pond does on its own while registering (a series cache
    written on a read: within_limits) may take."""
    deadline = None if timeout is None else time.monotonic() + timeout
    return QueryContext(memory_limit, deadline)


def within_limits(ctx: QueryContext, work: Callable[[], object]) -> bool:
    """Run `work` (pond's own statements on ctx.con, never user SQL) under the query
    guard: stopped by interrupt() at the context's deadline or when the process outgrows
    the memory limit. False when a limit stopped it (or the deadline had passed)."""
    left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
    if left is not None and left <= 0:
        return False
    guard = _Guard(ctx, left)
    try:
        work()
    except (duckdb.Error, RuntimeError):
        if guard.fired:
            return False
        raise
    finally:
        guard.stop()
    return True


def time_bucket_sql(bucket_us: int, column: str, column_type: pa.DataType) -> str:
    """SQL for the start of the `bucket_us`-wide bucket (aligned on the epoch) holding the
    column named `column` of Arrow type `column_type`: a timestamp (any unit; the bucket keeps
    its zone, in µs) or an integer of µs since the epoch (the bucket is a zone-less
    timestamp). For factories and the site, which generate SQL: the engine's dialect stays
    here. Integer arithmetic, exact, and right before 1970 too (the remainder is taken
    positive whatever the sign convention of %)."""
    import pyarrow as pa

    q = quote(column)
    if pa.types.is_timestamp(column_type):
        us = f"epoch_us({q})"
    elif pa.types.is_integer(column_type):
        us = f"CAST({q} AS BIGINT)"
    else:
        raise FormatError(f"time column '{column}' has type {column_type}, not a time")
    b = int(bucket_us)
    start = f"make_timestamp({us} - ((({us}) % {b}) + {b}) % {b})"
    if pa.types.is_timestamp(column_type) and column_type.tz:
        return f"CAST({start} AS TIMESTAMPTZ)"
    return start


# ---------------------------------------------------------------------------------------------
# queries

# statement types a read may be; PRAGMA calls parse as SELECT and are refused by their text
_READ_TYPES = {"SELECT", "EXPLAIN"}
_DDL_TYPES = {"CREATE", "DROP", "ALTER", "CREATE_FUNC"}
_DML_TYPES = {"INSERT", "UPDATE", "DELETE", "MERGE_INTO"}
_PRAGMA_RE = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*pragma\b", re.IGNORECASE | re.DOTALL)
_CATEGORY_RE = re.compile(r"^[A-Z][A-Za-z ]* Error: ")
# "Did you mean "pg_settings"?": a catalog's own tables are no hint for a pond user
_SYSTEM_HINT_RE = re.compile(r' ?Did you mean "(?:pg_|duckdb_|sqlite_|information_schema)[^"]*"\?')


def clean_message(raw: str) -> str:
    """DuckDB's message on one line: its category prefix, the query excerpt (LINE n: ...)
    and the generic advice dropped."""
    text = raw
    for cut in ("\nLINE ", "\n\nPossible solutions", "\nSee also"):
        at = text.find(cut)
        if at > 0:
            text = text[:at]
    msg = " ".join(text.split())
    msg = _CATEGORY_RE.sub("", msg, count=1)
    msg = _SYSTEM_HINT_RE.sub("", msg)
    return msg if len(msg) <= _MAX_MESSAGE else msg[: _MAX_MESSAGE - 3] + "..."


def _refused(kind: str) -> QueryError:
    if kind in _DDL_TYPES:
        what = f"DDL ({kind})"
    elif kind in _DML_TYPES:
        what = f"DML ({kind})"
    else:
        what = f"statement ({kind})"
    return QueryError(f"only read-only queries are allowed: {what} is refused")


def check_read_only(ctx: QueryContext, query: str) -> str:
    """One statement, and a read: DDL, DML, COPY, EXPORT, SET/RESET/PRAGMA, ATTACH,
    INSTALL/LOAD, CALL, PREPARE... are refused by DuckDB's own parse of the statement.
    Returns the statement's type (SELECT or EXPLAIN)."""
    try:
        statements = ctx.con.extract_statements(query)
    except duckdb.Error as e:
        raise QueryError(f"SQL syntax error: {clean_message(str(e))}") from None
    if len(statements) != 1:
        raise QueryError(f"query failed: expected a single SQL statement, found {len(statements)}")
    kind = statements[0].type.name
    if kind not in _READ_TYPES:
        raise _refused(kind)
    if _PRAGMA_RE.match(query):
        raise _refused("PRAGMA")
    return str(kind)


def _query_error(ctx: QueryContext, err: Exception) -> QueryError:
    raw = str(err)
    if isinstance(err, duckdb.OutOfMemoryException) or raw.startswith("Out of Memory Error"):
        return _memory_error(ctx, clean_message(raw))
    if isinstance(err, duckdb.PermissionException):
        return QueryError(
            f"only read-only queries are allowed: reading other files or URLs is refused "
            f"({clean_message(raw)})"
        )
    if isinstance(err, duckdb.ParserException):
        return QueryError(f"SQL syntax error: {clean_message(raw)}")
    if isinstance(err, duckdb.ConversionException) and "Error while reading file" in raw:
        return QueryError(f"the file's versions have incompatible schemas: {clean_message(raw)}")
    return QueryError(f"query failed: {clean_message(raw)}")


def _memory_error(ctx: QueryContext, detail: str) -> QueryError:
    limit = f" of {format_size(ctx.memory_limit)}" if ctx.memory_limit else ""
    return QueryError(
        f"query exceeded the memory limit{limit} (raise it with --memory-limit SIZE): {detail}"
    )


def _plain_type(t: pa.DataType) -> pa.DataType:
    """`t` with string_view/binary_view replaced by plain types, which every downstream
    writer (CSV, JSON, Delta) handles."""
    import pyarrow as pa

    if t == pa.string_view():
        return pa.string()
    if t == pa.binary_view():
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_large_list(t) or pa.types.is_large_list_view(t):
        return pa.large_list(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_plain_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(
            t.key_field.with_type(_plain_type(t.key_type)),
            t.item_field.with_type(_plain_type(t.item_type)),
            t.keys_sorted,
        )
    return t


def plain_types(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    target = pa.schema(
        [f.with_type(_plain_type(f.type)) for f in table.schema], metadata=table.schema.metadata
    )
    return table if target == table.schema else table.cast(target)


def _integer_columns(rel: duckdb.DuckDBPyRelation) -> set[int]:
    """Columns DuckDB types as 128-bit integers (`sum` of integers is HUGEINT), which reach
    Arrow as decimal128(38, 0): they are read back as int64 where every value fits."""
    return {i for i, t in enumerate(rel.types) if str(t) in ("HUGEINT", "UHUGEINT")}


def _as_int64(batch: pa.RecordBatch, columns: set[int]) -> pa.RecordBatch:
    import pyarrow as pa

    arrays = list(batch.columns)
    fields = list(batch.schema)
    for i in columns:
        try:
            arrays[i] = arrays[i].cast(pa.int64())  # safe cast: fails on overflow
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        fields[i] = fields[i].with_type(pa.int64())
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _rss() -> int:
    """This process's resident set in bytes (0 where /proc is missing: no guard there)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_WATCH_EVERY = 0.01  # seconds between checks of the clock and the resident set
_HEADROOM = 96 << 20


class _Guard:
    """Stops the context's query by `interrupt()` (DuckDB's thread-safe way to stop a
    running query) once `seconds` have passed, or once the process has grown by more than
    1.5 x the memory limit (at least limit + 96 MiB) since the query began: DuckDB's
    memory_limit covers its buffer manager, not every allocation (a vector of 2,048 huge
    strings is built outside it), so the resident set is watched too. One watcher thread
    per query, none without limits."""

    def __init__(self, ctx: QueryContext, seconds: float | None) -> None:
        self.timed_out = False
        self.over_memory = False
        self._con = ctx.con
        self._stop = threading.Event()
        self._deadline = None if seconds is None else time.monotonic() + seconds
        base = _rss()
        limit = ctx.memory_limit
        # headroom over the limit: half of it, at least what DuckDB's own buffers, threads
        # and the Arrow batches in flight take beside its buffer manager
        self._ceiling = base + limit + max(limit // 2, _HEADROOM) if limit and base else None
        self._thread = None
        if self._deadline is not None or self._ceiling is not None:
            self._thread = threading.Thread(target=self._watch, name="pond-query-guard")
            self._thread.daemon = True
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(_WATCH_EVERY):
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.timed_out = True
            elif self._ceiling is not None and _rss() > self._ceiling:
                self.over_memory = True
            else:
                continue
            self._con.interrupt()
            return

    @property
    def fired(self) -> bool:
        return self.timed_out or self.over_memory

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def failure(ctx: QueryContext, guard: _Guard, err: Exception) -> BaseException:
    """What to raise for an engine error met while a guarded query ran: the memory or time
    limit when the watcher stopped it, KeyboardInterrupt for a user's interrupt, else the
    one-line QueryError."""
    if guard.over_memory:
        return _memory_error(ctx, "the query outgrew it")
    if guard.timed_out:
        return QueryTimeout()
    if isinstance(err, duckdb.InterruptException) or str(err).startswith("INTERRUPT"):
        return KeyboardInterrupt()
    return _query_error(ctx, err)


def interrupted(ctx: QueryContext, guard: _Guard, err: RuntimeError) -> BaseException:
    """What to raise for the RuntimeError DuckDB answers a SIGINT (Ctrl-C) with, or `err`
    itself when it is something else."""
    if guard.fired:
        return QueryTimeout() if guard.timed_out else _memory_error(ctx, "the query outgrew it")
    if "interrupted" in str(err).lower():
        return KeyboardInterrupt()
    return err


def stream_sql(
    ctx: QueryContext, query: str, timeout: float | None = DEFAULT_TIMEOUT
) -> Generator[pa.RecordBatch, None, None]:
    """The batches of one read-only query as they are computed (see run_sql for the rules);
    stopped after `timeout` seconds counted from the call. Close the iterator (or read it to
    the end) to end the query."""
    import pyarrow as pa

    check_read_only(ctx, query)
    ctx.lock()
    apply_process_bound()  # the CLI's cap on the whole process, once (limits.py)
    guard = _Guard(ctx, timeout)
    try:
        try:
            rel = ctx.con.sql(query)
            wide = _integer_columns(rel)
            reader = rel.to_arrow_reader(_BATCH_ROWS)
            schema = reader.schema
            first = True
            for batch in reader:
                first = False
                yield _plain_batch(batch, wide)
            if first:  # no rows: one empty batch carries the schema
                yield _plain_batch(pa.RecordBatch.from_pylist([], schema=schema), wide)
        except (duckdb.Error, pa.ArrowException, OSError) as e:
            # errors met while streaming come through Arrow's reader, as Arrow exceptions
            # carrying DuckDB's message
            raise failure(ctx, guard, e) from None
        except RuntimeError as e:  # DuckDB's answer to a SIGINT (Ctrl-C) during a query
            raise interrupted(ctx, guard, e) from None
    finally:
        guard.stop()
        clear_spill_dir(ctx.spill)


def _plain_batch(batch: pa.RecordBatch, wide: set[int]) -> pa.RecordBatch:
    import pyarrow as pa

    if wide:
        batch = _as_int64(batch, wide)
    target = pa.schema([f.with_type(_plain_type(f.type)) for f in batch.schema])
    return batch if target == batch.schema else batch.cast(target)


def timeout_error(timeout: float | None) -> QueryError:
    return QueryError(
        f"query exceeded the time limit of {timeout:g}s (raise it with --timeout SECONDS)"
    )


def run_sql(ctx: QueryContext, query: str, timeout: float | None = DEFAULT_TIMEOUT) -> pa.Table:
    """Run one read-only query, stopped after `timeout` seconds (None: no limit; from any
    thread, see limits.py); DDL, DML, COPY, SET and file reading are refused. Errors are
    one-line QueryErrors. The result is held in memory, as the caller asked (the memory
    limit bounds the query's work; the watcher still stops a result that outgrows it by
    far); stream_sql streams it instead."""
    import pyarrow as pa

    batches: list[pa.RecordBatch] = []
    stream = stream_sql(ctx, query, timeout)
    try:
        for batch in stream:
            batches.append(batch)
    except QueryTimeout:
        raise timeout_error(timeout) from None
    finally:
        stream.close()
    return pa.Table.from_batches(batches)
