"""The write-transaction API a caller (CLI, library user, factory) works with.

It turns user-level operations (write a table from Arrow, ingest a CSV, create a factory
node) into staged node rows. Nothing is visible to anyone until the steward commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from . import nodes, paths
from .errors import FormatError, InvalidPathError, NotFoundError
from .query import ingest
from .storage.staging import StagedTxn


def _as_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__") and not hasattr(data, "to_parquet"):
        return pa.table(data)
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:
        pass
    raise FormatError(f"cannot store {type(data).__name__} as a table: give Arrow or pandas data")


class WriteTxn:
    """One write transaction. Use through `Pond.transaction()`; all or nothing."""

    def __init__(self, staged: StagedTxn, info: dict[str, Any]) -> None:
        self._staged = staged
        self.info = info
        # A job's part that failed while the rest commits (factories.base.PartialFailure):
        # recorded on the write's `completed` row.
        self.partial_failure: str | None = None

    @property
    def staged(self) -> StagedTxn:
        """The staging area under this transaction (for the steward and factories)."""
        return self._staged

    @property
    def txn_seq(self) -> int:
        return self._staged.txn_seq

    @property
    def changed(self) -> bool:
        return self._staged.changed

    # -- reads (see this transaction's own changes) -------------------------------------
    def exists(self, path: str) -> bool:
        return self._staged.exists(path)

    def read_bytes(self, path: str) -> bytes:
        return self._staged.read_bytes(path)

    # -- writes -------------------------------------------------------------------------
    def create_root(self) -> None:
        """The root directory: the first write of `Pond.create`."""
        self._staged.create_root()

    def mkdir(self, path: str, parents: bool = False) -> None:
        self._staged.mkdir(path, parents=parents)

    def write_bytes(self, path: str, data: bytes, parents: bool = False) -> None:
        self._staged.write(path, nodes.FILE_DATA, bytes(data), parents=parents)

    def write_host_file(
        self,
        path: str,
        host_path: str | Path,
        parents: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Copy a host file as raw bytes, streaming large ones straight to the blob store.

        `progress(n)` is called with each chunk's size (a CLI shows a bar with it)."""
        src = Path(host_path)
        size = _host_size(src)
        if size < nodes.LARGE_CONTENT_THRESHOLD:
            self.write_bytes(path, src.read_bytes(), parents=parents)
            if progress:
                progress(size)
            return
        self._check_target(path, nodes.FILE_DATA, parents)
        with open(src, "rb") as f:
            blob = self._staged.fs.blobs.put_chunks(_chunks(f, progress))
        self._staged.write(path, nodes.FILE_DATA, blob=blob, parents=parents)

    def write_table(
        self,
        path: str,
        data: Any,
        *,
        series: bool = False,
        time_column: str | None = None,
        parents: bool = False,
    ) -> None:
        """Store Arrow/pandas data as a table version (or a series version when `series`)."""
        table = _as_arrow(data)
        ftype = nodes.FILE_SERIES if series else nodes.FILE_TABLE
        self._check_target(path, ftype, parents)
        lo = hi = None
        attrs: dict[str, Any] = {}
        ingest.check_column_names(table.schema, path)
        if series:
            col = ingest.require_time_column(table.schema, time_column, path)
            lo, hi = ingest.event_time_range(table, col)
            attrs["time_column"] = col
        content = ingest.table_to_parquet_bytes(table)
        self._staged.write(
            path,
            ftype,
            content,
            min_event_time=lo,
            max_event_time=hi,
            attrs=attrs,
            parents=parents,
        )

    def write_series(
        self, path: str, data: Any, *, time_column: str | None = None, parents: bool = False
    ) -> None:
        self.write_table(path, data, series=True, time_column=time_column, parents=parents)

    def write_parquet_file(
        self,
        path: str,
        host_path: str | Path,
        *,
        series: bool = False,
        time_column: str | None = None,
        parents: bool = False,
        compression: str | None = None,
    ) -> None:
        """Store a host Parquet file as a table/series version without loading it whole.

        `compression` (gzip/zstd): the file is compressed Parquet; it is undone on the way in."""
        src = Path(host_path)
        _host_size(src)
        if compression:
            tmp = self._staged.fs.blobs.temp_path()
            try:
                _decompress_file(src, tmp, compression)
                if _file_head(tmp) != b"PAR1":
                    raise FormatError(f"not a Parquet file: {src} (after {compression} decoding)")
                self.write_parquet_file(
                    path, tmp, series=series, time_column=time_column, parents=parents
                )
            except FormatError as e:  # name the user's file, not the temp copy
                raise FormatError(str(e).replace(str(tmp), str(src))) from None
            finally:
                tmp.unlink(missing_ok=True)
            return
        try:
            schema = pq.read_schema(src)
        except (pa.ArrowInvalid, OSError) as e:
            raise FormatError(f"not a Parquet file: {src} ({_one_line(e)})") from None
        ingest.check_column_names(schema, str(src))
        ftype = nodes.FILE_SERIES if series else nodes.FILE_TABLE
        self._check_target(path, ftype, parents)
        lo, hi, attrs = _event_span(series, schema, src, src, time_column)
        self._stage_file_content(path, ftype, src, lo, hi, attrs, parents)

    def write_csv_file(
        self,
        path: str,
        host_path: str | Path,
        *,
        series: bool = False,
        time_column: str | None = None,
        compression: str | None = None,
        parents: bool = False,
        time_format: str | None = None,
    ) -> None:
        """Convert a host CSV to Parquet on the way in (streamed) and store it; `time_format`
        (strptime syntax) reads times that are not ISO 8601."""
        src = Path(host_path)
        _host_size(src)
        ftype = nodes.FILE_SERIES if series else nodes.FILE_TABLE
        self._check_target(path, ftype, parents)
        blobs = self._staged.fs.blobs
        tmp = blobs.temp_path()
        try:
            schema = ingest.csv_to_parquet_file(
                src,
                tmp,
                compression=compression,
                time_format=time_format,
                time_column=time_column if series else None,
            )
            lo, hi, attrs = _event_span(series, schema, tmp, src, time_column)
            self._stage_file_content(path, ftype, tmp, lo, hi, attrs, parents, adopt=True)
        finally:
            tmp.unlink(missing_ok=True)

    def _stage_file_content(
        self,
        path: str,
        ftype: str,
        src: Path,
        lo: int | None,
        hi: int | None,
        attrs: dict[str, Any],
        parents: bool,
        adopt: bool = False,
    ) -> None:
        size = src.stat().st_size
        if size < nodes.LARGE_CONTENT_THRESHOLD:
            self._staged.write(
                path,
                ftype,
                src.read_bytes(),
                min_event_time=lo,
                max_event_time=hi,
                attrs=attrs,
                parents=parents,
            )
            return
        blobs = self._staged.fs.blobs
        if adopt:
            blob = blobs.adopt_file(src)
        else:
            with open(src, "rb") as f:
                blob = blobs.put_chunks(iter(lambda: f.read(1 << 20), b""))
        self._staged.write(
            path,
            ftype,
            blob=blob,
            min_event_time=lo,
            max_event_time=hi,
            attrs=attrs,
            parents=parents,
        )

    def mknod(
        self, path: str, factory: str, file_type: str, config: bytes, overwrite: bool = False
    ) -> None:
        found = self._staged.lookup(path)
        if found is not None and not overwrite:
            raise InvalidPathError(f"{paths.normalize(path)} exists (use --overwrite)")
        if (
            found is not None
            and nodes.is_dir(found.file_type)
            and found.file_type != nodes.DIR_DYNAMIC
        ):
            raise InvalidPathError(f"cannot replace a directory: {paths.normalize(path)}")
        self._staged.write(
            path, file_type, config, factory=factory, overwrite_type=True, parents=True
        )

    def symlink(self, path: str, target: str) -> None:
        self._staged.symlink(path, target)

    def _check_target(self, path: str, ftype: str, parents: bool) -> None:
        """Fail before expensive work (a big CSV conversion) when the target is wrong."""
        path = paths.normalize(path)
        found = self._staged.lookup(path)
        if found is not None:
            if nodes.is_dir(found.file_type):
                raise InvalidPathError(f"cannot write over a directory: {path}")
            if found.file_type != ftype and nodes.is_dynamic(found.file_type):
                raise InvalidPathError(f"{path} is derived ({found.file_type}): not writable")
            if found.file_type != ftype:
                raise InvalidPathError(
                    f"{path} is a {found.file_type}; cannot write a {ftype} there"
                )
            return
        paths.check_new_name(paths.basename(path))  # before a costly conversion, too
        parent = self._staged.lookup(paths.parent(path), follow=True)
        if parent is None and not parents:
            raise NotFoundError(f"no such directory: {paths.parent(path)}")
        if parent is not None and not nodes.is_dir(parent.file_type):
            raise InvalidPathError(f"not a directory: {paths.parent(path)}")


def _event_span(
    series: bool, schema: pa.Schema, parquet: Path, src: Path, time_column: str | None
) -> tuple[int | None, int | None, dict[str, Any]]:
    """A series version's event-time range and attributes (nothing for a table)."""
    if not series:
        return None, None, {}
    col = ingest.require_time_column(schema, time_column, str(src))
    lo, hi = ingest.event_time_range_parquet(parquet, col)
    return lo, hi, {"time_column": col}


def _chunks(f: BinaryIO, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    while chunk := f.read(1 << 20):
        if progress:
            progress(len(chunk))
        yield chunk


def _decompress_file(src: Path, dest: Path, compression: str) -> None:
    try:
        with pa.CompressedInputStream(pa.OSFile(str(src)), compression) as f:
            with open(dest, "wb") as out:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise FormatError(f"cannot decompress {src} as {compression}: {_one_line(e)}") from None


def _file_head(path: Path, n: int = 4) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _host_size(src: Path) -> int:
    try:
        st = src.stat()
    except FileNotFoundError:
        raise NotFoundError(f"no such host file: {src}") from None
    if not src.is_file():
        raise InvalidPathError(f"not a regular host file: {src}")
    return st.st_size


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
