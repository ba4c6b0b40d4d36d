"""How the query layer sees a pond: small protocols for what a read needs of it (so the
query layer imports nothing above itself), and the two helpers every reader shares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .. import nodes
from ..errors import InvalidPathError, NotFoundError


class LocatedNode(Protocol):
    """A resolved pond path (storage.fs.Located)."""

    @property
    def path(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def part_id(self) -> str: ...
    @property
    def file_type(self) -> str: ...
    @property
    def row(self) -> nodes.NodeRow: ...


class NodeStore(Protocol):
    """Reading stored versions (storage.fs.PondFS)."""

    def versions(self, part_id: str, node_id: str) -> list[nodes.NodeRow]: ...
    def content(self, row: nodes.NodeRow) -> bytes: ...
    def blob_path(self, row: nodes.NodeRow) -> str | None: ...
    def series_parts(
        self,
        part_id: str,
        node_id: str,
        start: int | None = None,
        end: int | None = None,
        cached: bool = False,
    ) -> Sequence[StoredPart]: ...
    def series_cache_dir(self, part_id: str, node_id: str) -> Path | None: ...
    def series_bounds(self, part_id: str, node_id: str) -> tuple[int | None, int | None]: ...


class StoredPart(Protocol):
    """Where one stored series version is (storage.seriesparts.SeriesPart), or a read
    cache segment standing for `covers` consecutive live versions (duckpond.seriescache)."""

    @property
    def version(self) -> int: ...
    @property
    def content_hash(self) -> str | None: ...
    @property
    def covers(self) -> int: ...
    @property
    def cache_key(self) -> str | None: ...

    @property
    def path(self) -> str | None: ...
    @property
    def data(self) -> bytes | None: ...
    @property
    def min_time(self) -> int | None: ...
    @property
    def max_time(self) -> int | None: ...


class ListedEntry(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def type(self) -> str: ...


class SourcePond(Protocol):
    """What reading a pond source needs of the pond (duckpond.pond.Pond)."""

    @property
    def fs(self) -> NodeStore: ...
    def list(self, pattern: str) -> Sequence[ListedEntry]: ...
    def derived(self, path: str) -> Any: ...
    def require(self, path: str) -> LocatedNode: ...
    def lookup(self, path: str) -> LocatedNode | None: ...


class DerivedReads(Protocol):
    """How a derived (factory-made) node is read (duckpond.dynamic.reads)."""

    def register(
        self,
        ctx: Any,
        node: Any,
        scheme: str,
        compression: str | None,
        time_start: int | None,
        time_end: int | None,
    ) -> None: ...

    def describe(self, node: Any, config: bytes | None) -> dict[str, Any]: ...

    def read_bytes(self, node: Any) -> bytes: ...


def row_at(fs: NodeStore, loc: LocatedNode, version: int | None) -> nodes.NodeRow:
    """The row of `version` of a located node (None: its latest)."""
    if version is None:
        return loc.row
    for row in fs.versions(loc.part_id, loc.node_id):
        if row.version == version:
            return row
    raise NotFoundError(f"{loc.path} has no version {version}")


def no_version(path: str, version: int | None) -> None:
    if version is not None:
        raise InvalidPathError(
            f"{path} is derived: it is computed from its inputs, it has no stored versions"
        )
