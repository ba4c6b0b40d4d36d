"""A bounded on-disk cache of derived results, keyed by the inputs' versions.

A key is a digest of a node's config and every input's identity (node id and version), so
an entry can never be stale: new input versions make a new key. The cache is an optimisation
only: deleting `$POND/cache/` at any time changes no answer. Writing it is best effort (a
read-only pond directory just means no cache); the oldest-used entries go first when it
grows past its bound.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_MAX_BYTES = 256 << 20


class DerivedCache:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.parquet"

    def get(self, key: str) -> pa.Table | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._path(key)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException):
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used survives eviction
        self.hits += 1
        return table

    def put(self, key: str, table: pa.Table) -> None:
        import tempfile  # ~2 ms (shutil, random): not for the reads of a `pond` process

        import pyarrow as pa
        import pyarrow.parquet as pq

        if table.nbytes > self.max_bytes // 4:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".parquet")
            os.close(fd)
            try:
                pq.write_table(table, tmp, compression="lz4")
                os.replace(tmp, self._path(key))
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            self._evict()
        except (OSError, pa.ArrowException):
            return  # best effort: the answer was computed anyway

    def _evict(self) -> None:
        entries = []
        for p in self.root.glob("*.parquet"):
            with contextlib.suppress(OSError):
                st = p.stat()
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                total -= size

    def size(self) -> int:
        return (
            sum(p.stat().st_size for p in self.root.glob("*.parquet")) if self.root.exists() else 0
        )
