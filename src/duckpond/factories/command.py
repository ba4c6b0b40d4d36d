"""`command`: run a host command with the transaction's facts in its environment (SPEC §8)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

from ..errors import FactoryError
from . import jobenv, process
from .base import Factory, Fields, RunContext

STDERR_TAIL = 500
# Read this much of stderr's end: enough for the tail once secrets are put back as references.
STDERR_READ = 64 * 1024


class CommandFactory(Factory):
    name = "command"
    spawns_process = True
    description = (
        "Runs a host command (argv list `command`, optional `env`, `cwd`, `timeout_s`) in a "
        "small environment: PATH, HOME, LANG, LC_*, TZ, TMPDIR, its own `env`, and POND, "
        "POND_PARENT_TXN_SEQ, POND_EXECUTION_SEQ, POND_ATTEMPT, POND_ARGS, POND_VARS; "
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
        # Not the pond process's environment: it holds every remote's and node's secrets.
        env = jobenv.job_environment(ctx, cfg["env"])
        argv = [*cfg["command"], *ctx.args] if ctx.parent_txn_seq is None else cfg["command"]
        # Output goes to files, not pipes: a process the job leaves behind holding a pipe
        # open would keep the pond waiting after the job itself has exited.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cfg["cwd"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=process.tie_to_parent(),
                )
            except FileNotFoundError:
                raise FactoryError(f"command not found: {argv[0]}") from None
            started = process.child_start_time(proc.pid)
            try:
                ctx.job_started(proc.pid, started)
                proc.wait(timeout=cfg["timeout_s"])
            except subprocess.TimeoutExpired:
                raise FactoryError(f"command timed out after {cfg['timeout_s']} s") from None
            finally:
                # Nothing of this attempt outlives it: the job's group goes with the job.
                process.end_group(proc.pid, started)
                proc.wait()
            out.seek(0)
            stdout = ctx.redact(out.read().decode("utf-8", "replace"))
            if proc.returncode != 0:
                err.seek(0, os.SEEK_END)
                err.seek(max(0, err.tell() - STDERR_READ))
                stderr = ctx.redact(err.read().decode("utf-8", "replace"))
        for line in stdout.splitlines():
            ctx.log(line)
        if proc.returncode != 0:
            # Redacted before trimming: a cut can then never leave part of a secret.
            tail = " ".join(stderr.split())[-STDERR_TAIL:]
            raise FactoryError(f"command exited with status {proc.returncode}: {tail}")


FACTORY = CommandFactory()
