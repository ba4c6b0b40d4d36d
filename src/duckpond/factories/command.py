"""`command`: run a host command with the transaction's facts in its environment (SPEC §8)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from ..errors import FactoryError
from .base import Factory, Fields, RunContext
from .registry import register

STDERR_TAIL = 500


class CommandFactory(Factory):
    name = "command"
    description = (
        "Runs a host command (argv list `command`, optional `env`, `cwd`, `timeout_s`) with "
        "POND, POND_TXN_SEQ, POND_PARENT_TXN_SEQ, POND_ARGS in its environment; "
        "a non-zero exit fails the job."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "command": f.get("command", list, required=True),
            "env": f.get("env", dict, {}),
            "cwd": f.get("cwd", str),
            "timeout_s": f.get("timeout_s", (int, float)),
        }
        f.done()
        if not out["command"] or not all(isinstance(a, str) for a in out["command"]):
            raise FactoryError(f"{self.name}: 'command' must be a non-empty list of strings")
        if not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in out["env"].items()
        ):
            raise FactoryError(f"{self.name}: 'env' must map names to strings")
        return out

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        cfg = self.validate(config)
        env = dict(os.environ)
        env.update({k: str(v) for k, v in cfg["env"].items()})
        env["POND"] = ctx.pond_path
        env["POND_TXN_SEQ"] = str(ctx.txn_seq)
        env["POND_PARENT_TXN_SEQ"] = "" if ctx.parent_txn_seq is None else str(ctx.parent_txn_seq)
        env["POND_ARGS"] = json.dumps(ctx.args)
        env["POND_VARS"] = json.dumps(ctx.vars)
        argv = [*cfg["command"], *ctx.args] if ctx.parent_txn_seq is None else cfg["command"]
        try:
            proc = subprocess.run(
                argv,
                env=env,
                cwd=cfg["cwd"],
                capture_output=True,
                timeout=cfg["timeout_s"],
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise FactoryError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise FactoryError(f"command timed out after {cfg['timeout_s']} s") from None
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            ctx.log(line)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.decode("utf-8", "replace").split())[-STDERR_TAIL:]
            raise FactoryError(f"command exited with status {proc.returncode}: {tail}")


register(CommandFactory())
