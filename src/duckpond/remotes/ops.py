"""What the `Pond` remote methods do, one attachment at a time.

The transfers themselves are `remotes.push`, `.pull`, `.restore` and `.verify`; this module finds
the attachments, opens their stores, keeps the local watermarks and says what moved. The
caller holds the pond's write lock around push and pull. The pond comes in as a `PondHost`
(what these functions use of it), so this layer never imports the library above it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import nodes, paths
from ..errors import NotFoundError, PondError
from ..storage.objstore import StoreOptions
from . import config, state
from .info import PondStatus, RemoteInfo, Transfer, Verification

if TYPE_CHECKING:
    from ..factories.base import Secrets
    from ..reports import IncompleteReport
    from ..storage.datatable import DataTable
    from ..storage.fs import Located, PondFS
    from ..storage.objstore import ObjectStore
    from ..txn import WriteTxn
    from .reports import SyncReport, VerifyReport

Progress = Callable[[int, int], None]


class _Task(Protocol):
    @property
    def config_path(self) -> str: ...


class _Steward(Protocol):
    @property
    def failed_tasks(self) -> Sequence[tuple[_Task, str]]: ...

    def locked(self, writes: bool = True) -> AbstractContextManager[None]: ...


class PondHost(Protocol):
    """What the remote operations use of a pond (the `Pond` library object is one)."""

    root: Path

    @property
    def fs(self) -> PondFS: ...

    @property
    def data(self) -> DataTable: ...

    @property
    def steward(self) -> _Steward: ...

    def identity(self) -> dict[str, Any]: ...

    def refresh(self) -> None: ...

    def lookup(self, path: str) -> Located | None: ...

    def control_incomplete(self) -> IncompleteReport: ...

    def transaction(
        self,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> AbstractContextManager[WriteTxn]: ...

IMPORTS_DIR = config.IMPORTS_DIR
node_attachments = config.node_attachments
import_root = config.import_root


def attachments(pond: PondHost) -> list[config.Attachment]:
    """Every attachment: the /sys/remotes nodes and the mirror files, in name order."""
    out = {a.name: a for a in node_attachments(pond.fs)}
    for name in state.mirror_names(pond.root):
        out[name] = config.parse(name, state.read_mirror(pond.root, name), mirror=True)
    return [out[k] for k in sorted(out)]


def find(pond: PondHost, name: str) -> config.Attachment:
    for att in attachments(pond):
        if att.name == name:
            return att
    raise NotFoundError(f"no remote named {name} (see `pond remote list`)")


def select(
    pond: PondHost, name: str | None, want: Callable[[config.Attachment], bool], what: str
) -> list[config.Attachment]:
    """The named attachment (which must do `what`), or every one that does."""
    if name is not None:
        att = find(pond, name)
        if not want(att):
            raise PondError(f"remote {name} is not a {what} remote (mode {att.mode})")
        return [att]
    found = [a for a in attachments(pond) if want(a)]
    if not found:
        raise NotFoundError(f"this pond has no {what} remote (see `pond remote list`)")
    return found


def remote_pond_id(store: ObjectStore) -> str | None:
    """The pond id a remote holds, None when it holds no pond yet."""
    from .logs import remote_identity

    ident: Any = remote_identity(store)
    if ident is None or isinstance(ident, str):
        return ident
    if isinstance(ident, dict):
        value = ident.get("pond_id")
        return None if value is None else str(value)
    return str(getattr(ident, "pond_id", ident))


def check_remote_holds(store: ObjectStore, url: str, pond_id: str | None) -> None:
    """Refuse a remote holding another pond (reaching it at all proves it is up)."""
    held = remote_pond_id(store)
    if held is not None and pond_id is not None and held != pond_id:
        raise PondError(f"remote {url} holds pond {held}, not this pond {pond_id}")


def _error_text(e: BaseException, secrets: Secrets | None) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return secrets.redact(text) if secrets is not None else text


def push(
    root: Path,
    att: config.Attachment,
    progress: Progress | None = None,
    secrets: Secrets | None = None,
) -> SyncReport:
    """Push everything the remote lacks from the pond at `root`, starting from the local
    watermark; the caller holds the write lock (a `remote` job: the steward running it)."""
    from .push import push as push_to
    from .reports import RemoteTip

    root = Path(root)
    mark = state.read_watermark(root, att.name)
    since = None
    if mark["pushed_data_version"] is not None and mark["pushed_control_version"] is not None:
        since = RemoteTip(
            mark["pushed_data_version"], mark["pushed_control_version"], mark["pushed_txn_seq"] or 0
        )
    try:
        store = config.store_for(att, secrets)
        report = push_to(root, store, progress=_crash_hook(progress), since=since)
    except Exception as e:
        state.update_watermark(root, att.name, last_error=_error_text(e, secrets))
        raise
    state.update_watermark(root, att.name, last_error=None, **_pushed_marks(report))
    return report


def _crash_hook(progress: Progress | None, point: str = "mid_push") -> Progress | None:
    """Test hook: `POND_CRASH_AT=mid_push` (or `mid_restore`) SIGKILLs the process once a
    push (a restore) has moved some bytes (a real crash half-way, like
    steward.crash_point)."""
    if os.environ.get("POND_CRASH_AT") != point:
        return progress

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if done > 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return tick


def _pushed_marks(report: SyncReport) -> dict[str, Any]:
    """Watermarks after a push: where the remote stands now."""
    return {
        "pushed_data_version": report.tip.data_version,
        "pushed_control_version": report.tip.control_version,
        "pushed_txn_seq": report.tip.txn_seq,
    }


def pull(pond: PondHost, att: config.Attachment, progress: Progress | None = None) -> SyncReport:
    """Fast-forward from the remote: into this pond (a mirror, a bidirectional backup) or
    into the imported pond's copy; the caller holds the write lock."""
    from .pull import pull as pull_from
    from .restore import restore as restore_into

    secrets = _secrets()
    try:
        store = config.store_for(att, secrets)
        if att.is_import:
            target = import_root(pond.root, att.name)
            if (target / "data" / "_delta_log").is_dir():
                report = pull_from(target, store, progress=progress)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                report = restore_into(target, store, progress=progress)
            txn_seq = _txn_seq_of(target)
        else:
            check_remote_holds(store, att.url, pond.identity().get("pond_id"))
            report = pull_from(pond.root, store, progress=progress)
            pond.refresh()
            txn_seq = pond.data.last_txn_seq()
    except Exception as e:
        state.update_watermark(pond.root, att.name, last_error=_error_text(e, secrets))
        raise
    state.update_watermark(pond.root, att.name, pulled_txn_seq=txn_seq, last_error=None)
    return report


