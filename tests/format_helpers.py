"""Shared by the format-URL tests: each compression's encoder, and `pond cat` as JSON rows."""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from conftest import run_pond

COMPRESS: dict[str | None, Callable[[bytes], bytes]] = {
    None: lambda b: b,
    "gzip": gzip.compress,
    "zstd": lambda b: pa.Codec("zstd").compress(b, asbytes=True),
    "bzip2": bz2.compress,
}


def cat_json(*args: object, pond: Path | None = None) -> list[dict[str, object]]:
    out = run_pond("cat", *args, "--format", "json", pond=pond)
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows
