"""Content-addressed store for large contents, kept outside both Delta tables.

Blobs live in `$POND/blobs/<aa>/<sha256>` so that Delta maintenance (vacuum) can never
delete them. A blob is written to a temp file, fsynced, renamed into place and its directory
fsynced before the data commit that references it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from .durability import fsync_dir

CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._install(digest, [data])
        return digest

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream chunks into the store; returns (sha256, size)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            self._move_into_place(tmp, digest)
            return digest, size
        finally:
            tmp.unlink(missing_ok=True)

    def adopt_file(self, tmp: Path) -> tuple[str, int]:
        """Hash a finished temp file written inside the store and move it into place."""
        h = hashlib.sha256()
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