def _txn_seq_of(root: Path) -> int:
    from ..storage.datatable import DataTable

    return int(DataTable.open(root / "data").last_txn_seq())


def verify(pond: PondHost, att: config.Attachment) -> VerifyReport:
    from .verify import verify as verify_against

    secrets = _secrets()
    store = config.store_for(att, secrets)
    target = import_root(pond.root, att.name) if att.is_import else pond.root
    return verify_against(target, store)


def _secrets() -> Secrets:
    from ..factories.base import Secrets

    return Secrets()


# -- the Pond methods ---------------------------------------------------------------------------
def _attachment(
    name: str,
    url: str,
    mode: str,
    mount: str | None,
    options: StoreOptions | None,
) -> config.Attachment:
    """A new attachment from command-line values, checked (nothing written yet)."""
    from ..errors import PondUsageError

    options = options or StoreOptions()
    config.check_name(name)
    config.check_url(url)
    config.check_secret(options.secret_access_key)
    config.check_timeout(options.timeout)
    if not url.startswith("s3://") and options.is_set():
        raise PondUsageError(
            "--endpoint, --region, the keys, --allow-http and --timeout are for s3:// URLs"
        )
    att = config.Attachment(name=name, url=url, mode=mode, mount=mount, options=options)
    config.validate(att.to_config(), f"remote {name}")
    return att


