"""Copying between host files and a pond (`pond copy`).

In (`Pond.copy_in`): which sources are accepted, the pond path each goes to, and how each is
stored (raw bytes, a table or a series from Parquet or CSV, compressed or not). Out
(`Pond.copy_out`): the pond files matching globs, written below a host directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import nodes, paths
from .errors import InvalidPathError, NotFoundError, PondUsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from .query.urls import SourceURL
    from .results import EntryInfo


def parse_sources(sources: Sequence[str], dest: str) -> tuple[list[SourceURL], str]:
    """The parsed host sources and the normalized destination; nothing is read yet."""
    from .query.urls import parse_source

    if not sources:
        raise PondUsageError("copy needs at least one source")
    if not dest:
        raise InvalidPathError("empty destination: name a pond path such as / or /dir/")
    parsed = [parse_source(s) for s in sources]
    for s in parsed:
        if s.scheme != "host":
            raise PondUsageError(
                f"copy into the pond reads host files: use host:///abs/path, not {s.path!r}"
            )
    return parsed, paths.normalize(dest)


def targets(parsed: list[SourceURL], dest: str, dest_norm: str, dest_is_dir: bool) -> list[str]:
    """Where each source goes: into a directory when `dest` ends with `/`, names an
    existing directory, or there are several sources; else onto `dest` itself."""
    into_dir = dest.endswith("/") or len(parsed) > 1 or dest_is_dir
    if len(parsed) > 1 and not dest_is_dir:
        raise InvalidPathError(f"copying several files needs a directory: {dest_norm}")
    out = [paths.join(dest_norm, Path(s.path).name) if into_dir else dest_norm for s in parsed]
    for i, target in enumerate(out):
        if target in out[:i]:
            raise InvalidPathError(f"two sources would be copied to {target}")
    return out


class PondReader(Protocol):
    """What copying out reads from a pond (a `Pond` is one)."""

    def list(self, pattern: str = ...) -> list[EntryInfo]: ...

    def derived(self, path: str) -> object | None: ...

    def read_table(self, path: str, version: int | None = None) -> pa.Table: ...

    def read_bytes(self, path: str, version: int | None = None) -> bytes: ...


def copy_out(pond: PondReader, patterns: Sequence[str], host_dir: str | Path) -> list[Path]:
    """See `Pond.copy_out`: every target is checked before the first is written."""
    from .hostdir import HostDir

    plan: list[tuple[str, EntryInfo]] = []
    for pattern in patterns:
        prefix = paths.compile_glob(pattern).literal_prefix
        matches = pond.list(pattern)
        if not matches:
            raise NotFoundError(f"no pond files match {pattern}")
        for e in matches:
            if not e.type.startswith("file:"):
                continue
            if nodes.is_dynamic(e.type) and pond.derived(e.path) is None:
                continue  # an executor factory's node: a job, not data
            rel = e.path[len(prefix) :].lstrip("/") if e.path != prefix else paths.basename(e.path)
            plan.append((rel, e))
    with HostDir.open(Path(host_dir)) as out:
        out.check([rel for rel, _ in plan])
        written = []
        for rel, e in plan:
            if nodes.is_series(e.type) and e.version > 1:
                from .query import output

                # a series is the union of its versions, not its latest one
                data = output.to_parquet_bytes(pond.read_table(e.path))
            else:
                data = pond.read_bytes(e.path)
            written.append(out.write(rel, data))
    return written
