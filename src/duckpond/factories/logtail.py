"""The host side of `logfile-ingest`: where a log continues, and what rotation left behind.

Pure file logic, no pond: the factory (logfile_ingest.py) keeps the state this module
computes in the pond file's version attributes.

A *generation* is the content of one host file's lifetime: what the active file held from
its creation (or truncation) until it was rotated. The pond tracks the current one by its
length and two small hashes (its first and last few KiB), so checking that the active file
still continues it reads at most 2 x 4 KiB whatever its size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, cast

import blake3

from ..errors import FactoryError

EDGE = 4096  # bytes hashed at each end of a generation
_OPENERS: dict[str, Callable[[str], IO[bytes]]] = {
    ".gz": lambda p: cast(IO[bytes], gzip.open(p, "rb")),
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
    ".zst": lambda p: _zstd_open(p),  # logrotate with `compresscmd zstd`
}


def _zstd_open(path: str) -> IO[bytes]:
    import pyarrow as pa

    # pyarrow's zstd stream reads every frame of a multi-frame file; it cannot seek, so
    # a seek reads and drops (from the start again when going back), as gzip.open does
    def stream() -> Any:
        return pa.CompressedInputStream(pa.OSFile(path, "rb"), "zstd")

    return cast(IO[bytes], _ZstdReader(stream))


class _ZstdReader(io.RawIOBase):
    def __init__(self, reopen: Callable[[], Any]) -> None:
        self._reopen = reopen
        self._stream = reopen()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = bytes(self._stream.read() if size is None or size < 0 else self._stream.read(size))
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset < 0:
            raise OSError("a zstd archive seeks only to absolute positions")
        if offset < self._pos:
            self._stream.close()
            self._stream, self._pos = self._reopen(), 0
        while self._pos < offset and self.read(min(offset - self._pos, 1 << 20)):
            pass
        return self._pos

    def close(self) -> None:
        self._stream.close()
        super().close()
_NUMBER = re.compile(r"\d+")


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def complete_end(data: bytes) -> int:
    """The length of `data`'s complete lines: up to and with its last newline."""
    return data.rfind(b"\n") + 1


@dataclass(frozen=True)
class GenState:
    """What the pond knows of the generation it tracks: its length in the pond, the hashes
    of its first and last bytes, and the host file (device, inode) it was read from."""

    length: int
    head: str
    head_len: int
    tail: str
    tail_len: int
    dev: int | None
    ino: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "head": self.head,
            "head_len": self.head_len,
            "tail": self.tail,
            "tail_len": self.tail_len,
            "dev": self.dev,
            "ino": self.ino,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GenState:
        return cls(
            int(d["length"]),
            str(d["head"]),
            int(d["head_len"]),
            str(d["tail"]),
            int(d["tail_len"]),
            d.get("dev"),
            d.get("ino"),
        )

    @classmethod
    def of(
        cls, read: Callable[[int, int], bytes], length: int, dev: int | None, ino: int | None
    ) -> GenState:
        """The state of a generation of `length` bytes, `read(offset, n)` giving its bytes."""
        head_len, tail_len = min(length, EDGE), min(length, EDGE)
        head = digest(read(0, head_len))
        tail = digest(read(length - tail_len, tail_len))
        return cls(length, head, head_len, tail, tail_len, dev, ino)


EMPTY = GenState(0, digest(b""), 0, digest(b""), 0, None, None)


class HostLog:
    """An active host file, opened once: its size is taken at open, and every read goes
    to the same file even if it is renamed meanwhile."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        st = os.fstat(self._f.fileno())
        self.size = st.st_size
        self.dev, self.ino = st.st_dev, st.st_ino

    def close(self) -> None:
        self._f.close()

    def pread(self, offset: int, n: int) -> bytes:
        """Exactly bytes [offset, offset + n) (a file cut short meanwhile is an error: the
        run writes nothing, and the next one sees what happened)."""
        chunks, got = [], 0
        while got < n:
            b = os.pread(self._f.fileno(), n - got, offset + got)
            if not b:
                raise FactoryError(
                    f"{self.path} shrank while it was read (rotated or truncated during the "
                    "run); nothing was written: run again"
                )
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def continues(self, st: GenState) -> bool:
        """Whether this file still holds the tracked generation as its prefix."""
        if st.length == 0:  # nothing to compare: the same file, or a first one
            return st.ino is None or (st.dev, st.ino) == (self.dev, self.ino)
        if self.size < st.length:
            return False
        if digest(self.pread(0, st.head_len)) != st.head:
            return False
        return digest(self.pread(st.length - st.tail_len, st.tail_len)) == st.tail


@dataclass(frozen=True)
class Archive:
    """A rotated host file (immutable; maybe compressed)."""

    path: str
    mtime_ns: int
    dev: int
    ino: int

    def open(self) -> IO[bytes]:
        for suffix, opener in _OPENERS.items():
            if self.path.endswith(suffix):
                return opener(self.path)
        return open(self.path, "rb")

    def read_all(self) -> bytes:
        try:
            with self.open() as f:
                return f.read()
        except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
            raise FactoryError(f"cannot read archive {self.path}: {e}") from None

    def rest_after(self, st: GenState) -> bytes | None:
        """The bytes after the generation `st` when this archive holds it (b"" when it
        holds no more); None when it holds another. Reads the first few KiB of an archive
        that holds another; reading the whole one happens once, at the rotation."""
        if st.length == 0:
            same = st.ino is not None and (st.dev, st.ino) == (self.dev, self.ino)
            return self.read_all() if same else None
        try:
            with self.open() as f:
                if digest(_read_exact(f, st.head_len)) != st.head:
                    return None
                f.seek(st.length - st.tail_len)
                tail = _read_exact(f, st.tail_len)
                if len(tail) < st.tail_len:
                    # Shorter than what the pond holds, with the same first KiB: copied
                    # (copytruncate) before the last run read the rest. Nothing missed.
                    return b"" if st.head_len == EDGE else None
                if digest(tail) != st.tail:
                    return None
                return f.read()
        except (OSError, EOFError, lzma.LZMAError):
            return None  # not readable as what its name says: not the generation


def _read_exact(f: IO[bytes], n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def archives_of(active_name: str, candidates: list[str]) -> list[Archive]:
    """The archives of the active file named `active_name` (their names start with it:
    `app.log.1`, `app.log.2.gz`, `app.log-20250101`), oldest first."""
    out = []
    for path in candidates:
        name = os.path.basename(path)
        if name == active_name or not name.startswith(active_name):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue  # rotated away meanwhile
        out.append(Archive(path, st.st_mtime_ns, st.st_dev, st.st_ino))
    return sorted(out, key=lambda a: _age_key(a, active_name))


def _age_key(a: Archive, active_name: str) -> tuple[int, int, str]:
    """Oldest first: by modification time (renaming and gzip keep it); on a tie, a higher
    rotation number is older (`app.log.2` before `app.log.1`, as logrotate numbers)."""
    m = _NUMBER.search(os.path.basename(a.path)[len(active_name) :])
    return (a.mtime_ns, -int(m.group()) if m else 0, a.path)