def _open_checked(att: config.Attachment, pond_id: str | None) -> tuple[ObjectStore, Secrets]:
    """The attachment's store, reached once (a down remote fails here, before any write)."""
    secrets = _secrets()
    try:
        store = config.store_for(att, secrets)
        check_remote_holds(store, att.url, pond_id)
    except PondError as e:
        raise type(e)(_error_text(e, secrets)) from None
    return store, secrets


def backup_add(
    pond: PondHost,
    name: str,
    url: str,
    *,
    bidirectional: bool = False,
    options: StoreOptions | None = None,
    progress: Progress | None = None,
    args: list[str] | None = None,
    vars: dict[str, str] | None = None,
) -> Transfer | None:
    """Attach a backup and push everything; re-run over its own half-pushed remote, resume.

    Returns the push when it ran directly (a resumed attachment); None when the new node's
    post-commit task pushed."""
    from ..errors import AlreadyExistsError, RemoteError
    from ..factories.registry import get

    mode, mount = ("both", "/") if bidirectional else ("push", None)
    att = _attachment(name, url, mode, mount, options)
    state.check_writable(pond.root)
    existing = {a.name: a for a in attachments(pond)}
    resume = False
    if name in existing:
        if existing[name].to_config() != att.to_config() or existing[name].mirror:
            raise AlreadyExistsError(
                f"a remote named {name} exists ({existing[name].url}); "
                f"`pond remote remove {name}` first"
            )
        resume = True
    _store, secrets = _open_checked(att, pond.identity().get("pond_id"))
    if resume:
        with pond.steward.locked(writes=False):
            report = push(pond.root, att, progress, secrets)
        return Transfer(name, url, report)
    steward = pond.steward
    failed_before = len(steward.failed_tasks)
    # the new node's post-commit `remote` job does the first push, reporting to `progress`
    argv = args or ["pond", "backup", "add", name, url]
    with pond.transaction(argv, vars, progress=progress) as tx:
        tx.mknod(att.node_path, config.FACTORY, get(config.FACTORY).file_type, att.to_yaml())
    for task, err in steward.failed_tasks[failed_before:]:
        if task.config_path == att.node_path:
            raise RemoteError(
                f"remote {name} is attached but its first push failed: {err}; "
                f"`pond push {name}` resumes"
            )
    return None


def remote_add(
    pond: PondHost,
    name: str,
    url: str,
    path: str,
    *,
    options: StoreOptions | None = None,
    args: list[str] | None = None,
    vars: dict[str, str] | None = None,
) -> config.Attachment:
    """Attach a pull-mode remote: at `/` this pond's own backup (it becomes a read-only
    mirror, the attachment a local file); elsewhere another pond, imported read-only."""
    from ..errors import AlreadyExistsError
    from ..factories.registry import get

    mount = paths.normalize(path)
    att = _attachment(name, url, "pull", mount, options)
    if any(a.name == name for a in attachments(pond)):
        raise AlreadyExistsError(f"a remote named {name} exists; `pond remote remove {name}` first")
    pond_id = pond.identity().get("pond_id")
    if mount == "/":
        store, secrets = _open_checked(att, pond_id)
        if remote_pond_id(store) is None:
            raise PondError(f"remote {url} holds no pond yet: nothing to follow")
        state.write_mirror(pond.root, name, att.to_yaml())
        return att
    state.check_writable(pond.root)
    config.check_mount(mount)
    if pond.lookup(mount) is not None:
        raise AlreadyExistsError(f"{mount} exists: an import needs a new path")
    store, _secrets_ = _open_checked(att, None)
    if remote_pond_id(store) is None:
        raise PondError(f"remote {url} holds no pond to import")
    with pond.transaction(args or ["pond", "remote", "add", name, url, path], vars) as tx:
        tx.mknod(att.node_path, config.FACTORY, get(config.FACTORY).file_type, att.to_yaml())
        tx.mknod(mount, config.IMPORT_FACTORY, nodes.DIR_DYNAMIC, f"remote: {name}\n".encode())
    return att


