"""What a factory is, and what it may touch when it runs."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from .. import nodes
from ..errors import FactoryError, clip

if TYPE_CHECKING:
    import pyarrow as pa

    from ..reports import IncompleteReport, TxnSummary
    from ..storage.blobs import BlobStore
    from ..storage.datatable import DataTable
    from ..storage.fs import Located
    from ..txn import WriteTxn
    from .live import BuildContext, LiveNode

EXECUTOR = "executor"
DATA = "data"  # makes a dynamic file or directory, computed on read (factories/live.py)

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


Progress = Callable[[int, int], None]  # (done, total), e.g. bytes moved by a push


class PondReader(Protocol):
    """A read view of the pond a job runs in: the library object that runs the steward
    (no second pond is opened, no second lock is taken). Its reads see every committed
    transaction, the job's parent included, but not the job's own staged writes."""

    root: Path
    blobs: BlobStore  # the storage handles it reads through (the steward's own)

    @property
    def data(self) -> DataTable: ...

    def lookup(self, path: str) -> Located | None: ...

    def read_bytes(self, path: str, version: int | None = None) -> bytes: ...

    def sql(
        self,
        query: str = "SELECT * FROM source",
        path: str | None = None,
        version: int | None = None,
        time_start: int | None = None,
        time_end: int | None = None,
        *,
        timeout: float | None = ...,
        memory_limit: int | None = ...,
    ) -> pa.Table: ...

    def control_status(self, limit: int = 20) -> tuple[list[TxnSummary], IncompleteReport]: ...


class RunContext:
    """What a running job gets, built by the layer that runs it (the steward): its own write
    transaction (`txn`, which also reads the pond as committed plus what the job staged),
    who it is (`label`, `args`, `vars`, the attempt's identity), the secrets its config
    resolved, a progress callback, and a read view of the pond (`reader()`).

    The job's own txn_seq is not known before its writes commit: no job is told one."""

    def __init__(
        self,
        txn: WriteTxn,
        *,
        pond_path: str,
        label: str,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
        parent_txn_seq: int | None = None,
        execution_seq: int | None = None,
        attempt: int | None = None,
        secrets: Secrets | None = None,
        progress: Progress | None = None,
        on_job_started: Callable[[int, int | None], None] | None = None,
        reader: Callable[[], PondReader] | None = None,
    ) -> None:
        self.txn = txn
        self.pond_path = pond_path
        self.label = label
        self.args = list(args or [])
        self.vars = dict(vars or {})
        # The attempt's identity as the control table records it (None for `pond run`).
        self.parent_txn_seq = parent_txn_seq
        self.execution_seq = execution_seq
        self.attempt = attempt
        self.secrets = secrets if secrets is not None else Secrets()
        self.progress = progress
        self._on_job_started = on_job_started
        self._reader = reader

    @property
    def root(self) -> Path:
        return Path(self.pond_path)

    def read_bytes(self, path: str) -> bytes:
        return self.txn.read_bytes(path)

    def exists(self, path: str) -> bool:
        return self.txn.exists(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a file (parent directories made as needed) in the job's transaction."""
        self.txn.write_bytes(path, data, parents=True)

    def log(self, message: str) -> None:
        """A line on the pond's log (the CLI shows it on stderr), secrets redacted."""
        logging.getLogger("pond").info("[%s] %s", self.label, self.redact(message))

    def output(self, line: str) -> None:
        """A line of the job's result, printed on stdout (the log goes to stderr)."""
        sys.stdout.write(self.redact(line) + "\n")
        sys.stdout.flush()

    def list_dir(self, path: str) -> list[str] | None:
        """The entry names of a pond directory, sorted; None when it is not one."""
        staged = self.txn.staged
        loc = staged.lookup(path, follow=True)
        if loc is None or not nodes.is_dir(loc.file_type):
            return None
        return sorted(e.name for e in staged.entries_of(loc).entries())

    def warn(self, message: str) -> None:
        """Say something went wrong without failing the job (printed as `warning: ...`)."""
        logging.getLogger("pond").warning("[%s] %s", self.label, self.redact(message))

    def series_max_time(self, path: str) -> int | None:
        """The newest event time (µs since epoch UTC) over every version of a stored
        series, from each version's recorded bounds (no data read); None when `path` is not
        a stored series or holds no time. Given by the runner (steward/job_io.py)."""
        raise FactoryError(f"{self.label}: this runner cannot read series bounds")

    def read_table(self, path: str) -> pa.Table:
        """A table's latest version, or a series' versions together (schemas merged).
        Given by the runner (steward/job_io.py), which can compute derived nodes."""
        raise FactoryError(f"{self.label}: this runner cannot read tables")

    def write_series(self, path: str, table: pa.Table, time_column: str) -> None:
        """Stage `table` as one new version of the series at `path` (created with its parent
        directories if missing). One version per series per job."""
        self.txn.write_series(path, table, time_column=time_column, parents=True)

    def remove(self, path: str) -> None:
        """Remove a file's directory entry (its history stays in the data table)."""
        self.txn.staged.remove(path)

    def append_log(self, path: str, data: bytes, attrs: dict[str, Any]) -> None:
        """Add `data` as a new version of the appended log at `path` (storage/applog.py: a
        raw file read as its versions concatenated), created with its parents when
        missing; `attrs` are kept with the version."""
        from ..storage import logappend

        logappend.append(self.txn.staged, path, data, attrs)

    def latest_attributes(self, path: str) -> dict[str, Any] | None:
        """The extended attributes of a file's latest version (None: no such file)."""
        loc = self.txn.staged.lookup(path, follow=True)
        return None if loc is None else dict(loc.row.extended_attributes)

    def version_attributes(self, path: str) -> list[dict[str, Any]]:
        """The extended attributes of each version of a file, oldest first."""
        staged = self.txn.staged
        loc = staged.lookup(path, follow=True)
        if loc is None:
            return []
        return [dict(r.extended_attributes) for r in staged.fs.versions(loc.part_id, loc.node_id)]

    def redact(self, text: str) -> str:
        """`text` with every secret value this run resolved replaced by its reference;
        a factory calls it on raw output before trimming, so no fragment survives."""
        return self.secrets.redact(text)

    def job_started(self, pid: int, start_time: int | None) -> None:
        """A job's process was started (pid = its process group): recorded before it
        can do much, so that `recover` can make sure it is gone before a retry."""
        if self._on_job_started is not None:
            self._on_job_started(pid, start_time)

    def reader(self) -> PondReader:
        """A read view of the whole pond (SQL, control table) for jobs that need more than
        `read_bytes`; refused where the runner has none to give."""
        if self._reader is None:
            raise FactoryError(
                f"{self.label}: this job needs a read view of the pond, which its runner "
                "does not provide (run it through a Pond)"
            )
        return self._reader()

    def error_text(self, e: BaseException) -> str:
        """The one-line error the pond records for this job's failure, secrets redacted."""
        return " ".join(self.redact(str(e)).split()) or type(e).__name__


class PartialFailure(FactoryError):
    """Raised by a job when part of its work failed but what it staged is sound: the
    runner commits the staged writes, records this message with the write and fails the
    run with it (`pond run` exits non-zero). E.g. one HydroVu device out of three."""


class Factory:
    """A named recipe: `validate` a config, then `run` it as a job (kind EXECUTOR) or
    `build` a live node from it (kind DATA). Plugins subclass it and expose one module-level
    instance through the `duckpond.factories` entry points (see factories/registry.py)."""

    name: str = ""
    description: str = ""
    kind: str = EXECUTOR
    # Runs a host process: its `post_commit_started` row waits for the pid (job_started).
    spawns_process: bool = False
    # A data factory whose node also takes `pond run NODE ARGS` (its `run`).
    runs_commands: bool = False
    file_type: str = "file:data:dynamic"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """Check a config (env references unexpanded); raise FactoryError with the reason."""
        raise NotImplementedError

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        raise FactoryError(f"factory {self.name} cannot be run")

    def build(self, config: dict[str, Any], ctx: BuildContext) -> LiveNode:
        """A data factory's live node (factories/live.py) from a validated config."""
        raise FactoryError(f"factory {self.name} does not make a file or directory")


# How many nodes YAML aliases (`*name`) may add to a document once expanded. A config is a
# few dozen nodes; an "alias bomb" (each level repeating the previous one 10 times) reaches
# billions, and building it took gigabytes before any check could see it.
MAX_ALIAS_EXPANSION = 10_000
_MAX_YAML_ERROR = 300


def _expanded_size(root: yaml.Node, what: str) -> tuple[int, int]:
    """(distinct nodes, nodes after expanding every alias) of a composed document.

    Aliases compose to shared node objects, so the graph stays small however large its
    expansion is: sizes are memoized per node and the walk is iterative (no recursion limit).
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            continue
        if key in size:
            continue
        if key in on_path:
            raise FactoryError(f"{what} has a YAML alias that refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return len(size), size[id(root)]


def parse_config(raw: bytes | str, what: str = "config") -> dict[str, Any]:
    """Parse a YAML config mapping, refusing alias expansion beyond MAX_ALIAS_EXPANSION nodes
    before anything is built."""
    if not raw:
        return {}
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
        data: Any = None
        if node is not None:
            distinct, expanded = _expanded_size(node, what)
            if expanded - distinct > MAX_ALIAS_EXPANSION:
                raise FactoryError(
                    f"{what} uses YAML aliases that expand to more than "
                    f"{MAX_ALIAS_EXPANSION:,} extra nodes: refused"
                )
            data = loader.construct_document(node)
    except yaml.YAMLError as e:
        reason = clip(" ".join(str(e).split()), _MAX_YAML_ERROR)
        raise FactoryError(f"{what} is not valid YAML: {reason}") from None
    except RecursionError:
        raise FactoryError(f"{what} is nested too deeply") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FactoryError(f"{what} must be a YAML mapping, not {type(data).__name__}")
    return data


def expand_env(value: Any, secrets: Secrets | None = None) -> Any:
    """Expand `${env:NAME}` at run time; the stored config keeps the reference.

    `secrets` collects every value substituted, so that whatever the run prints or the
    pond records can have it replaced by its reference again."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise FactoryError(f"environment variable {name} is not set")
            if secrets is not None:
                secrets.add(name, os.environ[name])
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, secrets) for k, v in value.items()}
    return value


