"""`pond describe`: type, size, schema and versions of a source (moved from pond.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .. import nodes, seriesview
from ..results import Description, FieldInfo, VersionInfo
from .pondview import DerivedReads, SourcePond
from .sources import no_pond, read_source
from .urls import is_host, parse_source

if TYPE_CHECKING:
    import pyarrow as pa


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def describe_source(
    url: str, pond: SourcePond | None, derived: DerivedReads | None = None
) -> Description:
    """`Pond.describe`, also without a pond for host URLs."""
    src = parse_source(url)
    if is_host(url) or src.format is not None:
        if not is_host(url) and pond is None:
            raise no_pond()
        if src.format is not None:
            from .formatread import format_table

            # the format's own types, as `copy` stores them (the engine may widen some:
            # DuckDB reads nanoseconds with a time zone as microseconds)
            table = format_table(src, pond, derived)
        else:
            table = read_source(url, pond, derived, sql="SELECT * FROM source LIMIT 0")
        return Description(
            path=url,
            type="host" if is_host(url) else src.fmt,
            schema=[FieldInfo(f.name, str(f.type)) for f in table.schema],
            time_column=_time_column(src.format, table.schema),
        )
    if pond is None:
        raise no_pond()
    node = pond.derived(parse_source(url).path)
    if node is not None and derived is not None:
        return _describe_derived(pond, derived, node)
    loc = pond.require(parse_source(url).path)
    fs = pond.fs
    schema: list[FieldInfo] = []
    time_column = None
    if nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
        from . import ingest

        row = loc.row
        if nodes.is_series_selection(row):  # a revert's marker holds no data
            kept = seriesview.live_rows(fs.versions(loc.part_id, loc.node_id))
            row = kept[-1] if kept else row
        source = fs.blob_path(row) or row.content or b""
        schema = [
            FieldInfo(f.name, str(f.type)) for f in ingest.read_parquet_schema(source, loc.path)
        ]
        if nodes.is_series(loc.file_type):
            time_column = loc.row.extended_attributes.get("time_column")
    rows = fs.versions(loc.part_id, loc.node_id)
    bounds, through = _series_state(loc.file_type, rows)
    return Description(
        path=loc.path,
        type=loc.file_type,
        size=loc.row.logical_size,  # an appended log: all its versions
        factory=loc.row.factory or None,
        schema=schema,
        time_column=time_column,
        versions=[
            VersionInfo(
                version=r.version,
                txn_seq=r.txn_seq,
                timestamp=iso(r.timestamp),
                size=r.size,
                min_event_time=iso(r.min_event_time),
                max_event_time=iso(r.max_event_time),
            )
            for r in rows
        ],
        temporal_bounds=bounds,
        collapsed_through=through,
    )


def _series_state(
    file_type: str, rows: list[nodes.NodeRow]
) -> tuple[dict[str, str | None] | None, int | None]:
    """A stored series' bounds (None when none are set) and the highest version a
    collapse folded (None when none was)."""
    if not nodes.is_series(file_type):
        return None, None
    shown = seriesview.view(rows)
    bounds = None
    if shown.bounded:
        bounds = {"min": iso(shown.bounds[0]), "max": iso(shown.bounds[1])}
    return bounds, seriesview.collapsed_through(rows) or None


def _time_column(fmt: str | None, schema: pa.Schema) -> str | None:
    """The column `copy` into a series would index by (None when there is none)."""
    if fmt is None:
        return None
    from .. import formats
    from .ingest import detect_time_column

    preferred = formats.get(fmt).time_column
    if preferred is not None and preferred in schema.names:
        return preferred
    return detect_time_column(schema)


def _describe_derived(pond: SourcePond, derived: DerivedReads, node: Any) -> Description:
    """Factory, config, resulting schema and (for a stored factory node) its versions."""
    loc = pond.lookup(node.path)
    stored = loc if loc is not None and loc.row.factory is not None else None
    d = derived.describe(node, pond.fs.content(stored.row) if stored else None)
    rows = pond.fs.versions(stored.part_id, stored.node_id) if stored else []
    return Description(
        path=node.path,
        type=node.file_type,
        size=stored.row.size if stored else 0,
        factory=node.factory,
        schema=[FieldInfo(f["name"], f["type"]) for f in d["schema"]] if "schema" in d else [],
        time_column=d.get("time_column"),
        versions=[
            VersionInfo(
                version=r.version,
                txn_seq=r.txn_seq,
                timestamp=iso(r.timestamp),
                size=r.size,
                min_event_time=None,
                max_event_time=None,
            )
            for r in rows
        ],
        config=d.get("config"),
        entries=d.get("entries"),
    )
