"""SQL over the control table (`pond control --sql`): read-only, as `control_table`."""

from __future__ import annotations

import pyarrow as pa

from ..query import relations, sql
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from .control import ControlTable


def control_sql(
    control: ControlTable,
    query: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> pa.Table:
    ctx = sql.make_context(memory_limit)
    # its live Parquet files as Arrow (every column, older files' missing ones as null), in
    # recorded order; the engine never opens the Delta table itself
    try:
        relations.register_table_arrow(ctx, control.read_all(), names=("control_table",))
        return sql.run_sql(ctx, query, timeout)
    finally:
        ctx.close()
