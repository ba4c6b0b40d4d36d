"""`temporal-reduce`: per matched series, one downsampled series per resolution."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .. import paths
from ..errors import FactoryError
from . import seal_store
from .base import DATA, Factory, Fields, RunContext
from .live import (
    BuildContext,
    DerivedFile,
    LiveDir,
    LiveFile,
    LiveNode,
    captures,
    digest,
    empty_like,
    files_of,
    input_pattern,
    parse_duration,
    pattern_path,
    substitute,
    time_to_us,
    window,
)
from .reduce_calendar import Resolution, zone
from .reduce_calendar import parse as parse_resolution
from .reduce_sealed import SealedReduction, aggregate, numeric_columns

AGGREGATIONS = ("avg", "min", "max", "sum", "count")
# part of every result key (seal_store.FORMAT for seals): bump when buckets change
# meaning ("1w" now starts on a Monday, not on the epoch's Thursday)
BUCKETS_FORMAT = "calendar-1"


class TemporalReduce(Factory):
    name = "temporal-reduce"
    kind = DATA
    runnable = True  # `pond run NODE rebuild`
    file_type = "dir:dynamic"
    description = (
        "A directory with one subdirectory per series matching `in_pattern` (named by "
        "`out_pattern`, $0 = first wildcard), each holding `res=<r>.series` per resolution: "
        "15m, 1h (aligned to the Unix epoch), 1d, 1w (ISO weeks from Monday), 1mo, 3mo, 1y "
        "(calendar; local days with `timezone: America/New_York`), columns `<column>.<agg>` "
        "for `aggregations: [{type: avg|min|max|sum|count, columns}]`; `time_column` defaults "
        "to the input series' own. Buckets older than `allowed_lateness` (1d) before the "
        "newest data are sealed; `pond run NODE rebuild`."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "in_pattern": f.get("in_pattern", str, required=True),
            "out_pattern": f.get("out_pattern", str, "$0"),
            # None: each input's own (a stored series remembers the column it was written with)
            "time_column": f.get("time_column", str),
            "timezone": f.get("timezone", str),
            "resolutions": f.get("resolutions", list, required=True),
            "aggregations": f.get("aggregations", list, required=True),
            "allowed_lateness": f.get("allowed_lateness", str, "1d"),
        }
        f.done()
        parse_duration(out["allowed_lateness"], f"{self.name}: allowed_lateness")
        pattern_path(out["in_pattern"])
        if not out["resolutions"]:
            raise FactoryError(f"{self.name}: 'resolutions' must list at least one")
        if out["timezone"] is not None:
            zone(out["timezone"], f"{self.name}: timezone")
        for r in out["resolutions"]:
            parse_resolution(r, out["timezone"], f"{self.name}: resolution")
        if len(set(out["resolutions"])) != len(out["resolutions"]):
            raise FactoryError(f"{self.name}: a resolution is listed twice")
        if not out["aggregations"]:
            raise FactoryError(f"{self.name}: 'aggregations' must list at least one")
        aggs = []
        for a in out["aggregations"]:
            if not isinstance(a, dict):
                raise FactoryError(f"{self.name}: an aggregation is {{type, columns}}")
            af = Fields(f"{self.name} aggregation", a)
            kind = af.get("type", str, required=True)
            cols = af.get("columns", list)
            af.done()
            if kind not in AGGREGATIONS:
                raise FactoryError(
                    f"{self.name}: unknown aggregation '{kind}' (use {', '.join(AGGREGATIONS)})"
                )
            if cols is not None and not all(isinstance(c, str) for c in cols):
                raise FactoryError(f"{self.name}: aggregation columns must be names")
            aggs.append({"type": kind, "columns": cols})
        out["aggregations"] = aggs
        if "/" in out["out_pattern"] or not out["out_pattern"]:
            raise FactoryError(f"{self.name}: 'out_pattern' must be one name (like $0)")
        return out

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        """`pond run NODE rebuild`: drop the node's sealed buckets (reduce_sealed.py)."""
        if ctx.args != ["rebuild"]:
            raise FactoryError(f"{self.name}: the only command is `rebuild`, not {ctx.args}")
        import shutil

        where = seal_store.namespace(ctx.root, self.validate(config))
        dropped = len(list(where.iterdir())) if where.is_dir() else 0
        shutil.rmtree(where, ignore_errors=True)
        ctx.output(f"rebuild: dropped the sealed buckets of {dropped} reduced series")

    def build(self, config: dict[str, Any], ctx: BuildContext) -> ReduceDir:
        pattern = pattern_path(config["in_pattern"])
        sites: dict[str, LiveFile] = {}
        for f in files_of(ctx.glob(input_pattern(config["in_pattern"]))):
            name = substitute(config["out_pattern"], captures(pattern, f.path))
            if not name or "/" in name:
                raise FactoryError(f"{ctx.path}: out_pattern gives {name!r} for {f.path}")
            if name in sites:
                raise FactoryError(
                    f"{ctx.path}: {sites[name].path} and {f.path} both map to '{name}'"
                )
            sites[name] = f
        return ReduceDir(ctx, config, sites)


class ReduceDir(LiveDir):
    def __init__(self, ctx: BuildContext, config: dict[str, Any], sites: dict[str, LiveFile]):
        self.ctx = ctx
        self.path = ctx.path
        self.config = config
        self.sites = sites
        self._made: dict[str, LiveNode] = {}

    def key(self) -> str:
        return digest(self.config, [(n, f.key()) for n, f in sorted(self.sites.items())])

    def names(self) -> list[str]:
        return sorted(self.sites)

    def child(self, name: str) -> LiveNode | None:
        if name not in self.sites:
            return None
        if name not in self._made:
            self._made[name] = SiteDir(self, name)
        return self._made[name]


