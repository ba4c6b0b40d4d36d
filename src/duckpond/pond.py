"""`Pond`: the library API. The CLI is a thin layer over this class.

pond = Pond.create("/data/pond")
with pond.transaction(args=["load"]) as tx:
    tx.mkdir("/sensors", parents=True)
    tx.write_series("/sensors/temp", arrow_table)
pond.sql("SELECT avg(value) FROM source", path="/sensors/temp")
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from . import nodes
from .errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondError, QueryError
from .factories import base as factory_base
from .factories import registry
from .query import ingest
from .query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from .dynamic import Resolver
    from .factories.live import LiveNode
    from .query import sql
from .steward.control import ControlTable
from .steward.steward import Steward
from .storage.blobs import BlobStore
from .storage.datatable import DataTable
from .storage.fs import Located, StagedTxn
from .txn import WriteTxn


@dataclass(frozen=True)
class EntryInfo:
    path: str
    type: str
    version: int
    size: int

    def to_json(self) -> dict[str, Any]:
        # not asdict(): its deep copy costs more than the listing itself for big ones
        return {"path": self.path, "type": self.type, "version": self.version, "size": self.size}


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class Pond:
    def __init__(
        self, root: Path, data: DataTable, control: ControlTable | None, wait: float = 0.0
    ) -> None:
        self.root = root
        self._data = data
        self._control = control
        self.blobs = BlobStore(root / "blobs")
        self.wait = wait
        self._steward: Steward | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, wait: float = 0.0, args: list[str] | None = None) -> Pond:
        root = Path(path).absolute()
        if (root / "data").exists() or (root / "control").exists():
            raise AlreadyExistsError(f"a pond already exists at {root}")
        if root.exists() and not root.is_dir():
            raise AlreadyExistsError(f"{root} exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        identity = {
            "pond_id": nodes.uuid7(),
            "created": _iso(nodes.now_us()),
            "user": getpass.getuser(),
            "host": socket.gethostname(),
        }
        desc = json.dumps({"pond": identity}, sort_keys=True)
        data = DataTable.create(root / "data", desc)
        control = ControlTable.create(root / "control", identity)
        (root / "blobs").mkdir(exist_ok=True)
        pond = cls(root, data, control, wait)
        with pond.steward.locked():
            with pond.steward.transaction(args or ["pond", "init"], {}) as tx:
                tx._staged.create_root()
        return pond

    @classmethod
    def open(cls, path: str | Path, wait: float = 0.0) -> Pond:
        root = Path(path).absolute()
        if not (root / "data" / "_delta_log").is_dir():
            raise NotFoundError(f"no pond at {root} (create one with `pond init`)")
        # Both tables are opened on first use: plain reads never need the control table,
        # and `pond control` never needs the data table.
        return cls(root, None, None, wait)

    @property
    def data(self) -> DataTable:
        if self._data is None:
            data = DataTable.open(self.root / "data")
            if data.last_txn_seq() == 0:
                raise PondError(
                    f"the pond at {self.root} was never initialized completely; "
                    "remove it and run init"
                )
            self._data = data
        return self._data

    @property
    def control(self) -> ControlTable:
        if self._control is None and (self.root / "control" / "_delta_log").is_dir():
            self._control = ControlTable.open(self.root / "control")
        if self._control is None:
            raise PondError(
                f"the control table of {self.root} is missing; run `pond rebuild-control`"
            )
        return self._control

    @property
    def steward(self) -> Steward:
        if self._steward is None:
            self._steward = Steward(self.root, self.data, self.control, self.blobs, self.wait)
        return self._steward

    def identity(self) -> dict[str, Any]:
        """Pond id, creation time, user and host, recorded once at init (in both tables)."""
        if self._data is None and (self.root / "control" / "_delta_log").is_dir():
            return self.control.identity()
        try:
            return json.loads(self.data.description() or "{}").get("pond", {})
        except ValueError:
            return {}

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(
        self, args: list[str] | None = None, vars: dict[str, str] | None = None
    ) -> Iterator[WriteTxn]:
        """One recorded write transaction; post-commit tasks run when it committed data."""
        with self.steward.transaction(args or ["python"], vars) as tx:
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
        fac = registry.get(factory)
        parsed = factory_base.parse_config(config, "the config")
        fac.validate(parsed)  # a bad config is refused before anything is written
        with self.transaction(args or ["pond", "mknod", factory, path], vars) as tx:
            tx.mknod(path, factory, fac.file_type, config, overwrite=overwrite)
            if fac.kind == factory_base.DATA:
                from .dynamic import check_node

                # a missing input, a cycle or SQL that does not plan fails before the commit
                check_node(tx._staged, path)

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

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        self.data.refresh()

    def lookup(self, path: str) -> Located | None:
        return self._fs().lookup(path)

    def _fs(self):  # noqa: ANN202 - PondFS without a steward (control table may be missing)
        from .storage.fs import PondFS

        return PondFS(self.data, self.blobs)

    def require(self, path: str) -> Located:
        return self._fs().require(path)

    def resolver(self) -> Resolver:
        """Turns factory nodes into live (derived) nodes for one read; see dynamic/."""
        from .dynamic import Resolver

        return Resolver.for_pond(self)

    def derived(self, path: str) -> LiveNode | None:
        """The live node when `path` is derived (a data factory node or inside a dynamic
        directory), None when it is stored; NotFoundError when there is nothing."""
        from .dynamic import reads

        return reads.derived(self.resolver(), path)

    def node_type(self, path: str) -> str:
        """The entry type of `path`, also inside dynamic directories."""
        node = self.derived(path)
        return node.file_type if node is not None else self.require(path).file_type

    def list(self, pattern: str = "/**/*") -> list[EntryInfo]:
        from .dynamic import reads

        return [EntryInfo(*e) for e in reads.entries(self.resolver(), pattern)]

    def versions(self, path: str) -> list[nodes.NodeRow]:
        loc = self.require(path)
        return self._fs().versions(loc.part_id, loc.node_id)

    def _row(self, loc: Located, version: int | None) -> nodes.NodeRow:
        if version is None:
            return loc.row
        for row in self._fs().versions(loc.part_id, loc.node_id):
            if row.version == version:
                return row
        raise NotFoundError(f"{loc.path} has no version {version}")

    def read_bytes(self, path: str, version: int | None = None) -> bytes:
        node = self.derived(path)
        if node is not None:
            from .dynamic import reads

            _no_version(node.path, version)
            return reads.read_bytes(node)
        loc = self.require(path)
        if nodes.is_dir(loc.file_type):
            raise InvalidPathError(f"is a directory: {loc.path}")
        return self._fs().content(self._row(loc, version))

    def describe(self, path: str) -> dict[str, Any]:
        node = self.derived(path)
        if node is not None:
            return self._describe_derived(node)
        loc = self.require(path)
        fs = self._fs()
        versions = fs.versions(loc.part_id, loc.node_id)
        out: dict[str, Any] = {"path": loc.path, "type": loc.file_type, "size": loc.row.size}
        if loc.row.factory:
            out["factory"] = loc.row.factory
        if nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
            source = fs.blob_path(loc.row) or loc.row.content or b""
            schema = ingest.read_parquet_schema(source, loc.path)
            out["schema"] = [{"name": f.name, "type": str(f.type)} for f in schema]
            if nodes.is_series(loc.file_type):
                out["time_column"] = loc.row.extended_attributes.get("time_column")
        out["versions"] = [
            {
                "version": r.version,
                "txn_seq": r.txn_seq,
                "timestamp": _iso(r.timestamp),
                "size": r.size,
                "min_event_time": _iso(r.min_event_time),
                "max_event_time": _iso(r.max_event_time),
            }
            for r in versions
        ]
        return out

    def _describe_derived(self, node: LiveNode) -> dict[str, Any]:
        from .dynamic import reads

        loc = self.lookup(node.path)
        stored = loc is not None and loc.row.factory is not None
        out = reads.describe(node, self._fs().content(loc.row) if stored and loc else None)
        if stored and loc is not None:
            out["size"] = loc.row.size
        rows = self._fs().versions(loc.part_id, loc.node_id) if stored and loc else []
        out["versions"] = [
            {
                "version": r.version,
                "txn_seq": r.txn_seq,
                "timestamp": _iso(r.timestamp),
                "size": r.size,
            }
            for r in rows
        ]
        return out

    def _part(self, row: nodes.NodeRow) -> sql.Part:
        from .query import sql

        path = self._fs().blob_path(row)
        return sql.Part(
            path=path,
            data=row.content if path is None else None,
            min_time=row.min_event_time,
            max_time=row.max_event_time,
        )

    def sql(
        self,
        query: str = "SELECT * FROM source",
        path: str | None = None,
        version: int | None = None,
        time_start: int | None = None,
        time_end: int | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> pa.Table:
        """Run read-only SQL over a pond file (as `source`/`series`) or a host URL, within
        `timeout` seconds and `memory_limit` bytes (None: unbounded; see query/limits.py)."""
        from .query import sql

        ctx = sql.make_context(memory_limit)
        if path is not None:
            self._register(ctx, path, version, time_start, time_end)
        return sql.run_sql(ctx, query, timeout)

    def read_table(self, path: str, version: int | None = None) -> pa.Table:
        return self.sql("SELECT * FROM source", path=path, version=version)

    def _register(
        self, ctx: Any, url: str, version: int | None, time_start: int | None, time_end: int | None
    ) -> None:
        register_source(ctx, url, self, version, time_start, time_end)

    # -- steward views -----------------------------------------------------------------------
    def control_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        from .steward import summaries

        state = self.control.read_all(columns=summaries.RECENT_COLUMNS, ordered=False)
        return summaries.recent(state, limit, load=lambda s: self.control.read_all(min_seq=s))

    def control_detail(self, txn_seq: int) -> dict[str, Any]:
        from .steward import summaries

        d = summaries.detail(self.control.read_all(), txn_seq)
        if d is None:
            raise NotFoundError(f"no transaction with txn_seq {txn_seq}")
        return d

    def control_incomplete(self) -> dict[str, Any]:
        from .steward import summaries

        if summaries.nothing_unfinished(self.control):
            return {"transactions": [], "tasks": []}
        report = summaries.incomplete(self.control.read_all())
        # The control table may not know yet that a commit landed (a crash right after the
        # data commit): the data table's pond_txn metadata is the authority. A read only.
        unsure = [t for t in report["transactions"] if t["status"] == "incomplete"]
        if unsure:
            committed = {p.get("txn_id") for _, p in self.data.pond_txns()}
            for t in unsure:
                if t["txn_id"] in committed:
                    t["status"] = "committed"
        return report

    def control_sql(
        self,
        query: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> pa.Table:
        from .steward.queries import control_sql

        return control_sql(self, query, timeout, memory_limit)

    def recover(self, retry_failed: bool = False) -> dict[str, Any]:
        from .steward import summaries
        from .steward.recovery import recover

        # The idle case, without the lock or the data table: a writer at work shows an
        # open `begin`, and then recover waits its turn at the lock like any writer.
        if not retry_failed and summaries.nothing_unfinished(self.control):
            return {"transactions": [], "tasks": []}
        return recover(self.steward, retry_failed=retry_failed)

    def maintain(self, retention_hours: float = 1.0) -> dict[str, Any]:
        from .steward.maintenance import maintain

        return maintain(self, retention_hours=retention_hours)


def register_source(
    ctx: Any,
    url: str,
    pond: Pond | None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
) -> None:
    """Register what `url` names as the SQL tables `source` and `series`."""
    from .query import sql
    from .query.urls import parse_source

    src = parse_source(url)
    if src.scheme == "host":
        if src.fmt == "csv":
            sql.register_table_arrow(ctx, ingest.read_csv_file(src.path, src.compression))
        elif src.fmt in ("table", "series"):
            ingest.read_parquet_schema(Path(src.path), src.path)
            sql.register_parts(
                ctx, [sql.Part(path=src.path, data=None, min_time=None, max_time=None)]
            )
        else:
            raise QueryError(f"{url} is raw bytes; read it as host+csv:// or host+table://")
        return
    if pond is None:
        raise PondError("no pond given (use --pond PATH or set $POND)")
    node = pond.derived(src.path)
    if node is not None:
        from .dynamic import reads

        _no_version(node.path, version)
        reads.register(ctx, node, src.scheme, src.compression, time_start, time_end)
        return
    loc = pond.require(src.path)
    fs = pond._fs()
    if src.scheme == "csv":
        if not nodes.is_file(loc.file_type):
            raise InvalidPathError(f"not a file: {loc.path}")
        data = fs.content(pond._row(loc, version))
        sql.register_table_arrow(ctx, ingest.read_csv_bytes(data, src.compression, loc.path))
        return
    if nodes.is_dir(loc.file_type):
        raise InvalidPathError(f"is a directory: {loc.path}")
    if nodes.is_dynamic(loc.file_type):
        raise QueryError(f"{loc.path} is a {loc.row.factory} factory node, not a table")
    if nodes.is_table(loc.file_type):
        sql.register_parts(ctx, [pond._part(pond._row(loc, version))])
    elif nodes.is_series(loc.file_type):
        rows = fs.versions(loc.part_id, loc.node_id)
        if version is not None:
            rows = [pond._row(loc, version)]
        column = loc.row.extended_attributes.get("time_column")
        sql.register_parts(
            ctx,
            [pond._part(r) for r in rows],
            time_column=column,
            time_start=time_start,
            time_end=time_end,
        )
    else:
        raise QueryError(
            f"{loc.path} is a raw file; query it as csv://{loc.path} or store it as a table"
        )


def _no_version(path: str, version: int | None) -> None:
    if version is not None:
        raise InvalidPathError(
            f"{path} is derived: it is computed from its inputs, it has no stored versions"
        )


def pond_path_from_env(explicit: str | None) -> Path:
    value = explicit or os.environ.get("POND")
    if not value:
        raise PondError("no pond given: use --pond PATH or set $POND")
    return Path(value)


__all__ = ["Pond", "EntryInfo", "StagedTxn", "pond_path_from_env"]
