"""`Pond`'s remotes: backups and pull-mode remotes attached, pushed, pulled, verified
(remotes/ and docs/remotes/index.md). `Pond.restore` stays on `Pond` (it opens one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..remotes.config import Attachment
    from ..remotes.info import PondStatus, RemoteInfo, Transfer, Verification
    from ..remotes.ops import PondHost
    from ..storage.objstore import StoreOptions


class RemoteMethods:
    # Each method takes the whole pond (`PondHost`: `Pond` is one), as the operations do.

    def backup_add(
        self: PondHost,
        name: str,
        url: str,
        *,
        bidirectional: bool = False,
        options: StoreOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Transfer | None:
        """Attach a backup at `url` (`file:///dir`, `s3://bucket/prefix`) as
        /sys/remotes/NAME and push the whole pond; every write then pushes. The remote is
        checked first (down, or holding another pond: an error, nothing written); re-running
        over its own half-pushed remote resumes. `options`: the S3 connection options
        (its `secret_access_key` is an `${env:NAME}` reference, never a literal);
        `timeout`: seconds each S3 request may take (stored; default 30)."""
        from ..remotes import ops
        from ..storage.objstore import StoreOptions

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
        self: PondHost,
        name: str,
        url: str,
        path: str,
        *,
        options: StoreOptions | None = None,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Attachment:
        """Attach a pull-mode remote: `path` "/" follows this pond's own backup (the pond
        becomes a read-only mirror); any other path imports another pond read-only there.
        `timeout`: seconds each S3 request may take (stored; default 30)."""
        from ..remotes import ops
        from ..storage.objstore import StoreOptions

        return ops.remote_add(
            self,
            name,
            url,
            path,
            options=(options or StoreOptions()).with_timeout(timeout),
            args=args,
            vars=vars,
        )

    def remote_list(self: PondHost, push_only: bool = False) -> list[RemoteInfo]:
        """Every remote with its mode, mount and watermarks (`push_only`: the backups)."""
        from ..remotes import ops

        return ops.remote_infos(self, (lambda a: a.pushes) if push_only else None)

    def remote_remove(
        self: PondHost,
        name: str,
        purge: bool = False,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> Attachment:
        """Detach remote `name` (`purge`: also an import's mount and local copy)."""
        from ..remotes import ops

        return ops.remote_remove(self, name, purge, args, vars)

    def push(
        self: PondHost, name: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> list[Transfer]:
        """Catch push-mode remotes (or `name`) up; idempotent."""
        from ..remotes import ops

        return ops.push_all(self, name, progress)

    def pull(
        self: PondHost, name: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> list[Transfer]:
        """Fast-forward from pull-mode remotes (or `name`); idempotent."""
        from ..remotes import ops

        return ops.pull_all(self, name, progress)

    def verify(self: PondHost, name: str | None = None) -> list[Verification]:
        """Compare local and remote content (every remote, or `name`)."""
        from ..remotes import ops

        return ops.verify_all(self, name)

    def status(self: PondHost) -> PondStatus:
        """Pond id, last txn_seq, unfinished work and the remotes' watermarks: local files
        only, never a remote."""
        from ..remotes import ops

        return ops.status(self)