class Secrets:
    """The values `${env:NAME}` references resolved to in one run (SPEC §4, §8: never stored).

    `redact` puts the reference back in place of each value, also in the forms a message
    commonly carries it: whitespace-collapsed (one-line errors), repr- and JSON-escaped,
    and each line of a multi-line value. Values shorter than MIN_LEN characters (flags
    such as `1` or `yes`) are not treated as secret: replacing them would garble every
    message without protecting anything.

    `more` adds values when first needed (the first `redact` of non-empty text): the
    pond's other configs' references (steward/config_secrets.py), read only when a job
    says something. If it fails, nothing the job said is shown (`WITHHELD`)."""

    MIN_LEN = 4
    WITHHELD = "(job output withheld: the pond's configs could not be read to redact secrets)"

    def __init__(self, more: Callable[[Secrets], None] | None = None) -> None:
        self._forms: dict[str, str] = {}  # a form of a secret value -> its reference
        self._more = more
        self._withhold = False

    def add(self, name: str, value: str) -> None:
        ref = f"${{env:{name}}}"
        forms = {
            value,
            " ".join(value.split()),
            repr(value)[1:-1],
            json.dumps(value)[1:-1],
            *(line.strip() for line in value.splitlines()),
        }
        for form in forms:
            if len(form) >= self.MIN_LEN and not form.isspace():
                self._forms.setdefault(form, ref)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def _load_more(self) -> None:
        more, self._more = self._more, None
        if more is not None:
            try:
                more(self)
            except Exception:  # noqa: BLE001 - a job's output must never leak for it
                self._withhold = True

    def redact(self, text: str) -> str:
        if not text:
            return text
        self._load_more()
        if self._withhold:
            return self.WITHHELD
        # Longest first, so a value containing another is replaced whole.
        for form in sorted(self._forms, key=len, reverse=True):
            if form in text:
                text = text.replace(form, self._forms[form])
        return text


class Fields:
    """Small strict validator: known keys only, typed, with defaults."""

    def __init__(self, factory: str, config: dict[str, Any]) -> None:
        self.factory = factory
        self.config = config
        self.seen: set[str] = set()

    def get(
        self, key: str, typ: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        self.seen.add(key)
        if key not in self.config or self.config[key] is None:
            if required:
                raise FactoryError(f"{self.factory}: config needs '{key}'")
            return default
        value = self.config[key]
        # bool is an int in Python; refuse it where a number is wanted.
        if (isinstance(value, bool) and bool not in _types(typ)) or not isinstance(value, typ):
            raise FactoryError(f"{self.factory}: '{key}' must be {_type_name(typ)}, got {value!r}")
        return value

    def done(self) -> None:
        extra = sorted(set(self.config) - self.seen)
        if extra:
            raise FactoryError(f"{self.factory}: unknown config key(s): {', '.join(extra)}")


def _types(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
        float: "a number",
    }
    return " or ".join(names.get(t, t.__name__) for t in _types(typ))
