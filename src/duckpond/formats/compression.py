"""Undoing gzip, zstd and bzip2 before a format reader sees the bytes.

Decompression is bounded: a small compressed file that expands beyond `MAX_EXPANDED` bytes is
refused (a decompression bomb must not take the machine's memory), and a corrupt or truncated
stream is a one-line error naming the file.
"""

from __future__ import annotations

import bz2
import zlib

from ..errors import FormatError
from . import COMPRESSIONS

MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "bzip2": b"BZh"}
# What one file may expand to: beyond this it is refused rather than held in memory.
MAX_EXPANDED = 8 << 30
_CHUNK = 1 << 20


def sniff(head: bytes) -> str | None:
    """The compression whose magic `head` starts with, if any."""
    for codec, magic in MAGIC.items():
        if head.startswith(magic):
            return codec
    return None


def check(head: bytes, compression: str | None, what: str) -> None:
    """Catch compressed input read without +CODEC (or with the wrong one) with a hint."""
    found = sniff(head)
    if compression is None:
        if found is not None:
            raise FormatError(f"{what} looks {found}-compressed: add +{found} to the URL")
        return
    if compression not in MAGIC:
        raise FormatError(
            f"unsupported compression '{compression}' (use {', '.join(COMPRESSIONS)})"
        )
    if found != compression:
        raise FormatError(f"{what} is not {compression}-compressed")


def decompress(data: bytes, compression: str | None, what: str, limit: int = MAX_EXPANDED) -> bytes:
    """`data` decompressed (as is when `compression` is None)."""
    check(data[:4], compression, what)
    if compression is None:
        return data
    out = _Output(what, limit)
    try:
        if compression == "zstd":
            _zstd(data, out)
        elif compression == "gzip":
            _gzip(data, out)
        else:
            _bzip2(data, out)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise FormatError(f"cannot decompress {what} as {compression}: {e}") from None
    return b"".join(out.chunks)


class _Output:
    def __init__(self, what: str, limit: int) -> None:
        self.what, self.limit = what, limit
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise FormatError(
                f"{self.what} expands to more than {self.limit >> 20} MiB when decompressed"
            )
        self.chunks.append(chunk)


def _gzip(data: bytes, out: _Output) -> None:
    rest = data
    while rest.strip(b"\0"):  # gzip allows concatenated members (and zero padding)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        buf = rest
        while not d.eof:
            if not buf:
                out.add(d.flush())
                if not d.eof:
                    raise EOFError("the compressed stream ends early")
                break
            out.add(d.decompress(buf, _CHUNK))
            buf = d.unconsumed_tail
        rest = d.unused_data


def _bzip2(data: bytes, out: _Output) -> None:
    rest = data
    while rest.strip(b"\0"):
        d = bz2.BZ2Decompressor()
        buf = rest
        while not d.eof:
            if d.needs_input and not buf:
                raise EOFError("the compressed stream ends early")
            out.add(d.decompress(buf, _CHUNK))
            buf = b""
        rest = d.unused_data


def _zstd(data: bytes, out: _Output) -> None:
    import pyarrow as pa

    # pyarrow's zstd stream reads every frame of a multi-frame file
    try:
        with pa.CompressedInputStream(pa.BufferReader(data), "zstd") as s:
            while chunk := s.read(16 * _CHUNK):
                out.add(chunk)
    except pa.ArrowException as e:
        raise ValueError(" ".join(str(e).split())) from None
