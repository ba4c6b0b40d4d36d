"""`sql-derived-table` / `sql-derived-series`: a read-only SQL query over named inputs."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from ..errors import FactoryError, FormatError
from .base import DATA, Factory, Fields
from .live import (
    BuildContext,
    DerivedFile,
    LiveFile,
    digest,
    empty_like,
    files_of,
    input_pattern,
    pattern_path,
    register_union,
    union_schema,
    window,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SqlDerived(Factory):
    kind = DATA

    def __init__(self, series: bool) -> None:
        self.series = series
        self.name = "sql-derived-series" if series else "sql-derived-table"
        self.file_type = "file:series:dynamic" if series else "file:table:dynamic"
        what = (
            "a series (union of versions; a time window reaches the inputs)"
            if series
            else "a table"
        )
        self.description = (
            f"Read-only SQL `query` over `patterns: {{name: glob}}` as {what}; a glob "
            "matching several files is their union (superset schema, missing columns NULL)."
        )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "patterns": f.get("patterns", dict, required=True),
            "query": f.get("query", str, required=True),
            "time_column": f.get("time_column", str) if self.series else None,
        }
        f.done()
        if not out["patterns"]:
            raise FactoryError(f"{self.name}: 'patterns' must name at least one input")
        for name, pat in out["patterns"].items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise FactoryError(f"{self.name}: pattern name {name!r} is not a SQL identifier")
            if not isinstance(pat, str):
                raise FactoryError(f"{self.name}: pattern '{name}' must be a string")
            pattern_path(pat)
        if not out["query"].strip():
            raise FactoryError(f"{self.name}: 'query' is empty")
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> SqlFile:
        inputs: dict[str, list[LiveFile]] = {}
        for name, pat in config["patterns"].items():
            files = files_of(ctx.glob(input_pattern(pat)))
            if not files:
                raise FactoryError(f"{ctx.path}: input '{name}' ({pat}) matches no table or series")
            inputs[name] = files
        return SqlFile(ctx, self, config, inputs)


class SqlFile(DerivedFile):
    def __init__(
        self,
        ctx: BuildContext,
        fac: SqlDerived,
        config: dict[str, Any],
        inputs: dict[str, list[LiveFile]],
    ) -> None:
        super().__init__(ctx, ctx.path, fac.file_type, fac.name)
        self.series = fac.series
        self.config = config
        self.inputs = inputs
        self._schema: pa.Schema | None = None
        self._time_column: str | None = config["time_column"]

    @property
    def time_column(self) -> str | None:  # type: ignore[override]
        if self.series and self._time_column is None:
            self._time_column = self._detect_time_column(self.schema())
        return self._time_column

    def _detect_time_column(self, schema: pa.Schema) -> str | None:
        """The first input's remembered time column that the query passes through into
        `schema` (the output's), else one detected there."""
        from ..query import ingest

        remembered = [f.time_column for fs in self.inputs.values() for f in fs]
        for name in remembered:
            if name is not None and schema.get_field_index(name) >= 0:
                try:
                    return ingest.detect_time_column(schema, name)
                except FormatError:
                    continue  # renamed or recast by the query: not a time there
        return ingest.detect_time_column(schema)

    def key(self) -> str:
        ins = {n: [(f.path, f.key()) for f in fs] for n, fs in self.inputs.items()}
        return digest(self.factory, self.config, ins)

    def _run(self, register: Any) -> pa.Table:
        from ..query import sql

        ctx = sql.make_context()
        for name, files in self.inputs.items():
            register(ctx, name, files)
        return sql.run_sql(ctx, self.config["query"])

    def schema(self) -> pa.Schema:
        if self._schema is None:
            from ..query import relations

            def empty(ctx: Any, name: str, files: list[LiveFile]) -> None:
                relations.register_table_arrow(ctx, empty_like(union_schema(files)), names=[name])

            self._schema = self._run(empty).schema
        return self._schema

    def compute(self, start: int | None, end: int | None) -> pa.Table:
        if not self.series:
            start = end = None
        table = self._run(lambda ctx, name, files: register_union(ctx, name, files, start, end))
        if self.series and (start is not None or end is not None):
            if self._time_column is None:
                # from the result in hand: `schema()` would open every input's versions
                # (a windowed read then cost a full one: bench 15c)
                self._time_column = self._detect_time_column(table.schema)
            column = self._time_column
            if column and table.schema.get_field_index(column) >= 0:
                table = window(table, column, start, end)
        return table


TABLE = SqlDerived(series=False)
SERIES = SqlDerived(series=True)
