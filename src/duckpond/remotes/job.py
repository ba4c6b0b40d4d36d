"""`remote`: the post-commit job that pushes the pond to one push-mode remote.

Its nodes are the attachments at /sys/remotes/NAME (see config.py for the config). The steward
runs one task per push-mode attachment after the /etc/system.d/ tasks; the task writes no data
(its post_commit rows are its record). A remote that is down, or does not answer within its
`timeout`, fails the task, never the user's write; the next write, `pond push` or
`pond recover --retry-failed` catches up.

Remotes-layer code, registered as the `remote` entry point of `duckpond.factories`
(pyproject.toml): the push works on the pond's directory, which the steward running the job
holds the write lock of; the job opens no second pond.
"""

from __future__ import annotations

from typing import Any

from ..errors import FactoryError
from ..factories.base import Factory, RunContext
from . import config as remote_config
from . import ops


class RemoteFactory(Factory):
    name = remote_config.FACTORY
    description = (
        "A remote of this pond (`pond backup add`, `pond remote add`): `url` (file:///dir or "
        "s3://bucket/prefix), `mode` push|pull|both, `mount`, S3 `endpoint`, `region`, "
        "`access_key_id`, `secret_access_key` (an ${env:NAME} reference), `allow_http`, "
        "`timeout` (seconds each S3 request may take, default 30). As a post-commit task "
        "it pushes every committed transaction; a remote down or silent past its timeout "
        "fails the task, never the write."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        return remote_config.validate(config, self.name)

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        # `config` is expanded already (the steward resolved ${env:...}): built directly,
        # not re-validated, since a resolved secret is a literal by now. The job's label is
        # its node's name, /sys/remotes/NAME: the remote's name.
        att = remote_config.Attachment(
            name=ctx.label,
            url=config["url"],
            mode=config.get("mode", "push"),
            mount=config.get("mount"),
            options=remote_config.options_of(config),
        )
        if not att.pushes:
            raise FactoryError(f"remote {att.name} is a pull-mode remote: `pond pull {att.name}`")
        ops.push(ctx.root, att, progress=ctx.progress, secrets=ctx.secrets)


FACTORY = RemoteFactory()
