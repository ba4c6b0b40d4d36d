"""Query results as a stream of record batches (`Pond.read_batches`, `pond cat` to a file or
pipe): a result of any size is written in bounded memory, batch by batch as the engine
computes it, where `Pond.read` holds it whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..query.limits import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from ..query.sources import TimeLike
from ..steward.handles import PondHandles

if TYPE_CHECKING:
    import pyarrow as pa

    from ..query.pondview import SourcePond
    from ..query.rows import Rows


class StreamMethods(PondHandles):
    def read_batches(
        self,
        url: str,
        sql: str | None = None,
        version: int | None = None,
        time_range: tuple[TimeLike, TimeLike] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> Iterator[pa.RecordBatch]:
        """What `read` returns, as record batches computed as they are read (the same
        arguments). The query ends when the iterator is exhausted or closed; its timeout
        counts from the call, including the time the caller spends between batches."""
        return stream_source(
            url,
            self,  # type: ignore[arg-type]  # a Pond: StreamMethods is one of its bases
            sql=sql,
            version=version,
            time_range=time_range,
            timeout=timeout,
            memory_limit=memory_limit,
        )

    def read_for_output(
        self,
        url: str,
        sql: str | None = None,
        version: int | None = None,
        time_range: tuple[TimeLike, TimeLike] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> Rows | Iterator[pa.RecordBatch]:
        """`read_batches` for a writer of CSV, JSON or a table (`pond cat`): a small result
        of plain types comes back whole as Python rows (`query.rows.Rows`, written by the
        functions of `query.rows`), computed without pyarrow; any other as record batches."""
        from ..dynamic import reads
        from ..query import sources

        pond: SourcePond = self  # type: ignore[assignment]  # a Pond: one of its bases
        return sources.read_for_output(
            url, pond, reads, sql, version, time_range, timeout, memory_limit
        )


def stream_source(
    url: str,
    pond: SourcePond | None,
    sql: str | None = None,
    version: int | None = None,
    time_range: tuple[TimeLike, TimeLike] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
) -> Iterator[pa.RecordBatch]:
    """`Pond.read_batches`, also without a pond for host URLs (`pond cat host+csv:///x.csv`)."""
    from ..query import sources

    derived = None
    if pond is not None:
        from ..dynamic import reads

        derived = reads
    return sources.stream_source(
        url, pond, derived, sql, version, time_range, timeout, memory_limit
    )
