"""Format URLs as tables: the files a URL names (one host file, one pond file, or a glob of
either) parsed by duckpond.formats and merged by column name.

A pond file is read at its latest version (or `--version N`): a raw file's versions replace
each other, so older ones are not rows of today's table. Parsed results are cached per
content (a pond version by its content hash, a host file by device, inode, size and mtime).
"""

from __future__ import annotations

import glob as hostglob
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import formats, nodes, paths
from ..errors import FormatError, InvalidPathError, NotFoundError, PondError, QueryError
from .pondview import no_version, row_at

if TYPE_CHECKING:
    import pyarrow as pa

    from .pondview import DerivedReads, SourcePond
    from .urls import SourceURL


def format_table(
    src: SourceURL,
    pond: SourcePond | None,
    derived: DerivedReads | None = None,
    version: int | None = None,
) -> pa.Table:
    """The table a format URL names (host or pond; one file or a glob)."""
    if src.is_host:
        return merge([_read(src, data, path, key) for path, data, key in _host_files(src.path)])
    if pond is None:
        raise PondError("no pond given: use --pond PATH or set $POND")
    if paths.has_glob(src.path):
        if version is not None:
            raise InvalidPathError("--version needs one file, not a glob")
        matches = [e.path for e in pond.list(src.path) if not nodes.is_dir(e.type)]
        if not matches:
            raise NotFoundError(f"no pond files match {src.path}")
    else:
        matches = [src.path]
    tables = []
    for path in matches:
        data, key = _pond_bytes(pond, derived, path, version)
        tables.append(_read(src, data, path, key))
    return merge(tables)


def _read(src: SourceURL, data: bytes, what: str, key: str | None) -> pa.Table:
    assert src.format is not None
    return formats.read(
        src.format,
        data,
        what=what,
        compression=src.compression,
        options=dict(src.options),
        key=key,
    )


def _host_files(pattern: str) -> list[tuple[str, bytes, str]]:
    """(path, bytes, identity) of the host file, or of every file a glob matches."""
    from .ingest import read_host_bytes

    if os.path.exists(pattern) or not any(c in pattern for c in "*?["):
        names = [pattern]
    else:
        names = sorted(p for p in hostglob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not names:
            raise NotFoundError(f"no host files match {pattern}")
    out = []
    for name in names:
        data = read_host_bytes(name)
        st = os.stat(name)
        out.append((name, data, f"host:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"))
    return out


def _pond_bytes(
    pond: SourcePond, derived: DerivedReads | None, path: str, version: int | None
) -> tuple[bytes, str | None]:
    node = pond.derived(path)
    if node is not None:
        if derived is None:
            raise QueryError(f"{path} is derived and this reader cannot compute it")
        no_version(node.path, version)
        return derived.read_bytes(node), None
    loc = pond.require(path)
    if nodes.is_dir(loc.file_type):
        raise InvalidPathError(f"is a directory: {loc.path}")
    if not nodes.is_file(loc.file_type) or nodes.is_dynamic(loc.file_type):
        raise QueryError(f"{loc.path} is a {loc.file_type}, not a raw file to parse")
    if nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
        raise QueryError(
            f"{loc.path} is already a {'series' if nodes.is_series(loc.file_type) else 'table'}:"
            f" query it as {loc.path}"
        )
    row = row_at(pond.fs, loc, version)
    if row.logical_size != row.size:
        # an appended log reads as all its versions: its last chunk's hash is not its content
        key = f"log:{loc.part_id}:{loc.node_id}@{row.version}:{row.content_hash}"
    elif row.content_hash:
        key = f"sha256:{row.content_hash}"
    else:
        key = f"{loc.node_id}@{row.version}"
    return pond.fs.content(row), key


def merge(tables: Sequence[pa.Table]) -> pa.Table:
    """Several files' tables as one: columns merged by name (missing ones NULL), types
    widened where they differ (int -> float), text where they cannot be reconciled."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    try:
        schema = pa.unify_schemas(
            [t.schema.remove_metadata() for t in tables], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        schema = _text_where_conflicting(tables)
    return pa.concat_tables([_conform(t, schema) for t in tables])


def _text_where_conflicting(tables: Sequence[pa.Table]) -> pa.Schema:
    import pyarrow as pa

    types: dict[str, list[Any]] = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, []).append(f.type)
    fields = []
    for name, ts in types.items():
        try:
            fields.append(
                pa.unify_schemas(
                    [pa.schema([pa.field(name, t)]) for t in ts], promote_options="permissive"
                ).field(0)
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    cols = []
    for field in schema:
        idx = table.schema.get_field_index(field.name)
        if idx < 0:
            cols.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            cols.append(table.column(idx).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise FormatError(
                f"column {field.name!r} cannot be read as {field.type}: {e}"
            ) from None
    return pa.Table.from_arrays(cols, schema=pa.schema([f.with_nullable(True) for f in schema]))
