"""`timeseries-join` and `timeseries-pivot`: wide series from several inputs, joined on time."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .. import paths
from ..errors import FactoryError
from .base import DATA, Factory, Fields
from .live import (
    TIME_TYPE,
    BuildContext,
    DerivedFile,
    LiveFile,
    captures,
    digest,
    files_of,
    parse_time,
    pattern_path,
    sort_by_time,
    time_to_us,
    union_schema,
    window,
)


class Group:
    """One side of the join: members (a file and its own time range) unioned, their columns
    renamed `<prefix>.<column>`."""

    def __init__(self, prefix: str | None, columns: list[str] | None = None) -> None:
        self.prefix = prefix
        self.columns = columns
        self.members: list[tuple[LiveFile, int | None, int | None]] = []

    @property
    def files(self) -> list[LiveFile]:
        return [m[0] for m in self.members]

    def key(self) -> Any:
        return [self.prefix, self.columns, [(f.key(), b, e) for f, b, e in self.members]]

    def out_name(self, column: str) -> str:
        return f"{self.prefix}.{column}" if self.prefix else column

    def _names(self, time_column: str) -> tuple[list[str], pa.Schema]:
        schema = union_schema(self.files)
        if schema.get_field_index(time_column) < 0:
            names = ", ".join(f.path for f in self.files)
            raise FactoryError(f"time column '{time_column}' not found in {names}")
        cols = self.columns if self.columns is not None else schema.names
        return [c for c in cols if c != time_column], schema

    def value_fields(self, time_column: str) -> list[pa.Field]:
        names, schema = self._names(time_column)
        out = []
        for c in names:
            t = schema.field(c).type if schema.get_field_index(c) >= 0 else pa.float64()
            out.append(pa.field(self.out_name(c), t))
        return out

    def read(self, time_column: str, start: int | None, end: int | None) -> pa.Table:
        names, _ = self._names(time_column)
        fields = self.value_fields(time_column)
        out_schema = _schema(time_column, fields)
        pieces = []
        for f, begin, stop in self.members:
            lo, hi = _max(start, begin), _min(end, stop)
            if lo is not None and hi is not None and lo > hi:
                continue
            t = window(time_to_us(f.scan(lo, hi), time_column), time_column, lo, hi)
            cols = [t.column(time_column)]
            for name, field in zip(names, fields, strict=True):
                idx = t.schema.get_field_index(name)
                arr = t.column(idx) if idx >= 0 else pa.nulls(t.num_rows, field.type)
                cols.append(arr.cast(field.type))
            pieces.append(pa.Table.from_arrays(cols, schema=out_schema))
        return pa.concat_tables(pieces) if pieces else out_schema.empty_table()


def _schema(time_column: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema([pa.field(time_column, TIME_TYPE), *fields])


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class JoinedFile(DerivedFile):
    def __init__(
        self, ctx: BuildContext, factory: str, config: dict[str, Any], groups: list[Group]
    ) -> None:
        super().__init__(ctx, ctx.path, "file:series:dynamic", factory)
        self.config = config
        self.groups = groups
        self._tc: str | None = config.get("time_column")
        self._schema: pa.Schema | None = None

    @property
    def tc(self) -> str:
        """The configured time column, else the one every input remembers (a stored series
        keeps the column it was written with), else `timestamp`."""
        if self._tc is None:
            own = {f.path: f.time_column for g in self.groups for f in g.files}
            names = {n for n in own.values() if n is not None}
            if len(names) > 1:
                listed = ", ".join(f"{p}: {n}" for p, n in sorted(own.items()) if n)
                raise FactoryError(
                    f"{self.path}: the inputs have different time columns ({listed}); "
                    "name one with time_column"
                )
            self._tc = names.pop() if names else "timestamp"
        return self._tc

    @property
    def time_column(self) -> str:  # type: ignore[override]
        return self.tc

    def key(self) -> str:
        return digest(self.factory, self.config, [g.key() for g in self.groups])

    def schema(self) -> pa.Schema:
        if self._schema is None:
            fields: list[pa.Field] = []
            seen: dict[str, str] = {}
            for g in self.groups:
                for f in g.value_fields(self.tc):
                    if f.name in seen or f.name == self.tc:
                        raise FactoryError(
                            f"{self.path}: column '{f.name}' comes from more than one input "
                            "(give the inputs a scope)"
                        )
                    seen[f.name] = g.files[0].path
                    fields.append(f)
            self._schema = _schema(self.tc, fields)
        return self._schema

    def compute(self, start: int | None, end: int | None) -> pa.Table:
        schema = self.schema()
        tc = self.tc
        result: pa.Table | None = None
        for g in self.groups:
            side = g.read(tc, start, end)
            if result is None:
                result = side
            else:
                result = result.join(side, keys=tc, join_type="full outer", coalesce_keys=True)
        if result is None:
            return schema.empty_table()
        return sort_by_time(result.select(schema.names), tc).cast(schema)


class TimeseriesJoin(Factory):
    name = "timeseries-join"
    kind = DATA
    file_type = "file:series:dynamic"
    description = (
        "A full outer join on `time_column` (the inputs' own) of `inputs: [{pattern, scope, "
        "range: {begin, end}}]`: inputs with the same scope are unioned first, columns prefixed "
        "`<scope>.`, time coalesced and ordered; a pattern matching nothing is skipped."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            # None: the inputs' own (each stored series remembers its time column)
            "time_column": f.get("time_column", str),
            "inputs": f.get("inputs", list, required=True),
        }
        f.done()
        if not out["inputs"]:
            raise FactoryError(f"{self.name}: 'inputs' must list at least one")
        inputs = []
        for i in out["inputs"]:
            if not isinstance(i, dict):
                raise FactoryError(f"{self.name}: an input is {{pattern, scope, range}}")
            inf = Fields(f"{self.name} input", i)
            item = {
                "pattern": inf.get("pattern", str, required=True),
                "scope": inf.get("scope", str),
                "range": inf.get("range", dict, {}),
            }
            inf.done()
            pattern_path(item["pattern"])
            rf = Fields(f"{self.name} range", item["range"])
            begin, end = rf.get("begin", object), rf.get("end", object)
            rf.done()
            item["range"] = {
                "begin": None if begin is None else parse_time(begin, "range begin"),
                "end": None if end is None else parse_time(end, "range end"),
            }
            inputs.append(item)
        out["inputs"] = inputs
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> JoinedFile:
        groups: list[Group] = []
        by_scope: dict[str, Group] = {}
        for item in config["inputs"]:
            files = files_of(ctx.glob(pattern_path(item["pattern"])))
            if not files:
                continue  # an input that matches nothing is skipped (sensors come and go)
            scope = item["scope"]
            if scope is not None and scope in by_scope:
                group = by_scope[scope]
            else:
                group = Group(scope)
                groups.append(group)
                if scope is not None:
                    by_scope[scope] = group
            r = item["range"]
            group.members.extend((f, r["begin"], r["end"]) for f in files)
        return JoinedFile(ctx, self.name, config, groups)


class TimeseriesPivot(Factory):
    name = "timeseries-pivot"
    kind = DATA
    file_type = "file:series:dynamic"
    description = (
        "A wide series of `columns` from every series matching `pattern`, joined on "
        "`time_column`; each column is prefixed with the matched node's name (the part the "
        "pattern's wildcards matched, else its base name)."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "pattern": f.get("pattern", str, required=True),
            "columns": f.get("columns", list, required=True),
            "time_column": f.get("time_column", str),  # None: the inputs' own
        }
        f.done()
        pattern_path(out["pattern"])
        if not out["columns"] or not all(isinstance(c, str) for c in out["columns"]):
            raise FactoryError(f"{self.name}: 'columns' must list column names")
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> JoinedFile:
        pattern = pattern_path(config["pattern"])
        groups: list[Group] = []
        seen: dict[str, str] = {}
        for f in files_of(ctx.glob(pattern)):
            caps = [c for c in captures(pattern, f.path) if c]
            prefix = "/".join(caps) if caps else paths.basename(f.path)
            if prefix in seen:
                raise FactoryError(f"{ctx.path}: {seen[prefix]} and {f.path} are both '{prefix}'")
            seen[prefix] = f.path
            group = Group(prefix, columns=list(config["columns"]))
            group.members.append((f, None, None))
            groups.append(group)
        if not groups:
            raise FactoryError(f"{ctx.path}: pattern {config['pattern']} matches no series")
        return JoinedFile(ctx, self.name, config, groups)


JOIN = TimeseriesJoin()
PIVOT = TimeseriesPivot()
