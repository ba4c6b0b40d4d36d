"""The steward: wraps every write in a recorded transaction and runs post-commit tasks.

Lifecycle of one write (SPEC §5-6): `begin` (durable before anything else) -> data commit
(one Delta version) -> `data_committed` + every `post_commit_pending` (one control commit)
-> per task `post_commit_started`, then `post_commit_completed|failed` -> `completed`.
The write lock is held from `begin` to the last row.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import nodes, paths
from ..crashpoints import crash_point as crash_point  # the steward's phases use it
from ..errors import FactoryError, PondError
from ..factories import base as factory_base
from ..factories import registry
from ..lock import WriteLock
from ..remotes import state as remote_state
from ..storage import logcheck, tableread
from ..storage.blobs import BlobStore
from ..storage.datatable import DataTable
from ..storage.fs import PondFS
from ..storage.staging import StagedTxn
from ..txn import WriteTxn
from . import config_secrets
from .control import (
    BEGIN,
    COMPLETED,
    DATA_COMMITTED,
    FAILED,
    PC_COMPLETED,
    PC_FAILED,
    PC_PENDING,
    PC_STARTED,
    POST_COMMIT,
    WRITE,
    ControlTable,
    Record,
)
from .job_io import JobContext

log = logging.getLogger("pond")

SYSTEM_DIR = "/etc/system.d"


def one_line(e: BaseException | str) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__ if isinstance(e, BaseException) else text


def error_text(e: BaseException, secrets: factory_base.Secrets) -> str:
    """The one-line error the pond records and prints for a failed job: the one place a
    job's error becomes text, with every secret value it resolved put back as reference."""
    return one_line(secrets.redact(str(e))) or type(e).__name__


@dataclass(frozen=True)
class Task:
    parent_txn_seq: int
    parent_txn_id: str
    execution_seq: int
    factory_name: str
    config_path: str


