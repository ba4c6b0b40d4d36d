"""`Pond`: the library API. The CLI is a thin layer over this class.

pond = Pond.create("/data/pond")
with pond.transaction(args=["load"]) as tx:
    tx.mkdir("/sensors", parents=True)
    tx.write_series("/sensors/temp", arrow_table)
pond.sql("SELECT avg(value) FROM source", path="/sensors/temp")
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import nodes, paths
from .errors import (
    AlreadyExistsError,
    InvalidPathError,
    NotFoundError,
    PondError,
    PondUsageError,
    QueryError,
)
from .query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from .results import Description, EntryInfo, FieldInfo, VersionInfo
from .storage import applog
from .storage.blobs import BlobStore
from .storage.datatable import DataTable
from .storage.fs import Located, PondFS, StagedTxn

if TYPE_CHECKING:
    # Imported for types only: pyarrow, DataFusion and the factories load on first use,
    # so `pond --help` and `pond list` start fast.
    import pyarrow as pa
    from datafusion import SessionContext

    from .dynamic import Resolver
    from .factories.live import LiveNode
    from .query import sql
    from .query.urls import SourceURL
    from .remotes.config import Attachment
    from .remotes.info import PondStatus, RemoteInfo, Transfer, Verification
    from .reports import (
        IncompleteReport,
        MaintainReport,
        RebuildReport,
        RecoverReport,
        TxnDetail,
        TxnSummary,
    )
    from .site import SiteReport
    from .steward.control import ControlTable
    from .steward.fsck import FsckResult
    from .steward.steward import Steward
    from .storage.objstore import StoreOptions
    from .txn import WriteTxn


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class Pond:
    """A pond: open one with `Pond.open(path)` (or `Pond.create(path)`); every `pond`
    command is one call on it. Handles are cheap; a long-lived one sees new commits."""

    def __init__(
        self, root: Path, data: DataTable | None, control: ControlTable | None, wait: float = 0.0
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
        import getpass  # ~0.5 ms (termios): only here

        identity = {
            "pond_id": nodes.uuid7(),
            "created": _iso(nodes.now_us()),
            "user": getpass.getuser(),
            "host": socket.gethostname(),
        }
        desc = json.dumps({"pond": identity}, sort_keys=True)
        data = DataTable.create(root / "data", desc)
        from .steward.control import ControlTable

        control = ControlTable.create(root / "control", identity)
        (root / "blobs").mkdir(exist_ok=True)
        pond = cls(root, data, control, wait)
        with pond.steward.locked():
            with pond.steward.transaction(args or ["pond", "init"], {}) as tx:
                tx.create_root()
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
            from .steward.control import ControlTable  # imports deltalake: only when used

            self._control = ControlTable.open(self.root / "control")
        if self._control is None:
            raise PondError(
                f"the control table of {self.root} is missing; run `pond rebuild-control`"
            )
        return self._control

    @property
    def steward(self) -> Steward:
        if self._steward is None:
            from .steward.steward import Steward

            self._steward = Steward(self.root, self.data, self.control, self.blobs, self.wait)
        return self._steward

    def identity(self) -> dict[str, Any]:
        """Pond id, creation time, user and host, recorded once at init (in both tables)."""
        if self._data is None and (self.root / "control" / "_delta_log").is_dir():
            return self.control.identity()
        try:
            identity = json.loads(self.data.description() or "{}").get("pond", {})
            return identity if isinstance(identity, dict) else {}
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
        from .factories import base as factory_base
        from .factories import registry

        fac = registry.get(factory)
        parsed = factory_base.parse_config(config, "the config")
        fac.validate(parsed)  # a bad config is refused before anything is written
        with self.transaction(args or ["pond", "mknod", factory, path], vars) as tx:
            tx.mknod(path, factory, fac.file_type, config, overwrite=overwrite)
            if fac.kind == factory_base.DATA:
                from .dynamic import check_node

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
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Copy host files into the pond in one transaction; returns the pond paths written.

        Each source is a host URL (SPEC §7): `host:///abs/path` (raw bytes),
        `host+table:///x.parquet`, `host+series:///x.parquet`, `host+csv+table:///x.csv`,
        `host+csv+series:///x.csv`, with `+gzip`/`+zstd` after the format. Into a directory
        when `dest` ends with `/`, names an existing directory, or there are several
        sources; onto an existing series path, a series source appends a version.
        `progress` is called with byte counts as they are copied.
        """
        from .query.urls import parse_source

        if not sources:
            raise PondUsageError("copy needs at least one source")
        if not dest:
            raise InvalidPathError("empty destination: name a pond path such as / or /dir/")
        parsed = [parse_source(s) for s in sources]
        for s in parsed:
            if s.scheme != "host":
                raise PondUsageError(
                    f"copy into the pond reads host files: use host:///abs/path, not {s.path!r}"
                )
        dest_norm = paths.normalize(dest)
        tick = progress or (lambda n: None)
        with self.transaction(args or ["pond", "copy", *sources, dest], vars) as tx:
            dest_is_dir = tx.exists(dest_norm) and self._is_dir(dest_norm)
            into_dir = dest.endswith("/") or len(parsed) > 1 or dest_is_dir
            if len(parsed) > 1 and not dest_is_dir:
                raise InvalidPathError(f"copying several files needs a directory: {dest_norm}")
            targets = [
                paths.join(dest_norm, Path(s.path).name) if into_dir else dest_norm for s in parsed
            ]
            for i, target in enumerate(targets):
                if target in targets[:i]:
                    raise InvalidPathError(f"two sources would be copied to {target}")
            for s, target in zip(parsed, targets, strict=True):
                _copy_one(tx, s, target, time_column, tick)
        return targets

    def copy_out(self, patterns: str | Sequence[str], host_dir: str | Path) -> list[Path]:
        """Copy the pond files matching glob(s) into `host_dir`, keeping the tree below each
        pattern's literal prefix; returns the host paths written.

        A series is written as the Parquet union of its versions; dynamic nodes are skipped.
        Every target is checked before the first is written (a bad name or a symlink in the
        way writes nothing), and no symlink at or below `host_dir` is ever followed.
        """
        from .hostdir import HostDir

        if isinstance(patterns, str):
            patterns = [patterns]
        plan: builtins.list[tuple[str, EntryInfo]] = []
        for pattern in patterns:
            prefix = paths.compile_glob(pattern).literal_prefix
            matches = self.list(pattern)
            if not matches:
                raise NotFoundError(f"no pond files match {pattern}")
            for e in matches:
                if not e.type.startswith("file:"):
                    continue
                if nodes.is_dynamic(e.type) and self.derived(e.path) is None:
                    continue  # an executor factory's node: a job, not data
                rel = (
                    e.path[len(prefix) :].lstrip("/")
                    if e.path != prefix
                    else paths.basename(e.path)
                )
                plan.append((rel, e))
        with HostDir.open(Path(host_dir)) as out:
            out.check([rel for rel, _ in plan])
            written = []
            for rel, e in plan:
                if nodes.is_series(e.type) and e.version > 1:
                    from .query import output

                    # a series is the union of its versions, not its latest one
                    data = output.to_parquet_bytes(self.read_table(e.path))
                else:
                    data = self.read_bytes(e.path)
                written.append(out.write(rel, data))
        return written

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        self.data.refresh()

    @property
    def fs(self) -> PondFS:
        """A read-only view of the latest committed state (needs no control table)."""
        return PondFS(self.data, self.blobs)

    def lookup(self, path: str) -> Located | None:
        return self.fs.lookup(path)

    def require(self, path: str) -> Located:
        return self.fs.require(path)

    def _is_dir(self, path: str) -> bool:
        loc = self.lookup(path)
        return loc is not None and nodes.is_dir(loc.file_type)

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
        """Entries matching a glob; dynamic directories list their children."""
        from .dynamic import reads

        return [EntryInfo(*e) for e in reads.entries(self.resolver(), pattern)]

    def versions(self, path: str) -> builtins.list[nodes.NodeRow]:
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
            from .dynamic import reads

            _no_version(node.path, version)
            return reads.read_bytes(node)
        loc = self.require(path)
        if nodes.is_dir(loc.file_type):
            raise InvalidPathError(f"is a directory: {loc.path}")
        return self.fs.content(self.row_at(loc, version))

    def is_raw(self, url: str) -> bool:
        """True when `url` is a bare pond path to a node that is not a table or series:
        what `pond cat` prints as raw bytes rather than as a table."""
        from .query.urls import parse_source

        src = parse_source(url)
        if src.scheme != "pond":
            return False
        ftype = self.node_type(src.path)
        return not (nodes.is_table(ftype) or nodes.is_series(ftype))

    def describe(self, path: str) -> Description:
        """Type, size, schema and versions of a pond node; the schema of a host URL."""
        return describe_source(path, self)

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
        return _query(self, path, query, version, time_start, time_end, timeout, memory_limit)

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

    # -- steward views -----------------------------------------------------------------------
    def control_recent(self, limit: int = 20) -> builtins.list[TxnSummary]:
        """The newest `limit` user write transactions with their tasks, newest last."""
        from .reports import TxnSummary
        from .steward import summaries

        state = self.control.read_all(columns=summaries.RECENT_COLUMNS, ordered=False)
        txns = summaries.recent(state, limit, load=lambda s: self.control.read_all(min_seq=s))
        return [TxnSummary.from_dict(t) for t in txns]

    def control_detail(self, txn_seq: int) -> TxnDetail:
        """Every control row of one transaction and its tasks, in recorded order."""
        from .reports import TxnDetail, TxnSummary
        from .steward import summaries

        d = summaries.detail(self.control.read_all(), txn_seq)
        if d is None:
            raise NotFoundError(f"no transaction with txn_seq {txn_seq}")
        txns = [TxnSummary.from_dict(t) for t in d["transactions"]]
        return TxnDetail(
            txn_seq=txn_seq,
            summary=txns[-1] if txns else None,
            transactions=txns,
            records=d["records"],
        )

    def control_incomplete(self) -> IncompleteReport:
        """What a crash left unfinished (`pond recover` would finish it)."""
        from .reports import IncompleteReport
        from .steward import summaries

        if summaries.nothing_unfinished(self.control):
            return IncompleteReport([], [])
        return self._incomplete(self.control.read_all())

    def control_status(self, limit: int = 20) -> tuple[builtins.list[TxnSummary], IncompleteReport]:
        """`control_recent(limit)` and `control_incomplete()` together, reading the control
        table twice rather than three or four times: a few columns of every row decide both where
        recent history starts and whether anything may be unfinished; then all columns of
        the recent rows, or of every row when something may be unfinished."""
        from .reports import IncompleteReport, TxnSummary
        from .steward import summaries

        head = self.control.read_all(
            columns=list(dict.fromkeys(summaries.RECENT_COLUMNS + summaries.COUNT_COLUMNS)),
            ordered=False,
        )
        if summaries.maybe_unfinished(head):
            full = self.control.read_all()
            txns = summaries.recent(full, limit)
            incomplete = self._incomplete(full)
        else:
            txns = summaries.recent(head, limit, load=lambda s: self.control.read_all(min_seq=s))
            incomplete = IncompleteReport([], [])
        return [TxnSummary.from_dict(t) for t in txns], incomplete

    def _incomplete(self, ctl: pa.Table) -> IncompleteReport:
        from .reports import IncompleteReport, IncompleteTask, TxnSummary
        from .steward import summaries

        report = summaries.incomplete(ctl)
        txns = [TxnSummary.from_dict(t) for t in report["transactions"]]
        # The control table may not know yet that a commit landed (a crash right after the
        # data commit): the data table's pond_txn metadata is the authority. A read only.
        if any(t.status == "incomplete" for t in txns):
            committed = {p.get("txn_id") for _, p in self.data.pond_txns()}
            txns = [
                replace(t, status="committed")
                if t.status == "incomplete" and t.txn_id in committed
                else t
                for t in txns
            ]
        tasks = [
            IncompleteTask(
                parent_txn_seq=int(t["parent_txn_seq"]),
                execution_seq=int(t["execution_seq"]),
                factory_name=t["factory_name"],
                config_path=t["config_path"],
                state=str(t["state"]),
                attempt=int(t["attempt"]),
            )
            for t in report["tasks"]
        ]
        return IncompleteReport(txns, tasks)

    def control_sql(
        self,
        query: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> pa.Table:
        """Read-only SQL over the control table as `control_table`, as of now, within
        `timeout` seconds and `memory_limit` bytes (None: unbounded)."""
        from .steward.queries import control_sql

        return control_sql(self, query, timeout, memory_limit)

    # -- static site ---------------------------------------------------------------------------
    def site_build(
        self, out_dir: str | Path, config: str | Path | dict[str, Any] | None = None
    ) -> SiteReport:
        """Write a static, offline site of this pond to `out_dir` (never half written; only
        files earlier builds wrote there are replaced or removed): charts of its series and
        the steward's status page. `config`: a site.yaml path, a parsed mapping, or None for
        the defaults (see README "Static site")."""
        from . import site

        if config is None or isinstance(config, str | Path):
            cfg = site.load(None if config is None else str(config))
        else:
            cfg = site.parse(config)
        return site.build(self, out_dir, cfg)

    def recover(self, retry_failed: bool = False) -> RecoverReport:
        """Finish what crashes interrupted (SPEC §6); safe to run at any time."""
        from .reports import RecoverReport
        from .steward import summaries
        from .steward.recovery import recover

        # The idle case, without the lock or the data table: a writer at work shows an
        # open `begin`, and then recover waits its turn at the lock like any writer.
        if not retry_failed and summaries.nothing_unfinished(self.control):
            return RecoverReport()
        return RecoverReport.from_dict(recover(self.steward, retry_failed=retry_failed))

    def maintain(self, retention_hours: float | None = None) -> MaintainReport:
        """Compact, checkpoint and clean (see README "Disk use"); `retention_hours` None
        keeps the pond's retention window (`retention()`); files replaced within the window
        stay for readers still using them."""
        from .reports import MaintainReport
        from .steward.maintenance import maintain

        return MaintainReport.from_dict(maintain(self, retention_hours=retention_hours))

    def rebuild_control(self, force: bool = False) -> RebuildReport:
        """Rebuild a lost control table from the data table's history (`force`: move an
        existing one aside first)."""
        from .reports import RebuildReport
        from .steward.rebuild import rebuild_control

        report = rebuild_control(self.root, force=force, wait=self.wait)
        self._control = None
        self._steward = None
        return RebuildReport(int(report["transactions"]), list(report["messages"]))

    def fsck(self, repair: bool = False) -> FsckResult:
        """Check the pond for damage; `repair` does what is safe (see steward/fsck.py)."""
        from .steward.fsck import fsck

        return fsck(self.root, repair=repair, wait=self.wait)

    def retention(self) -> float:
        """The retention window in seconds: files no longer referenced stay this long."""
        from .storage.deltafiles import retention_seconds

        self.data.refresh()
        return retention_seconds(self.data.description())

    def set_retention(self, seconds: float) -> None:
        """Set the retention window of both tables (their `delta.deletedFileRetentionDuration`).
        0 lets automatic upkeep delete replaced files at once: readers in flight may fail."""
        from .storage.deltafiles import set_retention

        if not seconds >= 0:
            raise PondError(f"retention must be >= 0 seconds, got {seconds}")
        with self.steward.locked():
            for table in (self.data, self.control):
                set_retention(table.dt, table.path, float(seconds))

    # -- remotes (issue 8: see remotes/ and README "Backups and remotes") -------------------
    def backup_add(
        self,
        name: str,
        url: str,
        *,
        bidirectional: bool = False,
        options: StoreOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
        args: builtins.list[str] | None = None,
        vars: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Transfer | None:
        """Attach a backup at `url` (`file:///dir`, `s3://bucket/prefix`) as
        /sys/remotes/NAME and push the whole pond; every write then pushes. The remote is
        checked first (down, or holding another pond: an error, nothing written); re-running
        over its own half-pushed remote resumes. `options`: the S3 connection options
        (its `secret_access_key` is an `${env:NAME}` reference, never a literal);
        `timeout`: seconds each S3 request may take (stored; default 30)."""
        from .remotes import ops
        from .storage.objstore import StoreOptions

        return ops.backup_add(
            self,
            name,
            url,
            bidirectional=bidirectional,
            options=(options or StoreOptions()).with_timeout(timeout),
            progress=progress,
            args=args,
            vars=vars,
        )

    def remote_add(
        self,
        name: str,
        url: str,
        path: str,
        *,
        options: StoreOptions | None = None,
        args: builtins.list[str] | None = None,
        vars: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Attachment:
        """Attach a pull-mode remote: `path` "/" follows this pond's own backup (the pond
        becomes a read-only mirror); any other path imports another pond read-only there.
        `timeout`: seconds each S3 request may take (stored; default 30)."""
        from .remotes import ops
        from .storage.objstore import StoreOptions

        return ops.remote_add(
            self,
            name,
            url,
            path,
            options=(options or StoreOptions()).with_timeout(timeout),
            args=args,
            vars=vars,
        )

    def remote_list(self, push_only: bool = False) -> builtins.list[RemoteInfo]:
        """Every remote with its mode, mount and watermarks (`push_only`: the backups)."""
        from .remotes import ops

        return ops.remote_infos(self, (lambda a: a.pushes) if push_only else None)

    def remote_remove(
        self,
        name: str,
        purge: bool = False,
        args: builtins.list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> Attachment:
        """Detach remote `name` (`purge`: also an import's mount and local copy)."""
        from .remotes import ops

        return ops.remote_remove(self, name, purge, args, vars)

    def push(
        self, name: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[Transfer]:
        """Catch push-mode remotes (or `name`) up; idempotent."""
        from .remotes import ops

        return ops.push_all(self, name, progress)

    def pull(
        self, name: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[Transfer]:
        """Fast-forward from pull-mode remotes (or `name`); idempotent."""
        from .remotes import ops

        return ops.pull_all(self, name, progress)

    def verify(self, name: str | None = None) -> builtins.list[Verification]:
        """Compare local and remote content (every remote, or `name`)."""
        from .remotes import ops

        return ops.verify_all(self, name)

    def status(self) -> PondStatus:
        """Pond id, last txn_seq, unfinished work and the remotes' watermarks: local files
        only, never a remote."""
        from .remotes import ops

        return ops.status(self)

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
        from .remotes import ops
        from .storage.objstore import StoreOptions

        transfer = ops.restore(
            Path(path),
            name,
            url,
            options=(options or StoreOptions()).with_timeout(timeout),
            progress=progress,
        )
        return cls.open(path, wait=wait), transfer


TimeLike = int | str | dt.datetime | None


def to_us(value: TimeLike) -> int | None:
    """µs since the epoch from an int (µs), an ISO 8601 string (UTC unless an offset is
    given) or a datetime (naive = UTC)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PondUsageError(
                f"not a time: {value!r} (use ISO 8601 or µs since epoch)"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1_000_000)


def _copy_one(
    tx: WriteTxn, s: SourceURL, target: str, time_column: str | None, tick: Callable[[int], None]
) -> None:
    series = s.entry == "series"
    if s.fmt == "raw" and not s.compression:
        tx.write_host_file(target, s.path, progress=tick)
        return
    if s.fmt == "csv":
        s.check_storable()
        tx.write_csv_file(
            target, s.path, series=series, time_column=time_column, compression=s.compression
        )
    elif s.fmt in ("table", "series") or s.entry in ("table", "series"):
        tx.write_parquet_file(
            target,
            s.path,
            series=series or s.fmt == "series",
            time_column=time_column,
            compression=s.compression,
        )
    else:
        from .query import ingest

        tx.write_bytes(target, ingest.read_host_bytes(s.path, s.compression))
    tick(_host_size(s.path))


def _host_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


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
    t0, t1 = (to_us(time_range[0]), to_us(time_range[1])) if time_range else (None, None)
    query = sql or "SELECT * FROM source"
    return _query(pond, url, query, version, t0, t1, timeout, memory_limit)


def _query(
    pond: Pond | None,
    url: str | None,
    query: str,
    version: int | None,
    time_start: int | None,
    time_end: int | None,
    timeout: float | None,
    memory_limit: int | None,
) -> pa.Table:
    """Read-only SQL over `url` registered as `source` (None: over no table), within the
    limits: what `Pond.sql` and `read_source` share."""
    from .query import sql as sqlmod

    ctx = sqlmod.make_context(memory_limit)
    if url is not None:
        register_source(ctx, url, pond, version, time_start, time_end)
    return sqlmod.run_sql(ctx, query, timeout)


def describe_source(url: str, pond: Pond | None) -> Description:
    """`Pond.describe`, also without a pond for host URLs."""
    from .query.urls import is_host, parse_source

    if is_host(url):
        table = read_source(url, None, sql="SELECT * FROM source LIMIT 0")
        return Description(
            path=url,
            type="host",
            schema=[FieldInfo(f.name, str(f.type)) for f in table.schema],
        )
    if pond is None:
        raise PondError("no pond given: use --pond PATH or set $POND")
    node = pond.derived(parse_source(url).path)
    if node is not None:
        return _describe_derived(pond, node)
    loc = pond.require(parse_source(url).path)
    fs = pond.fs
    schema = None
    time_column = None
    if nodes.is_table(loc.file_type) or nodes.is_series(loc.file_type):
        from .query import ingest

        source = fs.blob_path(loc.row) or loc.row.content or b""
        schema = [
            FieldInfo(f.name, str(f.type)) for f in ingest.read_parquet_schema(source, loc.path)
        ]
        if nodes.is_series(loc.file_type):
            time_column = loc.row.extended_attributes.get("time_column")
    return Description(
        path=loc.path,
        type=loc.file_type,
        size=applog.total_size(loc.row),  # an appended log: all its versions
        factory=loc.row.factory or None,
        schema=schema,
        time_column=time_column,
        versions=[
            VersionInfo(
                version=r.version,
                txn_seq=r.txn_seq,
                timestamp=_iso(r.timestamp),
                size=r.size,
                min_event_time=_iso(r.min_event_time),
                max_event_time=_iso(r.max_event_time),
            )
            for r in fs.versions(loc.part_id, loc.node_id)
        ],
    )


def _describe_derived(pond: Pond, node: LiveNode) -> Description:
    """Factory, config, resulting schema and (for a stored factory node) its versions."""
    from .dynamic import reads

    loc = pond.lookup(node.path)
    stored = loc if loc is not None and loc.row.factory is not None else None
    d = reads.describe(node, pond.fs.content(stored.row) if stored else None)
    rows = pond.fs.versions(stored.part_id, stored.node_id) if stored else []
    return Description(
        path=node.path,
        type=node.file_type,
        size=stored.row.size if stored else 0,
        factory=node.factory,
        schema=[FieldInfo(f["name"], f["type"]) for f in d["schema"]] if "schema" in d else None,
        time_column=d.get("time_column"),
        versions=[
            VersionInfo(
                version=r.version,
                txn_seq=r.txn_seq,
                timestamp=_iso(r.timestamp),
                size=r.size,
                min_event_time=None,
                max_event_time=None,
            )
            for r in rows
        ],
        config=d.get("config"),
        entries=d.get("entries"),
    )


def _no_version(path: str, version: int | None) -> None:
    if version is not None:
        raise InvalidPathError(
            f"{path} is derived: it is computed from its inputs, it has no stored versions"
        )


def _part(fs: PondFS, row: nodes.NodeRow) -> sql.Part:
    from .query import sql

    path = fs.blob_path(row)
    return sql.Part(
        path=path,
        data=row.content if path is None else None,
        min_time=row.min_event_time,
        max_time=row.max_event_time,
    )


def register_source(
    ctx: SessionContext,
    url: str,
    pond: Pond | None,
    version: int | None = None,
    time_start: int | None = None,
    time_end: int | None = None,
) -> None:
    """Register what `url` names as the SQL tables `source` and `series`."""
    from .query import ingest, sql
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
        raise PondError("no pond given: use --pond PATH or set $POND")
    node = pond.derived(src.path)
    if node is not None:
        from .dynamic import reads

        _no_version(node.path, version)
        reads.register(ctx, node, src.scheme, src.compression, time_start, time_end)
        return
    loc = pond.require(src.path)
    fs = pond.fs
    if src.scheme == "csv":
        if not nodes.is_file(loc.file_type):
            raise InvalidPathError(f"not a file: {loc.path}")
        data = fs.content(pond.row_at(loc, version))
        sql.register_table_arrow(ctx, ingest.read_csv_bytes(data, src.compression, loc.path))
        return
    if nodes.is_dir(loc.file_type):
        raise InvalidPathError(f"is a directory: {loc.path}")
    if nodes.is_dynamic(loc.file_type):
        raise QueryError(f"{loc.path} is a {loc.row.factory} factory node, not a table")
    if nodes.is_table(loc.file_type):
        sql.register_parts(ctx, [_part(fs, pond.row_at(loc, version))])
    elif nodes.is_series(loc.file_type):
        rows = fs.versions(loc.part_id, loc.node_id)
        if version is not None:
            rows = [pond.row_at(loc, version)]
        column = loc.row.extended_attributes.get("time_column")
        sql.register_parts(
            ctx,
            [_part(fs, r) for r in rows],
            time_column=column,
            time_start=time_start,
            time_end=time_end,
        )
    else:
        raise QueryError(
            f"{loc.path} is a raw file; query it as csv://{loc.path} or store it as a table"
        )


def pond_path_from_env(explicit: str | None) -> Path:
    value = explicit or os.environ.get("POND")
    if not value:
        raise PondError("no pond given: use --pond PATH or set $POND")
    return Path(value)


def __getattr__(name: str) -> object:
    """The control-table reports, importable from here as before (loaded on first use)."""
    if name in _REPORTS:
        from . import reports

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
    "to_us",
]
