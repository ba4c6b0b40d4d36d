"""The environment a job's host process gets (SPEC §8): small and documented.

A job does not inherit the pond process's environment, which holds the credentials of
every remote and factory (`${env:NAME}` values): it gets only

- from the pond process, if set: `PATH` (else the system default), `HOME`, `LANG`, every
  `LC_*`, `TZ`, `TMPDIR`;
- its own `env:` from its config (which may override those);
- the pond's facts, which nothing overrides: `POND` (the pond directory), the attempt's
  identity as the control table records it (`POND_PARENT_TXN_SEQ`, `POND_EXECUTION_SEQ`,
  `POND_ATTEMPT`; empty for `pond run`, which is not a post-commit task), `POND_ARGS` (the
  command's argv, JSON) and `POND_VARS` (its `-v` variables, JSON).

No `txn_seq` of the job's own is given: it is only assigned if the job's writes commit,
and a number handed out before that may end up belonging to another transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import RunContext

PASSED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR"})
PASSED_PREFIX = "LC_"


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def job_environment(
    ctx: RunContext, own: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a job run with RunContext `ctx` and config `env:` `own`."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if k in PASSED or k.startswith(PASSED_PREFIX)}
    env.setdefault("PATH", os.defpath)
    env.update({k: str(v) for k, v in own.items()})
    env.update(
        {
            "POND": ctx.pond_path,
            "POND_PARENT_TXN_SEQ": _text(ctx.parent_txn_seq),
            "POND_EXECUTION_SEQ": _text(ctx.execution_seq),
            "POND_ATTEMPT": _text(ctx.attempt),
            "POND_ARGS": json.dumps(ctx.args),
            "POND_VARS": json.dumps(ctx.vars),
        }
    )
    return env