def remote_remove(
    pond: PondHost,
    name: str,
    purge: bool = False,
    args: list[str] | None = None,
    vars: dict[str, str] | None = None,
) -> config.Attachment:
    """Detach; `purge` also removes an import's mount and its local copy."""
    import shutil

    att = find(pond, name)
    if att.mirror:
        state.forget(pond.root, name)
        return att
    with pond.transaction(args or ["pond", "remote", "remove", name], vars) as tx:
        tx.staged.remove(att.node_path)
        if purge and att.is_import and att.mount is not None:
            loc = tx.staged.lookup(att.mount)
            if loc is not None and loc.row.factory == config.IMPORT_FACTORY:
                parent = tx.staged.lookup(paths.parent(att.mount), follow=True)
                assert parent is not None
                tx.staged.unlink_entry(parent.node_id, paths.basename(att.mount))
    state.forget(pond.root, name)
    if purge and att.is_import:
        shutil.rmtree(import_root(pond.root, name), ignore_errors=True)
    return att


def push_all(pond: PondHost, name: str | None, progress: Progress | None = None) -> list[Transfer]:
    atts = select(pond, name, lambda a: a.pushes, "push")
    out = []
    with pond.steward.locked(writes=False):
        for att in atts:
            out.append(Transfer(att.name, att.url, push(pond.root, att, progress, _secrets())))
    return out


def pull_all(pond: PondHost, name: str | None, progress: Progress | None = None) -> list[Transfer]:
    atts = select(pond, name, lambda a: a.pulls, "pull")
    out = []
    with pond.steward.locked(writes=False):
        for att in atts:
            out.append(Transfer(att.name, att.url, pull(pond, att, progress)))
    return out


def verify_all(pond: PondHost, name: str | None) -> list[Verification]:
    atts = select(pond, name, lambda a: True, "")
    return [Verification(a.name, a.url, verify(pond, a)) for a in atts]


def remote_infos(
    pond: PondHost, only: Callable[[config.Attachment], bool] | None = None
) -> list[RemoteInfo]:
    out = []
    for att in attachments(pond):
        if only is not None and not only(att):
            continue
        mark = state.read_watermark(pond.root, att.name)
        out.append(
            RemoteInfo(
                name=att.name,
                url=att.url,
                mode=att.mode,
                mount=att.mount,
                pushed_txn_seq=mark["pushed_txn_seq"],
                pulled_txn_seq=mark["pulled_txn_seq"],
                last_error=mark["last_error"],
                updated=mark["updated"],
            )
        )
    return out


def status(pond: PondHost) -> PondStatus:
    report = pond.control_incomplete()
    mirrors = state.mirror_names(pond.root)
    return PondStatus(
        pond_id=pond.identity().get("pond_id"),
        last_txn_seq=pond.data.last_txn_seq(),
        incomplete=len(report.transactions) + len(report.tasks),
        remotes=remote_infos(pond),
        mirror_of=mirrors[0] if mirrors else None,
    )


def restore(
    root: Path,
    name: str,
    url: str,
    *,
    options: StoreOptions | None = None,
    progress: Progress | None = None,
) -> Transfer:
    """Create the pond at `root` from a backup; NAME stays attached as its mirror."""
    from ..errors import AlreadyExistsError
    from .restore import restore as restore_into

    root = Path(root).absolute()
    att = _attachment(name, url, "pull", "/", options)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExistsError(f"{root} exists and is not empty: restore makes a new pond")
    store, secrets = _open_checked(att, None)
    if remote_pond_id(store) is None:
        raise PondError(f"remote {url} holds no pond to restore")
    try:
        report = restore_into(root, store, progress=_crash_hook(progress, "mid_restore"))
    except PondError as e:
        raise type(e)(_error_text(e, secrets)) from None
    state.write_mirror(root, name, att.to_yaml())
    state.update_watermark(root, name, pulled_txn_seq=_txn_seq_of(root))
    return Transfer(name, url, report)
