"""SQL over the control table (`pond control --sql`): read-only, as `control_table`."""

from __future__ import annotations

import pyarrow as pa

from ..query import sql
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from .control import ControlTable


def control_sql(
    control: ControlTable,
    query: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> pa.Table:
    ctx = sql.make_context(memory_limit)
    ctx.register_table("control_table", control.refresh())
    return sql.run_sql(ctx, query, timeout)
