"""The resolver: pond paths and globs to live nodes, building factory nodes on demand.

One Resolver serves one read (a command, a library call): it memoizes what it builds, so a
node used by several others is built once, and it keeps the stack of nodes being built, so a
cycle between derived nodes is an error naming the cycle instead of endless recursion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import nodes, paths, seriesview
from ..errors import FactoryError, NotFoundError, PondError
from ..factories.live import LiveData, LiveDir, LiveFile, LiveNode
from ..storage.direntries import DirEntries
from ..storage.fs import Located, PondFS, locate
from ..storage.seriesparts import SeriesPart, row_parts
from ..storage.staging import StagedTxn
from .cache import DerivedCache
from .physical import StoredData, StoredDir, StoredFile

if TYPE_CHECKING:
    import pyarrow as pa

    from ..factories import base as factory_base

log = logging.getLogger("pond")

# how many generated children per level a mknod check builds (they share one config)
CHECK_CHILDREN = 3


class Resolver:
    def __init__(self, fs: PondFS, cache: DerivedCache | None = None) -> None:
        self.fs = fs
        self.cache = cache
        self._built: dict[str, LiveNode] = {}
        self._stack: list[str] = []
        self._results: dict[str, pa.Table] = {}
        self._lenient = False  # listing: a node that cannot be built is listed, with a warning

    @classmethod
    def for_pond(cls, pond: Any, cache: bool = True) -> Resolver:
        from ..storage.fs import PondFS

        store = DerivedCache(Path(pond.root) / "cache" / "derived") if cache else None
        return cls(PondFS(pond.data, pond.blobs), store)

    # -- nodes -----------------------------------------------------------------------------
    def node_for(self, loc: Located) -> LiveNode:
        if loc.row.factory and nodes.is_dynamic(loc.file_type):
            from ..factories import base as factory_base
            from ..factories import registry

            try:
                fac = registry.get(loc.row.factory)
            except FactoryError as e:  # not installed, or its plugin fails to load
                if not self._lenient:
                    raise
                log.warning("%s: %s", loc.path, " ".join(str(e).split()))
                return Unbuilt(loc)  # listed all the same: its siblings stay visible
            if fac.kind == factory_base.DATA:
                if not self._lenient:
                    return self._build_stored(loc, fac)
                try:
                    return self._build_stored(loc, fac)
                except PondError as e:
                    log.warning("%s: %s", loc.path, " ".join(str(e).split()))
                    return Unbuilt(loc)
        if nodes.is_dir(loc.file_type):
            return StoredDir(self, loc)
        if nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
            return StoredFile(self.fs, loc)
        return StoredData(self.fs, loc)

    def _build_stored(self, loc: Located, fac: factory_base.Factory) -> LiveNode:
        if loc.path in self._built:
            return self._built[loc.path]
        from ..factories import base as factory_base

        raw = factory_base.parse_config(self.fs.content(loc.row), f"config of {loc.path}")
        node = self.build(loc.path, fac.name, raw)
        node.version = loc.row.version  # type: ignore[attr-defined]
        node.size = loc.row.size  # type: ignore[attr-defined]
        return node

    def build(self, path: str, factory: str, config: dict[str, Any]) -> LiveNode:
        """Build a factory node at `path` (stored, or inline in a dynamic-dir)."""
        if path in self._stack:
            cycle = [*self._stack[self._stack.index(path) :], path]
            raise FactoryError(f"cycle between derived nodes: {' -> '.join(cycle)}")
        if path in self._built:
            return self._built[path]
        from ..factories import base as factory_base
        from ..factories import registry

        fac = registry.get(factory)
        if fac.kind != factory_base.DATA:
            raise FactoryError(f"{path}: {factory} runs jobs, it does not make a file or directory")
        self._stack.append(path)
        try:
            cfg = fac.validate(factory_base.expand_env(config) if fac.config_on_read else config)
            node: LiveNode = fac.build(cfg, _Context(self, path))
        finally:
            self._stack.pop()
        node.path = path
        node.file_type = fac.file_type
        node.factory = fac.name
        self._built[path] = node
        return node

    # -- paths -----------------------------------------------------------------------------
    def lookup(self, path: str) -> LiveNode | None:
        """The live node at `path`, descending into dynamic directories; None if missing."""
        path = paths.normalize(path)
        try:
            loc = self.fs.lookup(path)
        except NotFoundError:
            return None
        if loc is not None:
            return self.node_for(loc)
        names = paths.split(path)
        for i in range(len(names) - 1, 0, -1):
            prefix = "/" + "/".join(names[:i])
            try:
                loc = self.fs.lookup(prefix)
            except NotFoundError:
                continue
            if loc is None:
                continue
            if loc.file_type != nodes.DIR_DYNAMIC:
                return None
            node: LiveNode | None = self.node_for(loc)
            for name in names[i:]:
                if not isinstance(node, LiveDir):
                    return None
                node = node.child(name)
                if node is None:
                    return None
            return node
        return None

    def require(self, path: str) -> LiveNode:
        node = self.lookup(path)
        if node is None:
            raise NotFoundError(f"no such file or directory: {paths.normalize(path)}")
        return node

    @contextmanager
    def strict(self) -> Iterator[None]:
        """Build errors raise inside, also while a lenient listing is under way."""
        saved, self._lenient = self._lenient, False
        try:
            yield
        finally:
            self._lenient = saved

    def glob(self, pattern: str, strict: bool = True) -> list[LiveNode]:
        """Nodes matching a glob, descending into dynamic directories.

        strict=False (listing): a factory node that cannot be built is listed with a warning
        (a directory without children), so one broken node does not hide the whole pond."""
        if not strict:
            self._lenient = True
            try:
                return self.glob(pattern, strict=True)
            finally:
                self._lenient = False
        pat = paths.compile_glob(pattern)
        if not paths.has_glob(pattern):
            try:  # a literal path lists a symlink itself, not its target
                loc = self.fs.lookup(pattern, follow=False)
            except NotFoundError:
                return []
            node = self.node_for(loc) if loc is not None else self.lookup(pattern)
            if node is not None and pattern.endswith("/") and isinstance(node, LiveDir):
                return list(self._children(node))  # `/` alone: the root's entries (SPEC §3)
            return [] if node is None else [node]
        start = self.lookup(pat.literal_prefix)
        if start is None:
            return []
        out: list[LiveNode] = []
        self._walk(start, pat, out)
        return out

    def _children(self, node: LiveDir) -> list[LiveNode]:
        if not self._lenient:
            return node.children()
        try:
            return node.children()
        except PondError as e:
            log.warning("%s: %s", node.path, " ".join(str(e).split()))
            return []

    def _walk(self, node: LiveNode, pat: paths.GlobPattern, out: list[LiveNode]) -> None:
        if pat.match(node.path):
            out.append(node)
        if isinstance(node, LiveDir) and pat.could_match_below(node.path):
            for child in self._children(node):
                self._walk(child, pat, out)

    # -- results ---------------------------------------------------------------------------
    def cached(self, key: str, compute: Callable[[], pa.Table]) -> pa.Table:
        if key in self._results:
            return self._results[key]
        table = self.cache.get(key) if self.cache is not None else None
        if table is None:
            table = compute()
            if self.cache is not None:
                self.cache.put(key, table)
        self._results[key] = table
        return table


class Unbuilt(LiveNode):
    """A stored factory node that could not be built (listing shows it all the same)."""

    def __init__(self, loc: Located) -> None:
        self.path = loc.path
        self.file_type = loc.file_type
        self.factory = loc.row.factory
        self.version = loc.row.version
        self.size = loc.row.size

    def key(self) -> str:
        return self.path


class _Context:
    """The BuildContext a factory sees while building the node at `path`."""

    def __init__(self, resolver: Resolver, path: str) -> None:
        self.resolver = resolver
        self.path = path

    # a factory's inputs are strict even while listing: a broken input is an error,
    # never silently missing from the result
    def glob(self, pattern: str) -> list[LiveNode]:
        """A pond glob, or a format URL (`oteljson:///ingest/*.json`): its raw files parsed."""
        src = None
        if "://" in pattern:
            from ..query.urls import parse_source

            src = parse_source(pattern)
            if src.format is None or src.is_host:
                raise FactoryError(f"{pattern}: an input is a pond path or FORMAT:///pond/path")
        with self._strict():
            found = self.resolver.glob(src.path if src else pattern, strict=True)
        if src is None:
            return found
        from .formatted import formatted

        return formatted(found, src, pattern)

    def lookup(self, path: str) -> LiveNode | None:
        with self._strict():
            return self.resolver.lookup(path)

    def build(self, path: str, factory: str, config: dict[str, Any]) -> LiveNode:
        with self._strict():
            return self.resolver.build(path, factory, config)

    @contextmanager
    def _strict(self) -> Iterator[None]:
        with self.resolver.strict():
            yield

    @property
    def pond_root(self) -> Path:
        """The pond's directory (an import mount reads the copy kept under it)."""
        return Path(self.resolver.fs.table.path).parent

    def cached(self, key: str, compute: Callable[[], pa.Table]) -> pa.Table:
        return self.resolver.cached(key, compute)

    def private_bytes(self, key: str) -> bytes | None:
        from ..storage import private

        fs = self.resolver.fs
        try:
            loc = fs.lookup(self.path, follow=False)
        except NotFoundError:
            return None
        if loc is None or loc.file_type != nodes.DIR_DYNAMIC:
            return None  # a node made inline by a dynamic-dir has no rows of its own
        row = private.latest(fs, loc.node_id, key)
        return None if row is None else fs.content(row)


