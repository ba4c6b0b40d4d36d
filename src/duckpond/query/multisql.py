"""SQL across pond files (`pond sql`, `Pond.sql`): quoted pond paths, globs and format URLs
used as tables, as DuckDB reads `FROM 'file.parquet'`.

DuckDB's own parser finds them (`json_serialize_sql`: every table reference with its name,
string literal or quoted identifier alike); nothing here reads SQL text by pattern. A name
that starts with `/` or is a format URL (`csv:///data/x.csv`) is a pond reference: it is
registered as a view whose name is the reference itself, so the query runs exactly as the
user wrote it (DuckDB finds the view before it would try a replacement scan). A glob
(`'/weather/*'`) is the union by name of the tables and series it matches, with a column
`filename` naming each row's file, as DuckDB's `read_parquet(..., filename = true)` has.

Every reference is read through `sources.register_source`, so a series, a table, a derived
node or a format URL reads here exactly as `pond cat` reads it, with the same read-only
guard and limits (sql.py). A name that is not a pond reference is left to DuckDB (a CTE,
`source` when a path is given, DuckDB's own views); one it cannot find is reported with the
names that do exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import nodes
from ..errors import InvalidPathError, NotFoundError, PondUsageError, QueryError
from .limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from .pondview import DerivedReads, SourcePond
from .sources import no_pond, register_source, stream_batches
from .sqltext import literal, quote
from .urls import parse_source

if TYPE_CHECKING:
    import pyarrow as pa

    from .sql import QueryContext

FILENAME_COLUMN = "filename"
_GLOB_CHARS = frozenset("*?[")
_MAX_LISTED = 12
# leading words of a statement json_serialize_sql refuses but whose rest is a SELECT
_PREFIX_WORDS = frozenset({"EXPLAIN", "ANALYZE"})


@dataclass(frozen=True)
class TableRefs:
    """What a query's FROM clauses name: pond references (paths, globs, format URLs) and
    bare names (left to DuckDB), in order of first use, and its CTE names."""

    pond: tuple[str, ...]
    bare: tuple[str, ...]
    ctes: frozenset[str]


def is_pond_ref(name: str) -> bool:
    """A table name read from the pond: a path (`/a/b`, a glob) or a URL (`csv:///a.csv`)."""
    return name.startswith("/") or ":///" in name


def _serialize(ctx: QueryContext, text: str) -> dict[str, Any] | None:
    # a literal, not a parameter: a prepared statement costs 3x the parse itself
    raw = ctx.con.sql(f"SELECT json_serialize_sql({literal(text)})").fetchone()
    parsed: dict[str, Any] = json.loads(raw[0]) if raw else {"error": True}
    return None if parsed.get("error") else parsed


def _without_prefix(text: str) -> str | None:
    """`EXPLAIN [ANALYZE] SELECT ...` without its leading words (DuckDB's tokenizer finds
    where the SELECT starts); None when there were none."""
    import duckdb

    tokens = duckdb.tokenize(text)
    skipped = 0
    for offset, _kind in tokens:
        end = next((o for o, _ in tokens if o > offset), len(text))
        if text[offset:end].strip().upper() not in _PREFIX_WORDS:
            return text[offset:] if skipped else None
        skipped += 1
    return None


def table_refs(ctx: QueryContext, query: str) -> TableRefs:
    """The table names `query` reads, from DuckDB's parse of it (empty when it does not
    parse: running it reports the syntax error)."""
    tree = _serialize(ctx, query)
    if tree is None:
        rest = _without_prefix(query)
        tree = _serialize(ctx, rest) if rest is not None else None
    pond: dict[str, None] = {}
    bare: dict[str, None] = {}
    ctes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
            name = node["table_name"]
            if not node.get("schema_name") and not node.get("catalog_name"):
                (pond if is_pond_ref(name) else bare)[name] = None
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map") or []:
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    ctes.add(entry["key"])
        for value in node.values():
            walk(value)

    if tree is not None:
        walk(tree.get("statements"))
    return TableRefs(tuple(pond), tuple(bare), frozenset(ctes))


# ---------------------------------------------------------------------------------------------
# registering the references


def _alias(ctx: QueryContext, name: str) -> None:
    """Publish what was just registered as `source` under `name` too: the view reads the
    registration's private base, so registering the next reference as `source` leaves it."""
    from . import relations, sql

    relations.publish(ctx, [name], ctx.tables[sql.SOURCE_NAMES[0]])


