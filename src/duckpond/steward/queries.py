"""SQL over the control table (`pond control --sql`): read-only, as `control_table`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from ..query import sql

if TYPE_CHECKING:
    from ..pond import Pond


def control_sql(pond: Pond, query: str) -> pa.Table:
    ctx = sql.make_context()
    ctx.register_table("control_table", pond.control.refresh())
    return sql.run_sql(ctx, query)
