"""How the data table lays out a file's rows: a big directory's own rows first, in a row
group of their own, so that readers find them by the row groups' footer bounds without
reading the entries' rows."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from .parquetwrite import row_group_starts
from .pqread import ParquetFile

# A data file of more rows than this keeps its directory's own rows in a row group of
# their own when they are at most 1/OWN_GROUP_SHARE of it (see DataTable.key_groups): a
# bulk write or a compaction of a big directory. Smaller files are read whole at little
# cost, a second row group costs ~2 KB of footer, and a file whose rows are largely the
# directory's gains nothing from it.
OWN_GROUP_MIN_ROWS = 512
OWN_GROUP_SHARE = 8


def own_group(own: int, rows: int) -> int:
    """The size of the first row group of a file of `rows` rows whose first `own` are its
    directory's (0: no row group of their own)."""
    return own if rows > OWN_GROUP_MIN_ROWS and own * OWN_GROUP_SHARE <= rows else 0


def own_rows_first(table: pa.Table, part_id: str) -> tuple[pa.Table, int]:
    """A big file's rows with its directory's own rows first (their order kept) and the
    size of their row group (own_group); other files as they are, and 0."""
    if table.num_rows <= OWN_GROUP_MIN_ROWS:  # no row group of their own: no need to look
        return table, 0
    ids = table.column("node_id").to_pylist()
    own = [i for i, n in enumerate(ids) if n == part_id]
    first = own_group(len(own), len(ids))
    if not first:
        return table, 0
    mine = set(own)
    return table.take(own + [i for i in range(len(ids)) if i not in mine]), first


@dataclass
class RowGroups:
    """A data file's row groups as its footer has them: first rows, row counts, and the
    node_id bounds ("", "\U0010ffff" where the footer has none: anything may be there)."""

    starts: list[int]
    rows: list[int]
    bounds: list[tuple[str, str]]

    @classmethod
    def of(cls, pf: ParquetFile) -> RowGroups:
        md = pf.metadata
        col = pf.schema_arrow.get_field_index("node_id")
        rows, bounds = [], []
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            rows.append(group.num_rows)
            stats = group.column(col).statistics if col >= 0 else None
            if stats is not None and stats.has_min_max:
                bounds.append((str(stats.min), str(stats.max)))
            else:
                bounds.append(("", "\U0010ffff"))
        starts = row_group_starts(md)
        return cls(starts, rows or [0], bounds or [("", "\U0010ffff")])
