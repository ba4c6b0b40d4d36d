"""`Pond`: the library API. The CLI is a thin layer over this class.

pond = Pond.create("/data/pond")
with pond.transaction(args=["load"]) as tx:
    tx.mkdir("/sensors", parents=True)
    tx.write_series("/sensors/temp", arrow_table)
pond.sql("SELECT avg(value) FROM source", path="/sensors/temp")
"""

from __future__ import annotations

import datetime as dt
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import nodes, paths
from ..errors import (
    InvalidPathError,
    NotFoundError,
    PondError,
)
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from ..query.sources import TimeLike, to_us
from ..results import Description, EntryInfo
from ..steward.handles import PondHandles
from ..storage.fs import Located
from ..storage.staging import StagedTxn
from .export import ExportMethods
from .remotemethods import RemoteMethods
from .series import SeriesMethods
from .sqlmethods import SqlMethods
from .stream import StreamMethods, stream_source
from .tlog import TlogMethods
from .undo import UndoMethods
from .upkeep import StewardMethods

if TYPE_CHECKING:
    # Imported for types only: pyarrow, DuckDB and the factories load on first use,
    # so `pond --help` and `pond list` start fast.
    import pyarrow as pa

    from ..dynamic import Resolver
    from ..factories.live import LiveNode
    from ..query.pondview import DerivedReads
    from ..remotes.info import Transfer
    from ..reports import (
        IncompleteReport,
        MaintainReport,
        RebuildReport,
        RecoverReport,
        TxnDetail,
        TxnSummary,
    )
    from ..site import SiteReport
    from ..storage.objstore import StoreOptions
    from ..txn import WriteTxn


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class Pond(
    ExportMethods,
    RemoteMethods,
    SeriesMethods,
    SqlMethods,
    StewardMethods,
    StreamMethods,
    TlogMethods,
    UndoMethods,
    PondHandles,
):
    """A pond: open one with `Pond.open(path)` (or `Pond.create(path)`); every `pond`
    command is one call on it. Handles are cheap; a long-lived one sees new commits.
    Its root, tables, blob store and steward: `PondHandles` (steward/handles.py)."""

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, wait: float = 0.0, args: list[str] | None = None) -> Pond:
        from ..steward import newpond

        root = Path(path).absolute()
        data, control = newpond.create(root, _iso(nodes.now_us()), args or ["pond", "init"], wait)
        return cls(root, data, control, wait)

    @classmethod
    def open(cls, path: str | Path, wait: float = 0.0) -> Pond:
        root = Path(path).absolute()
        if not (root / "data" / "_delta_log").is_dir():
            raise NotFoundError(f"no pond at {root} (create one with `pond init`)")
        # Both tables are opened on first use: plain reads never need the control table,
        # and `pond control` never needs the data table.
        return cls(root, None, None, wait)

    def job_reader(self) -> Callable[[], Pond]:
        # Jobs read the pond through this Pond (RunContext.reader): never a second one.
        # A weak reference: the steward does not keep its Pond alive (no cycle).
        ref = weakref.ref(self)

        def reader() -> Pond:
            pond = ref()
            if pond is None:
                raise PondError("the Pond running this job is gone")
            return pond

        return reader

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(
        self,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[WriteTxn]:
        """One recorded write transaction; post-commit tasks run when it committed data
        (`progress(done, total)`: what jobs that report progress call, a remote's push)."""
        with self.steward.transaction(args or ["python"], vars, progress=progress) as tx:
            yield tx

    def mknod(
        self,
        factory: str,
        path: str,
        config: bytes,
        overwrite: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> None:
        from ..factories import base as factory_base
        from ..factories import registry

        fac = registry.get(factory)
        parsed = factory_base.parse_config(config, "the config")
        fac.validate(parsed)  # a bad config is refused before anything is written
        with self.transaction(args or ["pond", "mknod", factory, path], vars) as tx:
            tx.mknod(path, factory, fac.file_type, config, overwrite=overwrite)
            if fac.kind == factory_base.DATA:
                from ..dynamic import check_node

                # a missing input, a cycle or SQL that does not plan fails before the commit
                check_node(tx.staged, path)

    def run(
        self,
        path: str,
        run_args: list[str] | None = None,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> int:
        return self.steward.run_node(
            path, run_args or [], args or ["pond", "run", path], vars or {}
        )

    # -- copying ---------------------------------------------------------------------------
    def copy_in(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        time_column: str | None = None,
        parents: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
        time_format: str | None = None,
    ) -> list[str]:
        """Copy host files into the pond in one transaction; returns the pond paths written.

        Each source is a host URL (SPEC §7): `host:///abs/path` (raw bytes),
        `host+table:///x.parquet`, `host+series:///x.parquet`, `host+csv+table:///x.csv`,
        `host+csv+series:///x.csv`, with `+gzip`/`+zstd` after the format. Into a directory
        when `dest` ends with `/`, names an existing directory, or there are several
        sources; onto an existing series path, a series source appends a version.
        `parents`: create missing directories on the way (as `mkdir -p`).
        `progress` is called with byte counts as they are copied. `time_column`: a series'
        event-time column (else detected), remembered by the series; `time_format`: how a
        CSV writes its times when not ISO 8601 (strptime syntax: `%Y/%m/%d`).
        """
        from .. import hostcopy
        from ..query.sources import copy_one

        parsed, dest_norm = hostcopy.parse_sources(sources, dest)
        tick = progress or (lambda n: None)
        with self.transaction(args or ["pond", "copy", *sources, dest], vars) as tx:
            if parents:
                into_dir = dest.endswith("/") or len(parsed) > 1
                tx.mkdir(dest_norm if into_dir else paths.parent(dest_norm), parents=True)
            dest_is_dir = tx.exists(dest_norm) and self._is_dir(dest_norm)
            targets = hostcopy.targets(parsed, dest, dest_norm, dest_is_dir)
            for s, target in zip(parsed, targets, strict=True):
                copy_one(tx, s, target, time_column, tick, time_format)
        return targets

    def copy_out(self, patterns: str | Sequence[str], host_dir: str | Path) -> list[Path]:
        """Copy the pond files matching glob(s) into `host_dir`, keeping the tree below each
        pattern's literal prefix; returns the host paths written.

        A series is written as the Parquet union of its versions; dynamic nodes are skipped.
        Every target is checked before the first is written (a bad name or a symlink in the
        way writes nothing), and no symlink at or below `host_dir` is ever followed.
        """
        from .. import hostcopy

        return hostcopy.copy_out(
            self, [patterns] if isinstance(patterns, str) else patterns, host_dir
        )

    # -- reading ---------------------------------------------------------------------------
    def _is_dir(self, path: str) -> bool:
        loc = self.lookup(path)
        return loc is not None and nodes.is_dir(loc.file_type)

    def resolver(self) -> Resolver:
        """Turns factory nodes into live (derived) nodes for one read; see dynamic/."""
        from ..dynamic import Resolver

        return Resolver.for_pond(self)

    def derived(self, path: str) -> LiveNode | None:
        """The live node when `path` is derived (a data factory node or inside a dynamic
        directory), None when it is stored; NotFoundError when there is nothing."""
        from ..dynamic import reads

        return reads.derived(self.resolver(), path)

    def node_type(self, path: str) -> str:
        """The entry type of `path`, also inside dynamic directories."""
        node = self.derived(path)
        return node.file_type if node is not None else self.require(path).file_type

    def versions(self, path: str) -> list[nodes.NodeRow]:
        loc = self.require(path)
        return self.fs.versions(loc.part_id, loc.node_id)

    def row_at(self, loc: Located, version: int | None) -> nodes.NodeRow:
        """The row of `version` of a located node (None: its latest)."""
        if version is None:
            return loc.row
        for row in self.fs.versions(loc.part_id, loc.node_id):
            if row.version == version:
                return row
        raise NotFoundError(f"{loc.path} has no version {version}")

    def read_bytes(self, path: str, version: int | None = None) -> bytes:
        """The bytes of a pond file (a table or series version: its Parquet bytes; a derived
        table or series: its computed rows as Parquet)."""
        node = self.derived(path)
        if node is not None:
            from ..dynamic import reads
            from ..query.pondview import no_version

            no_version(node.path, version)
            return reads.read_bytes(node)
        loc = self.require(path)
        if nodes.is_dir(loc.file_type):
            raise InvalidPathError(f"is a directory: {loc.path}")
        return self.fs.content(self.row_at(loc, version))

    def is_raw(self, url: str) -> bool:
        """True when `url` is a bare pond path to a node that is not a table or series:
        what `pond cat` prints as raw bytes rather than as a table."""
        from ..query.urls import parse_source

        src = parse_source(url)
        if src.scheme != "pond":
            return False
        ftype = self.node_type(src.path)
        return not (nodes.is_table(ftype) or nodes.is_series(ftype))

    def describe(self, path: str) -> Description:
        """Type, size, schema and versions of a pond node; the schema of a host URL."""
        return describe_source(path, self)

    def read(
        self,
        url: str,
        sql: str | None = None,
        version: int | None = None,
        time_range: tuple[TimeLike, TimeLike] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> pa.Table:
        """A pond table/series, a raw pond file read as CSV (`csv:///path`) or a host file
        (`host+csv:///x.csv`, `host+table:///x.parquet`) as Arrow, optionally through
        read-only SQL over it as `source`. `time_range` (start, end), each None, µs since
        the epoch, an ISO 8601 string or a datetime, limits a series to those event times.
        The query runs within `timeout` seconds and `memory_limit` bytes (None: unbounded)."""
        return read_source(
            url,
            self,
            sql=sql,
            version=version,
            time_range=time_range,
            timeout=timeout,
            memory_limit=memory_limit,
        )

    def read_table(self, path: str, version: int | None = None) -> pa.Table:
        return self.sql("SELECT * FROM source", path=path, version=version)

    # -- static site ---------------------------------------------------------------------------
    def site_build(
        self, out_dir: str | Path, config: str | Path | dict[str, Any] | None = None
    ) -> SiteReport:
        """Write a static, offline site of this pond to `out_dir` (never half written; only
        files earlier builds wrote there are replaced or removed): charts of its series and
        the steward's status page. `config`: a site.yaml path, a parsed mapping, or None for
        the defaults (see docs/site.md)."""
        from .. import site

        if config is None or isinstance(config, str | Path):
            cfg = site.load(None if config is None else str(config))
        else:
            cfg = site.parse(config)
        return site.build(self, out_dir, cfg)

    @classmethod
    def restore(
        cls,
        path: str | Path,
        name: str,
        url: str,
        *,
        options: StoreOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
        wait: float = 0.0,
        timeout: float | None = None,
    ) -> tuple[Pond, Transfer]:
        """Create the pond at `path` (absent or empty) from the backup at `url`: same pond
        id, identical bytes, whole history; it stays a read-only mirror of `name`.
        `timeout`: seconds each S3 request may take (kept with the mirror; default 30)."""
        from ..remotes import ops
        from ..storage.objstore import StoreOptions

        transfer = ops.restore(
            Path(path),
            name,
            url,
            options=(options or StoreOptions()).with_timeout(timeout),
            progress=progress,
        )
        return cls.open(path, wait=wait), transfer

    # Last in the class: a method named `list` shadows the builtin in the class body from
    # where it is defined on, so every annotation above says plain `list[...]`.
    def list(self, pattern: str = "/**/*") -> list[EntryInfo]:
        """Entries matching a glob; dynamic directories list their children."""
        from ..dynamic import reads

        return [EntryInfo(*e) for e in reads.entries(self.resolver(), pattern)]


def _derived_reads() -> DerivedReads:
    from ..dynamic import reads

    return reads


def read_source(
    url: str,
    pond: Pond | None,
    sql: str | None = None,
    version: int | None = None,
    time_range: tuple[TimeLike, TimeLike] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> pa.Table:
    """`Pond.read`, also without a pond for host URLs (`pond cat host+csv:///x.csv`)."""
    from ..query import sources

    derived = _derived_reads() if pond is not None else None
    return sources.read_source(url, pond, derived, sql, version, time_range, timeout, memory_limit)


def describe_source(url: str, pond: Pond | None) -> Description:
    """`Pond.describe`, also without a pond for host URLs."""
    from ..query.describe import describe_source as describe

    return describe(url, pond, _derived_reads() if pond is not None else None)


def pond_path_from_env(explicit: str | None) -> Path:
    value = explicit or os.environ.get("POND")
    if not value:
        raise PondError("no pond given: use --pond PATH or set $POND")
    return Path(value)


def __getattr__(name: str) -> object:
    """The control-table reports, importable from here as before (loaded on first use)."""
    if name in _REPORTS:
        from .. import reports

        return getattr(reports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_REPORTS = frozenset(
    {
        "IncompleteReport",
        "MaintainReport",
        "RebuildReport",
        "RecoverReport",
        "TxnDetail",
        "TxnSummary",
    }
)
__all__ = [
    "Description",
    "EntryInfo",
    "IncompleteReport",
    "MaintainReport",
    "Pond",
    "RebuildReport",
    "RecoverReport",
    "StagedTxn",
    "TxnDetail",
    "TxnSummary",
    "describe_source",
    "pond_path_from_env",
    "read_source",
    "stream_source",
    "to_us",
]
