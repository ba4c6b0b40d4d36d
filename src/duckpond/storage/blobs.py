"""Content-addressed store for large contents, kept outside both Delta tables.

Blobs live in `$POND/blobs/<aa>/<sha256>` so that Delta maintenance (vacuum) can never
delete them. A blob is written to a temp file, fsynced, renamed into place and its directory
fsynced before the data commit that references it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..crashpoints import crash_point
from .durability import fsync_dir, unlink_if_older

if TYPE_CHECKING:
    import hashlib

CHUNK = 1 << 20


def _sha256(data: bytes = b"") -> hashlib._Hash:
    """hashlib's sha256, imported on first use: loading OpenSSL's bindings is ~1-2 ms of
    every `pond` process, and reads never hash."""
    import hashlib

    return hashlib.sha256(data)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def put_bytes(self, data: bytes) -> str:
        digest = _sha256(data).hexdigest()
        if self.exists(digest):
            _touch(self.path_for(digest))
        else:
            self._install(digest, [data])
        return digest

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream chunks into the store; returns (sha256, size)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        h = _sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                    if size == len(chunk):
                        crash_point("blob_streaming")  # its first chunk is written
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            crash_point("blob_before_place")
            self._move_into_place(tmp, digest)
            crash_point("blob_placed")
            return digest, size
        finally:
            tmp.unlink(missing_ok=True)

    def adopt_file(self, tmp: Path) -> tuple[str, int]:
        """Hash a finished temp file written inside the store and move it into place."""
        h = _sha256()
        size = 0
        with open(tmp, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
            os.fsync(f.fileno())
        digest = h.hexdigest()
        try:
            self._move_into_place(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return digest, size

    def temp_path(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"

    def _install(self, digest: str, chunks: list[bytes]) -> None:
        got, _ = self.put_chunks(chunks)
        assert got == digest

    def _move_into_place(self, tmp: Path, digest: str) -> None:
        dest = self.path_for(digest)
        if dest.exists():
            _touch(dest)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        fsync_dir(self.root)

    def read(self, digest: str) -> bytes:
        try:
            return self.path_for(digest).read_bytes()
        except FileNotFoundError:
            from ..errors import PondError

            raise PondError(f"blob {digest} is missing; run `pond fsck`") from None

    def collect_garbage(self, referenced: set[str], retention_s: float) -> tuple[int, int]:
        """Remove blobs no row references and temp files a crash left, both only once
        older than the retention window; returns (blobs, temp files) removed.

        The caller holds the write lock and passes every content hash of every version in
        the data table: a blob written by a transaction that rolled back or crashed is
        referenced by none. Re-using a stored blob refreshes its mtime (see `_touch`), so
        a young reference is never older than the window. Idempotent, crash-safe."""
        if not self.root.is_dir():
            return 0, 0
        cutoff = time.time() - retention_s
        blobs = temps = 0
        for entry in os.scandir(self.root):
            if entry.name.startswith(".tmp-"):
                temps += unlink_if_older(entry.path, cutoff)
            elif entry.is_dir() and len(entry.name) == 2:
                for blob in os.scandir(entry.path):
                    if blob.name.startswith(".tmp-"):
                        temps += unlink_if_older(blob.path, cutoff)
                    elif blob.name not in referenced:
                        blobs += unlink_if_older(blob.path, cutoff)
        return blobs, temps


def _touch(path: Path) -> None:
    """A blob gaining a new reference is young again for garbage collection."""
    try:
        os.utime(path)
    except FileNotFoundError:
        pass