class SiteDir(LiveDir):
    def __init__(self, parent: ReduceDir, name: str) -> None:
        self.parent = parent
        self.path = paths.join(parent.path, name)
        self.file_type = "dir:dynamic"
        self.factory = TemporalReduce.name
        self.version = getattr(parent, "version", 0)
        self.size = 0
        self.input = parent.sites[name]
        self._contexts: dict[tuple[int | None, int | None], Any] = {}
        self.files = {
            f"res={r}.series": ReduceFile(parent.ctx, self, r, parent.config)
            for r in parent.config["resolutions"]
        }

    def key(self) -> str:
        return digest(self.path, self.input.key())

    def context(self, lo: int | None, hi: int | None) -> Any:
        """One query context with the input registered, shared by the resolutions
        read over the same window (registering lists and plans the input's parts)."""
        from ..query import sql

        if (lo, hi) not in self._contexts:
            ctx = sql.make_context()
            self.input.register(ctx, ["source"], lo, hi)
            self._contexts[(lo, hi)] = ctx
        return self._contexts[(lo, hi)]

    def names(self) -> list[str]:
        return sorted(self.files)

    def child(self, name: str) -> LiveNode | None:
        return self.files.get(name)


class ReduceFile(DerivedFile):
    def __init__(
        self, ctx: BuildContext, site: SiteDir, resolution: str, config: dict[str, Any]
    ) -> None:
        super().__init__(
            ctx,
            paths.join(site.path, f"res={resolution}.series"),
            "file:series:dynamic",
            TemporalReduce.name,
        )
        self.version = site.version
        self.size = 0
        self.site = site
        self.input = site.input
        self.resolution = resolution
        self.res: Resolution = parse_resolution(resolution, config.get("timezone"), "resolution")
        self.bucket = self.res.width  # nominal for calendar units: how the site orders tiers
        self.config = config
        self._tc: str | None = config.get("time_column")
        self._schema: pa.Schema | None = None

    @property
    def tc(self) -> str:
        """The configured time column, else the input's own (looked up on first use: a
        derived input finds it from its schema)."""
        if self._tc is None:
            from ..query import ingest

            own = self.input.time_column or ingest.detect_time_column(self.input.schema())
            self._tc = own or "timestamp"
        return self._tc

    @property
    def time_column(self) -> str:  # type: ignore[override]
        return self.tc

    def key(self) -> str:
        return digest(self.factory, BUCKETS_FORMAT, self.config, self.resolution, self.input.key())

    def _query(self, schema: pa.Schema) -> str:
        tc = self.tc
        numeric = numeric_columns(schema, tc, self.path, self.input.path)
        selects = []
        for agg in self.config["aggregations"]:
            for c in agg["columns"] or numeric:
                if schema.get_field_index(c) < 0:
                    continue  # inputs may differ: a listed column reduces where it exists
                kind = agg["type"]
                selects.append(f"{kind}({_q(c)}) AS {_q(c + '.' + kind)}")
        if not selects:
            raise FactoryError(f"{self.path}: {self.input.path} has no numeric column to reduce")
        from ..query.sql import time_bucket_sql

        bin_expr = time_bucket_sql(self.bucket, tc, schema.field(tc).type)
        return (
            f"SELECT {bin_expr} AS {_q(tc)}, {', '.join(selects)} FROM source GROUP BY 1 ORDER BY 1"
        )

    def schema(self) -> pa.Schema:
        if self._schema is None and self.res.calendar:
            empty = empty_like(self.input.schema())
            self._schema = self._aggregate(empty).schema
        if self._schema is None:
            from ..query import relations, sql

            ctx = sql.make_context()
            relations.register_table_arrow(ctx, empty_like(self.input.schema()))
            table = sql.run_sql(ctx, self._query(self.input.schema()))
            self._schema = time_to_us(table, self.tc).schema
        return self._schema

    def compute(self, start: int | None, end: int | None) -> pa.Table:
        from ..query import sql

        sealed = self._sealed().compute()
        if sealed is not None:  # a stored series: through its sealed buckets
            return window(sealed, self.tc, start, end)

        # whole buckets: read from the start of the first one to the end of the last
        lo = None if start is None else self.res.floor(start)
        hi = None if end is None else self.res.next_start(self.res.floor(end)) - 1
        if self.res.calendar:  # bucketed as the sealed path does (reduce_calendar.py)
            table = self._aggregate(self.input.scan(lo, hi))
        else:
            table = sql.run_sql(self.site.context(lo, hi), self._query(self.input.schema()))
            table = time_to_us(table, self.tc)
        return window(table, self.tc, start, end)

    def _aggregate(self, table: pa.Table) -> pa.Table:
        return aggregate(
            table, self.tc, self.res, self.config["aggregations"], self.path, self.input.path
        )

    def _sealed(self) -> SealedReduction:
        where = seal_store.namespace(self.ctx.pond_root, self.config)
        name = digest(self.input.path, self.resolution)[:32]
        return SealedReduction(
            path=self.path,
            source=self.input,
            resolution=self.res,
            lateness=parse_duration(self.config["allowed_lateness"]),
            time_column=self.tc,
            aggregations=self.config["aggregations"],
            store=seal_store.SealStore(where / name),
        )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


FACTORY = TemporalReduce()