def _listing(pond: SourcePond, directory: str) -> str:
    """The tables, series and directories in `directory`, for an error message."""
    pattern = directory.rstrip("/") + "/*"
    names = []
    for e in pond.list(pattern):
        if nodes.is_dir(e.type):
            names.append(e.path + "/")
        elif nodes.is_table(e.type) or nodes.is_series(e.type):
            names.append(e.path)
    if not names:
        return f"{directory} has no tables"
    more = f" ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return f"in {directory}: {', '.join(names[:_MAX_LISTED])}{more}"


def _nearest_dir(pond: SourcePond, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    while parts:
        parts.pop()
        candidate = "/" + "/".join(parts)
        if not parts:
            return "/"
        if any(_GLOB_CHARS & set(p) for p in parts):
            continue
        loc = _find(pond, candidate)
        if loc is not None and nodes.is_dir(loc):
            return candidate
    return "/"


def _find(pond: SourcePond, path: str) -> str | None:
    """The entry type at `path` (stored or derived), None when there is nothing."""
    try:
        node = pond.derived(path)
    except (NotFoundError, InvalidPathError):
        return None
    if node is not None:
        return str(node.file_type)
    loc = pond.lookup(path)
    return None if loc is None else loc.file_type


def _no_table(pond: SourcePond, ref: str, why: str = "no such table") -> QueryError:
    return QueryError(f"{why}: '{ref}' ({_listing(pond, _nearest_dir(pond, ref))})")


def _register_glob(
    ctx: QueryContext,
    ref: str,
    pond: SourcePond,
    derived: DerivedReads | None,
    time_start: int | None,
    time_end: int | None,
) -> None:
    files = [e.path for e in pond.list(ref) if nodes.is_table(e.type) or nodes.is_series(e.type)]
    if not files:
        raise _no_table(pond, ref, "no table or series matches")
    selects = []
    for i, path in enumerate(files):
        name = f"__pond_glob_{len(ctx.tables)}_{i}"
        register_source(ctx, path, pond, derived, None, time_start, time_end)
        columns = ctx.con.sql("SELECT * FROM source LIMIT 0").columns
        if FILENAME_COLUMN in (c.lower() for c in columns):  # DuckDB's names ignore case
            raise QueryError(
                f"{path} has a column '{FILENAME_COLUMN}': a glob adds one naming each row's "
                f"file; query the files one by one"
            )
        _alias(ctx, name)
        selects.append(f"SELECT *, {literal(path)} AS {FILENAME_COLUMN} FROM {quote(name)}")
    from . import relations

    relations.publish(ctx, [ref], " UNION ALL BY NAME ".join(selects))


def register_ref(
    ctx: QueryContext,
    ref: str,
    pond: SourcePond | None,
    derived: DerivedReads | None,
    time_start: int | None = None,
    time_end: int | None = None,
) -> None:
    """Register one pond reference (path, glob or format URL) as a view named `ref`."""
    try:
        src = parse_source(ref)
    except PondUsageError as e:
        raise QueryError(f"not a pond path or format URL: '{ref}' ({e})") from None
    if src.scheme == "host":
        raise QueryError(
            f"'{ref}': SQL reads pond files only; copy the host file in, or read it with "
            f"pond cat {ref}"
        )
    if pond is None:
        raise no_pond()
    if src.scheme == "pond" and _GLOB_CHARS & set(src.path):
        _register_glob(ctx, ref, pond, derived, time_start, time_end)
        return
    if src.scheme == "pond":
        kind = _find(pond, src.path)
        if kind is None:
            raise _no_table(pond, src.path)
        if nodes.is_dir(kind):
            raise QueryError(
                f"'{ref}' is a directory; query its files with a glob, FROM '{ref.rstrip('/')}/*'"
            )
    register_source(ctx, ref, pond, derived, None, time_start, time_end)
    _alias(ctx, ref)


def _collisions(refs: Sequence[str]) -> None:
    # DuckDB's catalog compares names case-insensitively; pond paths do not
    seen: dict[str, str] = {}
    for ref in refs:
        other = seen.setdefault(ref.lower(), ref)
        if other != ref:
            raise QueryError(f"'{other}' and '{ref}' differ only in case: query them one at a time")


def _check_bare(
    ctx: QueryContext, refs: TableRefs, pond: SourcePond | None, found: Sequence[str]
) -> None:
    """A bare name DuckDB cannot resolve (bound on the locked connection: no file is read)
    fails here with the names that exist, rather than as DuckDB's catalog error."""
    import duckdb

    for name in refs.bare:
        if name in refs.ctes or ctx.table_exist(name):
            continue
        try:
            ctx.con.sql(f"SELECT * FROM {quote(name)} LIMIT 0")
        except duckdb.Error:
            known = ", ".join(f"'{f}'" for f in found if not f.startswith("__pond"))
            where = f"tables in this query: {known}; " if known else ""
            listing = _listing(pond, "/") if pond is not None else "no pond given"
            hint = (
                f"pond paths are absolute, FROM '/{name}'"
                if "/" in name
                else "quote a pond path, FROM '/dir/file'"
            )
            raise QueryError(f"no table {name}: {where}{hint} ({listing})") from None


def _expands(ctx: QueryContext, query: str) -> bool:
    """One statement as typed (no `;` but a last one) that DuckDB parses as several: a
    PIVOT whose columns it must first look up."""
    import duckdb

    try:
        found = len(ctx.con.extract_statements(query))
    except duckdb.Error:
        return False
    ends = [o for o, _ in duckdb.tokenize(query) if query[o] == ";"]
    return found > 1 and not [o for o in ends if query[o + 1 :].strip()]


def prepare(
    ctx: QueryContext,
    query: str,
    pond: SourcePond | None,
    derived: DerivedReads | None,
    path: str | None = None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
) -> None:
    """Register every pond reference `query` makes, and `path` (when given) as `source`
    and `series`; refuse what the read-only guard refuses before anything is read."""
    from . import sql

    try:
        sql.check_read_only(ctx, query)
    except QueryError:
        if _expands(ctx, query):
            raise QueryError(
                "a PIVOT without an IN list runs as two statements, and only one may run: "
                "name its columns, PIVOT ... ON col IN ('a', 'b') USING ..."
            ) from None
        raise
    refs = table_refs(ctx, query)
    _collisions(refs.pond)
    for ref in refs.pond:
        register_ref(ctx, ref, pond, derived, time_start, time_end)
    if path is not None:
        register_source(ctx, path, pond, derived, version, time_start, time_end)
    ctx.lock()
    found = [*refs.pond, *(sql.SOURCE_NAMES if path is not None else ())]
    _check_bare(ctx, refs, pond, found)


def run_query(
    query: str,
    pond: SourcePond | None,
    derived: DerivedReads | None,
    path: str | None = None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    interruptible: bool = False,
) -> pa.Table:
    """Read-only SQL over the pond references in `query` (and `path` as `source`), within
    the limits; the result held whole. `interruptible`: a SIGINT stops the query at once
    (sigint.py)."""
    from . import sql
    from .sigint import interrupt_on_sigint

    ctx = sql.make_context(memory_limit, timeout)
    try:
        prepare(ctx, query, pond, derived, path, version, time_start, time_end)
        with interrupt_on_sigint(ctx.con, interruptible):
            return sql.run_sql(ctx, query, timeout)
    finally:
        ctx.close()


def stream_query(
    query: str,
    pond: SourcePond | None,
    derived: DerivedReads | None,
    path: str | None = None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    interruptible: bool = False,
) -> Iterator[pa.RecordBatch]:
    """`run_query` as record batches computed as they are read (see sources.stream_source)."""
    from . import sql
    from .sigint import interrupt_on_sigint

    ctx = sql.make_context(memory_limit, timeout)
    try:
        prepare(ctx, query, pond, derived, path, version, time_start, time_end)
    except BaseException:
        ctx.close()
        raise
    with interrupt_on_sigint(ctx.con, interruptible):
        yield from stream_batches(ctx, query, timeout, timeout)  # closes the context


# ---------------------------------------------------------------------------------------------
# statements as a shell or a script gives them


def statement_complete(text: str) -> bool:
    """Whether `text` ends with a `;` that ends a statement (not one inside a string,
    identifier or comment, nor after an unterminated one), by DuckDB's tokenizer."""
    import duckdb

    tokens = duckdb.tokenize(text)
    return bool(tokens) and text[tokens[-1][0]] == ";"


def split_statements(text: str) -> list[str]:
    """The statements of a script, by DuckDB's parser; a script that does not parse is
    returned whole, so running it reports the syntax error."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        return [s.query.strip() for s in con.extract_statements(text) if s.query.strip()]
    except duckdb.Error:
        return [text] if text.strip() else []
    finally:
        con.close()


def one_line(lines: Sequence[str]) -> str | None:
    """A statement typed over several lines as one line (for the shell's history), None when
    joining would change it (a `--` comment would swallow what follows)."""
    import duckdb

    joined = " ".join(line.strip() for line in lines)
    before = [kind for _, kind in duckdb.tokenize("\n".join(lines))]
    return joined if [kind for _, kind in duckdb.tokenize(joined)] == before else None
