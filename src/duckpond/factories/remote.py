"""`remote`: the post-commit job that pushes the pond to one push-mode remote.

Its nodes are the attachments at /sys/remotes/NAME (see remotes/config.py for the config).
The steward runs one task per push-mode attachment after the /etc/system.d/ tasks; the task
writes no data (its post_commit rows are its record). A remote that is down, or does not
answer within its `timeout`, fails the task, never the user's write; the next write, `pond push`
or `pond recover --retry-failed` catches up.
"""

from __future__ import annotations

from typing import Any

from ..errors import FactoryError
from .base import Factory, RunContext
from .registry import register


class RemoteFactory(Factory):
    name = "remote"
    description = (
        "A remote of this pond (`pond backup add`, `pond remote add`): `url` (file:///dir or "
        "s3://bucket/prefix), `mode` push|pull|both, `mount`, S3 `endpoint`, `region`, "
        "`access_key_id`, `secret_access_key` (an ${env:NAME} reference), `allow_http`, "
        "`timeout` (seconds each S3 request may take, default 30). As a post-commit task "
        "it pushes every committed transaction; a remote down or silent past its timeout "
        "fails the task, never the write."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        from ..remotes import config as remote_config

        return remote_config.validate(config, self.name)

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        from .. import paths
        from ..pond import Pond
        from ..remotes import ops
        from ..remotes.config import Attachment, options_of

        # `config` is expanded already (the steward resolved ${env:...}): built directly,
        # not re-validated, since a resolved secret is a literal by now.
        name = str(getattr(ctx, "label", "") or paths.basename(config.get("url", "remote")))
        att = Attachment(
            name=name,
            url=config["url"],
            mode=config.get("mode", "push"),
            mount=config.get("mount"),
            options=options_of(config),
        )
        if not att.pushes:
            raise FactoryError(f"remote {name} is a pull-mode remote: `pond pull {name}`")
        pond = Pond.open(ctx.pond_path)
        ops.push(pond, att, progress=ops.PROGRESS.get(), secrets=getattr(ctx, "secrets", None))


register(RemoteFactory())
