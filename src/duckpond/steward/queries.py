"""SQL over the control table (`pond control --sql`): read-only, as `control_table`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from ..query import sql
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from ..pond import Pond


def control_sql(
    pond: Pond,
    query: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> pa.Table:
    ctx = sql.make_context(memory_limit)
    ctx.register_table("control_table", pond.control.refresh())
    return sql.run_sql(ctx, query, timeout)
