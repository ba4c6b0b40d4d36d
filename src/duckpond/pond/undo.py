"""`Pond.rm`, `mv`, `revert`, `diff` and `log`: undo and move, each write one recorded
transaction that keeps every earlier version readable (steward/undo.py, storage/history.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import nodes, paths
from ..errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondUsageError
from ..steward.handles import PondHandles

if TYPE_CHECKING:  # steward.undo loads when an undo method is called, not with every Pond
    from ..steward.undo import LogEntry, RevertResult, TxnDiff


class UndoMethods(PondHandles):
    def rm(
        self,
        targets: str | Sequence[str],
        recursive: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> int:
        """Remove files, factory nodes, jobs (/etc/system.d/*) and, with `recursive`,
        directories, in one transaction; returns its txn_seq. Earlier versions stay
        (`pond revert` puts them back)."""
        names = [targets] if isinstance(targets, str) else list(targets)
        if not names:
            raise PondUsageError("rm: give at least one path")
        with self.steward.transaction(args or ["pond", "rm", *names], vars) as tx:
            for name in names:
                tx.staged.remove_entry(_pond_path(name), recursive=recursive)
            return tx.txn_seq

    def mv(
        self,
        src: str,
        dst: str,
        overwrite: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> str:
        """Move/rename `src` to `dst` (into `dst` when it is a directory), keeping the node's
        identity and versions; an existing file at the target only with `overwrite`.
        Returns the new path."""
        src_n, dst_n = _pond_path(src), _pond_path(dst)
        with self.steward.transaction(args or ["pond", "mv", src, dst], vars) as tx:
            staged = tx.staged
            if staged.lookup(src_n, follow=False) is None:
                raise NotFoundError(f"no such file or directory: {src_n}")
            target = staged.lookup(dst_n, follow=True)
            if target is not None and target.file_type == nodes.DIR_PHYSICAL:
                dst_n = paths.join(target.path, paths.basename(src_n))
                target = staged.lookup(dst_n, follow=False)
            if dst_n == src_n:
                raise InvalidPathError(f"{src_n} and {dst_n} are the same path")
            if target is not None:
                if nodes.is_dir(target.file_type):
                    raise InvalidPathError(f"cannot overwrite the directory {dst_n}")
                if not overwrite:
                    raise AlreadyExistsError(f"{dst_n} exists (use --force to replace it)")
                staged.remove_entry(dst_n)
            staged.move(src_n, dst_n)
        return dst_n

    def revert(
        self,
        txn_seq: int,
        force: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> RevertResult:
        """A new transaction undoing what user transaction `txn_seq` did: entries it added
        removed, entries it removed or moved put back, earlier versions back as new ones
        (a series append: a version that drops it). Refused when later transactions
        changed the same nodes, listing them, unless `force`."""
        argv = args or ["pond", "revert", str(txn_seq)]
        with self.steward.transaction(argv, vars) as tx:
            from ..steward import undo

            return undo.revert(tx.staged, txn_seq, force)

    def diff(self, start: int, end: int | None = None) -> TxnDiff:
        """What changed from transaction `start` to `end` (None: the newest): entries added,
        removed, moved; versions added with their sizes and rows."""
        self.data.refresh()
        from ..steward import undo

        return undo.diff(self.fs, start, end)

    def log(self, path: str) -> list[LogEntry]:
        """The transactions that touched `path` (its versions, its name), newest first."""
        self.data.refresh()
        from ..steward import undo

        return undo.log(self.fs, _pond_path(path))


def _pond_path(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidPathError(f"not an absolute pond path: {path}")
    return paths.normalize(path)
