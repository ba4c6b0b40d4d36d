"""What a factory is, and what it may touch when it runs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from ..errors import FactoryError, clip

if TYPE_CHECKING:
    import pyarrow as pa

EXECUTOR = "executor"
DATA = "data"  # makes a dynamic file or directory, computed on read (factories/live.py)

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class RunContext(Protocol):
    """What a running factory may do: read the pond, write in its own transaction, log."""

    pond_path: str
    # The attempt's identity as the control table records it (None for `pond run`). The
    # job's own txn_seq is not known before its writes commit: no job is told one.
    parent_txn_seq: int | None
    execution_seq: int | None
    attempt: int | None
    args: list[str]
    vars: dict[str, str]

    def read_bytes(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def write_bytes(self, path: str, data: bytes) -> None: ...

    def log(self, message: str) -> None: ...

    def warn(self, message: str) -> None:
        """Say something went wrong without failing the job (printed as `warning: ...`)."""
        ...

    def list_dir(self, path: str) -> list[str] | None:
        """The entry names of a directory, sorted; None when it is not one."""
        ...

    def series_max_time(self, path: str) -> int | None:
        """The newest event time (µs since epoch UTC) over every version of a stored
        series, from each version's recorded bounds (no data read); None when `path` is not
        a stored series or holds no time."""
        ...

    def read_table(self, path: str) -> pa.Table:
        """A table's latest version, or a series' versions together (schemas merged)."""
        ...

    def write_series(self, path: str, table: pa.Table, time_column: str) -> None:
        """Stage `table` as one new version of the series at `path` (created with its parent
        directories if missing). One version per series per job."""
        ...

    def remove(self, path: str) -> None:
        """Remove a file's directory entry (its history stays in the data table)."""
        ...

    def redact(self, text: str) -> str:
        """`text` with every secret value this run resolved replaced by its reference;
        a factory calls it on raw output before trimming, so no fragment survives."""
        ...

    def job_started(self, pid: int, start_time: int | None) -> None:
        """A job's process was started (pid = its process group): recorded before it
        can do much, so that `recover` can make sure it is gone before a retry."""
        ...


class PartialFailure(FactoryError):
    """Raised by a job when part of its work failed but what it staged is sound: the
    runner commits the staged writes, records this message with the write and fails the
    run with it (`pond run` exits non-zero). E.g. one HydroVu device out of three."""


class Factory:
    name: str = ""
    description: str = ""
    kind: str = EXECUTOR
    # Runs a host process: its `post_commit_started` row waits for the pid (job_started).
    spawns_process: bool = False
    file_type: str = "file:data:dynamic"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """Check a config (env references unexpanded); raise FactoryError with the reason."""
        raise NotImplementedError

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        raise FactoryError(f"factory {self.name} cannot be run")

    def build(self, config: dict[str, Any], ctx: Any) -> Any:
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