# ---------------------------------------------------------------------------------------------
# checking a factory node inside the write transaction that creates it


class StagedView(PondFS):
    """The committed pond plus one write transaction's staged changes, read-only."""

    def __init__(self, staged: StagedTxn) -> None:
        super().__init__(staged.fs.table, staged.fs.blobs)
        self.staged = staged

    def versions(self, part_id: str, node_id: str) -> list[nodes.NodeRow]:
        rows = list(super().versions(part_id, node_id))
        new = self.staged.staged_row(node_id)
        if new is not None:
            rows = [r for r in rows if r.version != new.version] + [new]
        return rows

    def series_parts(
        self,
        part_id: str,
        node_id: str,
        start: int | None = None,
        end: int | None = None,
        cached: bool = False,
    ) -> list[SeriesPart]:
        if self.staged.staged_row(node_id) is None:
            return super().series_parts(part_id, node_id, start, end, cached)
        return row_parts(self.blobs, self.versions(part_id, node_id), start, end)

    def series_cache_dir(self, part_id: str, node_id: str) -> Path | None:
        # a staged version is no committed one: no cache is written for this view
        return None

    def series_bounds(self, part_id: str, node_id: str) -> seriesview.Bounds:
        if self.staged.staged_row(node_id) is None:
            return super().series_bounds(part_id, node_id)
        return seriesview.bounds(self.versions(part_id, node_id))

    def latest(self, part_id: str, node_id: str) -> nodes.NodeRow | None:
        return self.staged.latest(part_id, node_id)

    def entries_of(self, loc: Located) -> DirEntries:
        return self.staged.entries_of(loc)

    def children(self, loc: Located) -> Iterator[Located]:
        for entry in self.entries_of(loc).entries():
            yield locate(self, loc, entry, paths.join(loc.path, entry.name))


def check_node(staged: StagedTxn, path: str) -> None:
    """Build the factory node at `path` as its transaction would commit it, and compute its
    schema (a directory: its children, one level of files each): a missing input, a cycle or
    SQL that does not plan fails here, before anything is written."""
    resolver = Resolver(StagedView(staged))
    node = resolver.require(path)
    _check(node, depth=0)


def _check(node: LiveNode, depth: int) -> None:
    if isinstance(node, LiveFile):
        node.schema()
    elif isinstance(node, LiveData):
        node.read_bytes()  # a template that does not render fails here
    elif isinstance(node, LiveDir) and depth < 3:
        # every child of a dynamic-dir (they differ); the first few of a generated one
        names = node.names()
        every = node.factory == "dynamic-dir"
        for name in names if every else names[:CHECK_CHILDREN]:
            child = node.child(name)
            if child is not None:
                _check(child, depth + 1)
