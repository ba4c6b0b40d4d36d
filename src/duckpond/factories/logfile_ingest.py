"""`logfile-ingest`: mirror rotating host logs into the pond, exactly once (SPEC §8).

Each active host file (`active_pattern`) has one pond file, `pond_path/<its name>`, an
appended log (storage/applog.py): every run adds the new complete lines as one version,
so reading it gives the whole history, across rotations, in order. A partial last line
waits on the host for its newline. The state is the pond file's own latest version
(attributes): no cursor elsewhere, and it only moves with the run's one transaction, so a
crash anywhere leaves the previous state and the next run takes up from it.

A rotation is seen when the active file no longer continues the generation the pond
tracks (logtail.py); the archive that does (`archived_pattern`, maybe compressed) gives
the lines written after the last run, then any newer archives follow whole, then the new
active file. No archive holding it: the file was truncated or rewritten, and the run says
so. Archives are only opened at a rotation (and the first run), never re-read otherwise.

`pond run NODE b3sum` prints `HASH  PATH` per generation (b3sum's format): the BLAKE3 of
the pond's copy, and the host path it was last seen at.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from .. import paths
from ..crashpoints import crash_point
from ..errors import FactoryError
from .base import Factory, Fields, RunContext
from .logtail import EMPTY, Archive, GenState, HostLog, archives_of, complete_end, digest
from .registry import register

STATE_KEY = "logfile"  # this factory's attributes on each version of a pond log


@dataclass
class Plan:
    """What one run adds to one pond log."""

    data: bytearray = field(default_factory=bytearray)
    gens: list[list[Any]] = field(default_factory=list)  # [offset in the log, host path]
    state: GenState | None = None  # the tracked generation after the run (None: unchanged)
    notes: list[str] = field(default_factory=list)

    def add_archive(self, base: int, a: Archive) -> None:
        data = a.read_all()
        if data:
            self.gens.append([base + len(self.data), a.path])
            self.data += data


class LogfileIngest(Factory):
    name = "logfile-ingest"
    description = (
        "Appends the new complete lines of rotating host logs (active_pattern, "
        "archived_pattern) to pond files under pond_path, exactly once; `b3sum` prints "
        "their checksums."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {k: f.get(k, str, required=True) for k in self._KEYS}
        f.done()
        for key in self._KEYS:
            if not out[key].strip():
                raise FactoryError(f"{self.name}: '{key}' must not be empty")
        if not out["pond_path"].startswith("/"):
            raise FactoryError(f"{self.name}: 'pond_path' must be an absolute pond path")
        out["pond_path"] = paths.normalize(out["pond_path"])
        return out

    _KEYS = ("archived_pattern", "active_pattern", "pond_path")

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        cfg = self.validate(config)
        # A post-commit run gets its trigger's arguments, not a subcommand.
        sub = ctx.args[0] if ctx.args and ctx.parent_txn_seq is None else "push"
        if sub == "b3sum":
            self._b3sum(cfg["pond_path"], ctx)
        elif sub == "push" and len(ctx.args) <= 1:
            self._ingest(cfg, ctx)
        else:
            raise FactoryError(f"{self.name}: unknown command {' '.join(ctx.args)!r} (push, b3sum)")

    # -- ingest ----------------------------------------------------------------------------
    def _ingest(self, cfg: dict[str, Any], ctx: RunContext) -> None:
        actives = _regular_files(cfg["active_pattern"])
        archived = _regular_files(cfg["archived_pattern"])
        names: dict[str, str] = {}
        for path in actives:
            name = os.path.basename(path)
            if name in names:
                raise FactoryError(
                    f"{self.name}: {names[name]} and {path} have the same name; "
                    "give each its own logfile-ingest node"
                )
            names[name] = path
        changed = added = 0
        for name, path in sorted(names.items()):
            pond_file = paths.join(cfg["pond_path"], name)
            archives = [a for a in archives_of(name, archived) if a.path not in actives]
            plan = self._plan(pond_file, path, archives, ctx)
            for note in plan.notes:
                ctx.log(note)
            if plan.state is None:
                continue
            attrs = {STATE_KEY: {**plan.state.to_json(), "gens": plan.gens}}
            ctx.append_log(pond_file, bytes(plan.data), attrs)
            changed += 1
            added += len(plan.data)
            crash_point("logfile_after_append")
        ctx.log(
            f"logfile-ingest: {changed} of {len(names)} file(s) appended, +{added} bytes"
            if changed
            else f"logfile-ingest: no changes ({len(names)} file(s))"
        )

    def _plan(self, pond_file: str, path: str, archives: list[Archive], ctx: RunContext) -> Plan:
        attrs = ctx.latest_attributes(pond_file)
        if attrs is not None and STATE_KEY not in attrs:
            raise FactoryError(f"{pond_file} exists and was not written by {self.name}")
        try:
            host = HostLog(path)
        except FileNotFoundError:
            host = None  # rotated away just now: the archive has it, the next file comes
        except OSError as e:
            raise FactoryError(f"cannot read {path}: {e.strerror}") from None
        try:
            if attrs is None:
                return self._first(archives, host)
            total = int(attrs["log_size"])
            st = GenState.from_json(attrs[STATE_KEY])
            if host is not None and host.continues(st):
                return _append(host, st, total - st.length)
            return self._rotated(pond_file, path, st, total, archives, host)
        finally:
            if host is not None:
                host.close()

    def _first(self, archives: list[Archive], host: HostLog | None) -> Plan:
        """A log the pond has never seen: its archives, oldest first, then its lines."""
        plan = Plan()
        if host is None:
            return plan
        for a in archives:
            plan.add_archive(0, a)
        plan.notes.append(
            f"{host.path}: new, {len(archives)} archive(s) ({len(plan.data)} bytes) first"
            if archives
            else f"{host.path}: new"
        )
        _start_generation(plan, 0, host)
        return plan

    def _rotated(
        self,
        pond_file: str,
        path: str,
        st: GenState,
        total: int,
        archives: list[Archive],
        host: HostLog | None,
    ) -> Plan:
        plan = Plan()
        gen_start = total - st.length
        for i in range(len(archives) - 1, -1, -1):  # newest first: the likeliest
            rest = archives[i].rest_after(st)
            if rest is None:
                continue
            plan.data += rest
            plan.gens.append([gen_start, archives[i].path])  # where that generation is now
            newer = archives[i + 1 :]
            for a in newer:
                plan.add_archive(total, a)
            plan.notes.append(
                f"{path}: rotated to {archives[i].path} (+{len(rest)} bytes from it"
                + (f", {len(newer)} newer archive(s) whole)" if newer else ")")
            )
            break
        else:
            if host is None:
                plan.notes.append(f"{path}: missing, and no archive continues it: waiting")
                return plan
            plan.notes.append(
                f"warning: {path} was truncated or rewritten (the pond holds {st.length} "
                f"bytes of it, it now has {host.size}, and no archive continues it): "
                f"the earlier content stays in {pond_file}; the new content follows it"
            )
        if host is None:
            plan.state = EMPTY  # the next active file starts a new generation
            return plan
        _start_generation(plan, total, host)
        return plan

    # -- b3sum -----------------------------------------------------------------------------
    def _b3sum(self, pond_path: str, ctx: RunContext) -> None:
        for name in ctx.list_dir(pond_path) or []:
            pond_file = paths.join(pond_path, name)
            versions = ctx.version_attributes(pond_file)
            if not versions or STATE_KEY not in versions[-1]:
                continue
            where: dict[int, str] = {}
            for attrs in versions:
                for offset, host_path in attrs[STATE_KEY].get("gens", []):
                    where[int(offset)] = host_path  # a later name replaces an earlier one
            data = ctx.read_bytes(pond_file)
            starts = sorted(where)
            for i, start in enumerate(starts):
                end = starts[i + 1] if i + 1 < len(starts) else len(data)
                ctx.output(f"{digest(data[start:end])}  {where[start]}")


def _append(host: HostLog, st: GenState, gen_start: int) -> Plan:
    """The active file continues the tracked generation: its new complete lines."""
    plan = Plan()
    new = host.pread(st.length, host.size - st.length)
    cut = complete_end(new)
    if cut < len(new):
        plan.notes.append(
            f"{host.path}: a partial last line ({len(new) - cut} bytes) waits for its newline"
        )
    if cut == 0:
        return plan
    if st.length == 0:
        plan.gens.append([gen_start, host.path])
    plan.data += new[:cut]
    plan.notes.append(f"{host.path}: +{cut} bytes")
    plan.state = GenState.of(host.pread, st.length + cut, host.dev, host.ino)
    return plan


def _start_generation(plan: Plan, total: int, host: HostLog) -> None:
    """The active file's complete lines as a new generation, after what `plan` holds."""
    data = host.pread(0, host.size)
    cut = complete_end(data)
    if cut:
        plan.gens.append([total + len(plan.data), host.path])
        plan.data += memoryview(data)[:cut]  # (no copy of a big first read)
    if cut < len(data):
        plan.notes.append(
            f"{host.path}: a partial last line ({len(data) - cut} bytes) waits for its newline"
        )
    plan.state = GenState.of(host.pread, cut, host.dev, host.ino)


def _regular_files(pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if _is_file(p))


def _is_file(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


FACTORY = register(LogfileIngest())
