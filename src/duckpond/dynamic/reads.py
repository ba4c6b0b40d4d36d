"""The read paths' entry into derived nodes: what `Pond.list/read_bytes/describe/sql` and
`copy` out call when a path is a data factory node or lies inside a dynamic directory.

Stored nodes keep their storage read paths (no factory or DataFusion import); only a
derived node goes through the resolver."""

from __future__ import annotations

from typing import Any

from .. import nodes, paths
from ..errors import InvalidPathError, NotFoundError, QueryError
from ..factories.live import LiveData, LiveDir, LiveFile, LiveNode, schema_fields
from ..storage.fs import Located
from .resolver import Resolver


def is_data_factory(loc: Located) -> bool:
    if not (loc.row.factory and nodes.is_dynamic(loc.file_type)):
        return False
    from ..factories import base, registry

    try:
        return registry.get(loc.row.factory).kind == base.DATA
    except Exception:  # noqa: BLE001 - an unknown factory reads as its stored bytes
        return False


def derived(resolver: Resolver, path: str) -> LiveNode | None:
    """The live node at `path` when it is derived; None for a stored node (including an
    executor factory's node, whose bytes are its config). NotFoundError when missing."""
    try:
        loc = resolver.fs.lookup(path)
    except NotFoundError:
        loc = None
    if loc is not None:
        return resolver.node_for(loc) if is_data_factory(loc) else None
    node = resolver.lookup(path)
    if node is None:
        raise NotFoundError(f"no such file or directory: {paths.normalize(path)}")
    return node


def entries(resolver: Resolver, pattern: str) -> list[tuple[str, str, int, int]]:
    """(path, type, version, size) of every node matching `pattern`, dynamic directories
    listed with their children (a derived child shows its factory node's version)."""
    out = []
    for node in resolver.glob(pattern, strict=False):
        out.append(
            (node.path, node.file_type, getattr(node, "version", 0), getattr(node, "size", 0))
        )
    return out


def read_bytes(node: LiveNode) -> bytes:
    """A derived node's bytes: a text (template) as is, a table or series as Parquet."""
    if isinstance(node, LiveDir):
        raise InvalidPathError(f"is a directory: {node.path}")
    if isinstance(node, LiveData):
        return node.read_bytes()
    from ..query import output

    assert isinstance(node, LiveFile)
    return output.to_parquet_bytes(node.scan())


def register(
    ctx: Any,
    node: LiveNode,
    scheme: str,
    compression: str | None,
    time_start: int | None,
    time_end: int | None,
) -> None:
    """Make a derived node the SQL tables `source` and `series`."""
    from ..query import ingest, relations, sql

    if isinstance(node, LiveDir):
        raise InvalidPathError(f"is a directory: {node.path}")
    if scheme == "csv":
        data = read_bytes(node)
        relations.register_table_arrow(ctx, ingest.read_csv_bytes(data, compression, node.path))
        return
    if isinstance(node, LiveData):
        raise QueryError(
            f"{node.path} is a raw file; query it as csv://{node.path} or store it as a table"
        )
    assert isinstance(node, LiveFile)
    node.register(ctx, list(sql.SOURCE_NAMES), time_start, time_end)


def describe(node: LiveNode, config: bytes | None) -> dict[str, Any]:
    """Factory, config and resulting schema of a derived node (no versions: the caller adds
    the stored node's own, if it is one)."""
    import yaml

    out: dict[str, Any] = {"path": node.path, "type": node.file_type, "size": 0}
    out["factory"] = node.factory
    if config is not None:
        try:
            out["config"] = yaml.safe_load(config)
        except yaml.YAMLError:
            out["config"] = config.decode("utf-8", "replace")
    if isinstance(node, LiveFile):
        out["schema"] = schema_fields(node.schema())
        if nodes.is_series(node.file_type):
            out["time_column"] = node.time_column
    if isinstance(node, LiveDir):
        out["entries"] = node.names()
    return out