class Steward:
    def __init__(
        self,
        root: Path,
        data: DataTable,
        control: ControlTable,
        blobs: BlobStore,
        wait: float = 0.0,
        reader: Callable[[], factory_base.PondReader] | None = None,
    ) -> None:
        self.root = root
        # what jobs read the whole pond through (RunContext.reader): handed over by the
        # layer above (the Pond), so that a job never opens a second pond
        self.reader = reader
        self.data = data
        self.control = control
        self.fs = PondFS(data, blobs)
        self.lock = WriteLock(root / "write.lock", wait)
        self._lock_depth = 0
        self.failed_tasks: list[tuple[Task, str]] = []
        # told a task's label when it starts and None when it ends (the CLI shows it)
        self.on_task: Callable[[str | None], None] | None = None

    # -- lock ------------------------------------------------------------------------------
    @contextmanager
    def locked(self, writes: bool = True) -> Iterator[None]:
        """Hold the write lock. `writes`: this pond will change, which a mirror refuses (its
        history follows its source; `writes=False` is for a pull or a push)."""
        if writes:
            remote_state.check_writable(self.root)
        if self._lock_depth == 0:
            self.lock.acquire()
            try:
                self._catch_up()
                self._check_tips()
                if writes:
                    self._check_data_log()
            except BaseException:
                self.lock.release()
                raise
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                self.lock.release()

    def _catch_up(self) -> None:
        """Bring both table handles to the newest commit. They were opened before the lock
        was taken (a writer that waited for it: as long as its `--wait`), so every commit
        made meanwhile is read now, under the lock: a handle left behind would find the
        versions it tries taken, one after another, and give up on a free log."""
        self.data.refresh()
        control = self.control
        if tableread.has_commits_after(
            control.path, max(control.log_version(), control.log.known)
        ):
            control.catch_up()

    def _check_tips(self) -> None:
        """Refuse to write on a damaged log tip: the next txn_seq is read from it, so a torn
        newest entry would hand out a sequence number that was already used (`pond fsck`)."""
        for table in (self.data, self.control):
            logcheck.check_tip(table.path, max(table.log_version(), table.log.known))
            # a table another engine made unwritable is refused before anything is recorded
            table.log.check_writable(table)

    def _check_data_log(self) -> None:
        """Refuse to write while the data log is behind what the control table records as
        committed (its newest entries deleted whole): the next txn_seq is read from the data
        log, so it would hand out a number a committed transaction already has."""
        last = self.data.last_txn_seq()
        ahead = self.control.committed_after(last)
        if ahead is not None:
            raise logcheck.DamagedTableError(
                f"the data log ends at txn_seq {last} but the control table records txn_seq "
                f"{ahead} as committed (newest data log entries are missing); run `pond fsck` "
                "(writes refused until repaired); nothing was written"
            )

    def record(self, records: list[Record]) -> None:
        """Append lifecycle rows that are not the durability point: a failure is logged.

        Only `begin` rows must survive a power loss (they precede the data commit); every
        other row can be re-derived by `pond recover` from the data table, so these skip
        the final directory sync."""
        try:
            self.control.append(records, durable=False)
        except Exception as e:  # noqa: BLE001 - recording must never stop the work
            log.warning(
                "could not record %s in the control table: %s",
                ", ".join(r.record_type for r in records),
                one_line(e),
            )

    # -- user writes -----------------------------------------------------------------------
    @contextmanager
    def transaction(
        self,
        args: list[str],
        vars: dict[str, str] | None = None,
        run_post_commit: bool = True,
        progress: factory_base.Progress | None = None,
    ) -> Iterator[WriteTxn]:
        """One write transaction: all or nothing, recorded, then its post-commit phase
        (`progress` goes to its jobs: a remote's push reports bytes through it)."""
        vars = dict(vars or {})
        with self.locked():
            self.data.refresh()
            seq = self.data.last_txn_seq() + 1
            txn_id = nodes.uuid7()
            t0 = time.monotonic()
            # The begin row is durable before any data is written.
            self.control.append(
                [
                    Record(
                        seq,
                        txn_id,
                        BEGIN,
                        WRITE,
                        cli_args=json.dumps(args),
                        vars=json.dumps(vars, sort_keys=True),
                    )
                ]
            )
            staged = StagedTxn(self.fs, seq)
            tx = WriteTxn(staged, {"txn_seq": seq, "txn_id": txn_id, "args": args, "vars": vars})
            try:
                yield tx
                rows = staged.rows()
                version = None
                if rows:
                    pond_txn = {"txn_seq": seq, "txn_id": txn_id, "args": args, "vars": vars}
                    crash_point("before_data_commit")
                    version = self.data.commit(rows, pond_txn)
                    crash_point("after_data_commit")
            except BaseException as e:
                readonly = _import_write_error(self.fs, e)
                self.record(
                    [
                        Record(
                            seq,
                            txn_id,
                            FAILED,
                            WRITE,
                            duration_ms=_ms(t0),
                            error_message=one_line(readonly or e),
                        )
                    ]
                )
                if readonly is not None:
                    raise readonly from None
                raise

            def completed() -> Record:  # carries what part of a job failed, if any
                return Record(
                    seq,
                    txn_id,
                    COMPLETED,
                    WRITE,
                    duration_ms=_ms(t0),
                    error_message=tx.partial_failure,
                )

            if version is None:
                self.record([completed()])
                return
            self._upkeep({r.part_id for r in rows})
            tasks = self.discover(seq, txn_id) if run_post_commit else []
            committed = Record(seq, txn_id, DATA_COMMITTED, WRITE, data_fs_version=version)
            pending = [self._task_record(t, PC_PENDING, attempt=1) for t in tasks]
            if not tasks:
                self.record([committed, completed()])
                return
            self.record([committed, *pending])
            crash_point("after_pending")
            self.run_tasks(tasks, args, vars, progress)
            crash_point("before_completed")
            self.record([completed()])

    def _upkeep(self, parts: set[str]) -> None:
        try:
            self.data.auto_maintain(parts)
        except Exception as e:  # noqa: BLE001 - upkeep is an optimisation, never a failure
            log.warning("automatic maintenance skipped: %s", one_line(e))

    # -- post-commit -----------------------------------------------------------------------
    def discover(self, parent_seq: int, parent_txn_id: str) -> list[Task]:
        self.data.refresh()
        loc = self.fs.lookup(SYSTEM_DIR)
        if loc is None or not nodes.is_dir(loc.file_type):
            return self._remote_tasks(parent_seq, parent_txn_id, 0)
        tasks: list[Task] = []
        for child in self.fs.children(loc):
            if child.row.factory is None:
                log.warning("skipping %s: not a factory node", child.path)
                continue
            if _is_data_factory(child.row.factory):
                log.warning(
                    "skipping %s: %s is a data factory (computed on read), not a job",
                    child.path,
                    child.row.factory,
                )
                continue
            tasks.append(
                Task(parent_seq, parent_txn_id, len(tasks) + 1, child.row.factory, child.path)
            )
        return tasks + self._remote_tasks(parent_seq, parent_txn_id, len(tasks))

    def _remote_tasks(self, parent_seq: int, parent_txn_id: str, before: int) -> list[Task]:
        """One `remote` task per push-mode attachment (/sys/remotes/NAME), in name order,
        after the /etc/system.d/ tasks."""
        from ..remotes import config as remote_config

        return [
            Task(parent_seq, parent_txn_id, before + i + 1, remote_config.FACTORY, att.node_path)
            for i, att in enumerate(
                a for a in remote_config.node_attachments(self.fs) if a.pushes
            )
        ]

    def task_record(self, task: Task, record_type: str, **kw: Any) -> Record:
        """A lifecycle row of `task` (recovery records rows for tasks it does not run)."""
        return self._task_record(task, record_type, **kw)

    def _task_record(self, task: Task, record_type: str, **kw: Any) -> Record:
        return Record(
            task.parent_txn_seq,
            task.parent_txn_id,
            record_type,
            POST_COMMIT,
            parent_txn_seq=task.parent_txn_seq,
            execution_seq=task.execution_seq,
            factory_name=task.factory_name,
            config_path=task.config_path,
            **kw,
        )

    def run_tasks(
        self,
        tasks: list[Task],
        args: list[str],
        vars: dict[str, str],
        progress: factory_base.Progress | None = None,
    ) -> None:
        """A write's post-commit phase: each task's first attempt, in order."""
        for i, task in enumerate(tasks):
            if i:
                crash_point("between_tasks")
            self.run_task(task, args, vars, attempt=1, progress=progress)

    def run_task(
        self,
        task: Task,
        args: list[str],
        vars: dict[str, str],
        attempt: int,
        progress: factory_base.Progress | None = None,
    ) -> bool:
        """Run one task in its own fresh write transaction; never raises for its failure."""
        tell = self.on_task
        if tell is not None:
            tell(f"{task.config_path} ({task.factory_name})")
        try:
            return self._run_task(task, args, vars, attempt, progress)
        finally:
            if tell is not None:
                tell(None)

    def _run_task(
        self,
        task: Task,
        args: list[str],
        vars: dict[str, str],
        attempt: int,
        progress: factory_base.Progress | None = None,
    ) -> bool:
        started = False

        def mark_started(pid: int | None = None, start_time: int | None = None) -> None:
            nonlocal started
            if not started:
                started = True
                self.record(
                    [
                        self._task_record(
                            task, PC_STARTED, attempt=attempt, pid=pid, pid_starttime=start_time
                        )
                    ]
                )

        # A job running a host process is recorded started once its pid is known (an
        # instant later), so that `recover` can end it; any other task before it runs.
        if not _spawns_process(task.factory_name):
            mark_started()
        t0 = time.monotonic()
        task_seq: int | None = None
        task_txn_id: str | None = None
        secrets = config_secrets.job_secrets(self.fs, self.root)  # reads nothing yet
        try:
            self.data.refresh()
            factory, config = self.load_factory(task.config_path, secrets)
            task_seq = self.data.last_txn_seq() + 1
            staged = StagedTxn(self.fs, task_seq)
            ctx = JobContext(
                WriteTxn(staged, {"txn_seq": task_seq, "args": args, "vars": vars}),
                pond_path=str(self.root),
                label=paths.basename(task.config_path),
                path=task.config_path,
                args=args,
                vars=vars,
                parent_txn_seq=task.parent_txn_seq,
                execution_seq=task.execution_seq,
                attempt=attempt,
                secrets=secrets,
                progress=progress,
                on_job_started=mark_started,
                reader=self.reader,
            )
            factory.run(config, ctx)
            mark_started()
            rows = staged.rows()
            closing: list[Record] = []
            if rows:
                task_txn_id = nodes.uuid7()
                link: dict[str, Any] = {
                    "parent_txn_seq": task.parent_txn_seq,
                    "execution_seq": task.execution_seq,
                    "attempt": attempt,
                }
                facts = {
                    "factory_name": task.factory_name,
                    "config_path": task.config_path,
                    "parent_txn_id": task.parent_txn_id,
                }
                self.control.append(
                    [
                        Record(
                            task_seq,
                            task_txn_id,
                            BEGIN,
                            POST_COMMIT,
                            cli_args=json.dumps(args),
                            **link,
                        )
                    ]
                )
                pond_txn = {
                    "txn_seq": task_seq,
                    "txn_id": task_txn_id,
                    "args": args,
                    "vars": vars,
                    **link,
                    **facts,
                }
                crash_point("task_before_data_commit")
                version = self.data.commit(rows, pond_txn)
                crash_point("task_after_data_commit")
                closing = [
                    Record(
                        task_seq,
                        task_txn_id,
                        DATA_COMMITTED,
                        POST_COMMIT,
                        data_fs_version=version,
                        **link,
                    ),
                    Record(
                        task_seq, task_txn_id, COMPLETED, POST_COMMIT, duration_ms=_ms(t0), **link
                    ),
                ]
                task_txn_id = None
                self._upkeep({r.part_id for r in rows})
            self.record(
                [
                    *closing,
                    self._task_record(task, PC_COMPLETED, attempt=attempt, duration_ms=_ms(t0)),
                ]
            )
            return True
        except Exception as e:  # noqa: BLE001 - a task's failure is recorded, not raised
            mark_started()
            err = error_text(e, secrets)
            closing = []
            if task_txn_id is not None and task_seq is not None:
                closing = [
                    Record(
                        task_seq,
                        task_txn_id,
                        FAILED,
                        POST_COMMIT,
                        duration_ms=_ms(t0),
                        error_message=err,
                        parent_txn_seq=task.parent_txn_seq,
                        execution_seq=task.execution_seq,
                        attempt=attempt,
                    )
                ]
            self.record(
                [
                    *closing,
                    self._task_record(
                        task, PC_FAILED, attempt=attempt, duration_ms=_ms(t0), error_message=err
                    ),
                ]
            )
            self.failed_tasks.append((task, err))
            log.warning(
                "post-commit task %s (%s) failed: %s", task.config_path, task.factory_name, err
            )
            return False

    def load_factory(
        self, path: str, secrets: factory_base.Secrets | None = None
    ) -> tuple[factory_base.Factory, dict[str, Any]]:
        """The factory node's factory and its config, `${env:...}` expanded (the values
        substituted are collected in `secrets`)."""
        loc = self.fs.lookup(path)
        if loc is None:
            raise FactoryError(f"factory node {path} no longer exists")
        if loc.row.factory is None:
            raise FactoryError(f"{path} is not a factory node")
        factory = registry.get(loc.row.factory)
        raw = factory_base.parse_config(self.fs.content(loc.row), f"config of {path}")
        factory.validate(raw)
        return factory, factory_base.expand_env(raw, secrets)

    # -- pond run --------------------------------------------------------------------------
    def run_node(
        self, path: str, run_args: list[str], args: list[str], vars: dict[str, str]
    ) -> int:
        """`pond run PATH ARGS...`: the factory's job in one write transaction. A job's
        PartialFailure commits what it staged, then fails the run with its message."""
        partial: str | None = None
        with self.transaction(args, vars) as tx:
            secrets = config_secrets.job_secrets(self.fs, self.root)
            factory, config = self.load_factory(path, secrets)
            if factory.kind != factory_base.EXECUTOR and not factory.runnable:
                raise PondError(f"{path} ({factory.name}) is not a runnable factory")
            ctx = JobContext(
                tx,
                pond_path=str(self.root),
                label=paths.basename(path),
                path=path,
                args=run_args,
                vars=vars,
                secrets=secrets,
                reader=self.reader,
            )
            try:
                factory.run(config, ctx)
            except factory_base.PartialFailure as e:
                # what the job staged is committed; the write records why the run failed
                partial = tx.partial_failure = ctx.error_text(e)
            except Exception as e:
                # Recorded as the write's error and printed: never with a secret value.
                raise FactoryError(ctx.error_text(e)) from None
            seq = tx.txn_seq
        if partial is not None:
            raise FactoryError(partial)
        return seq


def _import_write_error(fs: PondFS, e: BaseException) -> PondError | None:
    """A write refused under a read-only import, said as such (see remotes/mount.py)."""
    if not isinstance(e, PondError):
        return None
    try:
        from ..remotes import config as remote_config

        return remote_config.explain_write_error(fs, e)
    except Exception:  # noqa: BLE001 - explaining must never hide the original error
        return None


def _spawns_process(factory_name: str) -> bool:
    try:
        return registry.get(factory_name).spawns_process
    except FactoryError:
        return False


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def _is_data_factory(name: str) -> bool:
    try:
        return registry.get(name).kind == factory_base.DATA
    except FactoryError:
        return False  # an unknown factory fails as a task, with its name in the error
