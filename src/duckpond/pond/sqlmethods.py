"""`Pond.sql`, `Pond.sql_batches` and `Pond.sql_tables`: read-only SQL across pond files
(`pond sql`), each quoted pond path, glob or format URL in the query a table
(query/multisql.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import nodes
from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from ..query.sources import TimeLike, to_us
from ..results import EntryInfo
from ..steward.handles import PondHandles

if TYPE_CHECKING:
    import pyarrow as pa

    from ..query.pondview import DerivedReads, SourcePond


def _derived() -> DerivedReads:
    from ..dynamic import reads

    return reads


class SqlMethods(PondHandles):
    def _as_source(self) -> SourcePond:
        return self  # type: ignore[return-value]  # a Pond: SqlMethods is one of its bases

    def sql(
        self,
        query: str = "SELECT * FROM source",
        path: str | None = None,
        version: int | None = None,
        time_start: TimeLike = None,
        time_end: TimeLike = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        interruptible: bool = False,
    ) -> pa.Table:
        """Run one read-only SQL query, within `timeout` seconds and `memory_limit` bytes
        (None: unbounded; see query/limits.py). Each quoted pond path in it is a table
        (`FROM '/weather/EWR' AS e JOIN '/weather/JFK' AS j USING (time_hour)`), a glob the
        union of the files it matches with a `filename` column (`FROM '/weather/*'`), a
        format URL the file read in that format (`FROM 'csv:///data/x.csv'`); `path`, when
        given, is also the table `source` (alias `series`), at `version`. `time_start` and
        `time_end` (µs, ISO 8601 or datetime; inclusive) limit every series read.
        `interruptible`: a Ctrl-C (SIGINT) stops the query at once, for a program whose
        main thread runs it (it sets the process's signal wakeup fd while the query runs;
        query/sigint.py)."""
        from ..query.multisql import run_query

        return run_query(
            query,
            self._as_source(),
            _derived(),
            path,
            version,
            to_us(time_start),
            to_us(time_end),
            timeout,
            memory_limit,
            interruptible,
        )

    def sql_batches(
        self,
        query: str,
        path: str | None = None,
        version: int | None = None,
        time_start: TimeLike = None,
        time_end: TimeLike = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        interruptible: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """What `sql` returns, as record batches computed as they are read (as
        `read_batches`): the query ends when the iterator is exhausted or closed."""
        from ..query.multisql import stream_query

        return stream_query(
            query,
            self._as_source(),
            _derived(),
            path,
            version,
            to_us(time_start),
            to_us(time_end),
            timeout,
            memory_limit,
            interruptible,
        )

    def sql_tables(self, pattern: str = "/**/*") -> list[EntryInfo]:
        """The tables and series matching `pattern` (stored or derived): what `sql` can
        read as `FROM '/path'`."""
        pond = self._as_source()
        return [
            EntryInfo(e.path, e.type, getattr(e, "version", 0), getattr(e, "size", 0))
            for e in pond.list(pattern)
            if nodes.is_table(e.type) or nodes.is_series(e.type)
        ]
