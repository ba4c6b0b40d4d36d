"""What an export is asked to do: the destination, the format, the temporal partitioning.

Checked before anything is read or written, so bad input is one line and touches nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..errors import InvalidPathError, PondUsageError, clip
from ..storage.objstore import StoreOptions

if TYPE_CHECKING:
    from ..storage.objstore import ObjectStore

FORMATS = ("parquet", "delta")
# Coarsest first: a partitioning is a prefix of this, so `day` always sits under `month`.
TEMPORAL_PARTS = ("year", "month", "day", "hour")
DEFAULT_TEMPORAL = ("year", "month")
# Kept at the top of DIR: what earlier exports wrote (export/manifest.py), and where a
# local Parquet export builds a series' new tree before moving it into place.
MANIFEST = "_pond_export.json"
STAGING = "_pond_export_tmp"


def parse_format(value: str) -> str:
    if value not in FORMATS:
        raise PondUsageError(f"export format must be parquet or delta, not {clip(value)!r}")
    return value


def parse_temporal(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """`year,month,day` (or a list) -> its parts; `none` or empty: no partitioning."""
    if value is None:
        return DEFAULT_TEMPORAL
    items = value.split(",") if isinstance(value, str) else list(value)
    parts = tuple(str(p).strip().lower() for p in items if str(p).strip())
    if parts in ((), ("none",)):
        return ()
    if parts != TEMPORAL_PARTS[: len(parts)]:
        raise PondUsageError(
            f"--temporal {clip(','.join(parts))!r}: use a prefix of year,month,day,hour "
            "(e.g. year,month or year,month,day), or none"
        )
    return parts


@dataclass(frozen=True)
class Dest:
    """Where an export goes: a local directory (`local`) or an s3:// prefix."""

    url: str  # file:///abs/dir or s3://bucket/prefix
    local: Path | None
    options: StoreOptions = field(default_factory=StoreOptions)  # references expanded

    def store(self) -> ObjectStore:
        from ..storage.objstore import open_store

        return open_store(self.url, self.options)

    def uri(self, rel: str) -> str:
        """A series' table location as deltalake takes it."""
        if self.local is not None:
            return str(self.local / rel)
        return f"{self.url}/{rel}"

    def shown(self, rel: str) -> str:
        return str(self.local / rel) if self.local is not None else f"{self.url}/{rel}"


def parse_dest(value: str, options: StoreOptions | None = None, resolved: bool = False) -> Dest:
    """A host directory (absolute or relative), `file:///abs/dir` or `s3://bucket/prefix`.
    S3 options may hold `${env:NAME}` references (a secret must be one), expanded here;
    `resolved`: they were expanded already (a job's config)."""
    if not value:
        raise PondUsageError("export needs --dir (a directory, file:///dir or s3://bucket/prefix)")
    if value.startswith("s3://"):
        from ..remotes.config import check_url

        check_url(value)
        opts = options or StoreOptions()
        return Dest(value.rstrip("/"), None, opts if resolved else _expanded(opts))
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise PondUsageError(
                f"bad export directory {clip(value)!r}: use a path, file:///dir or s3://bucket/prefix"
            )
        raw = unquote(parts.path)
        if not raw.startswith("/"):
            raise PondUsageError(f"bad export directory {clip(value)!r}: file:///absolute/path")
    else:
        raw = value
    path = Path(os.path.normpath(os.path.abspath(raw)))
    if path == Path("/"):
        raise PondUsageError("refusing to export into / (give a directory of its own)")
    return Dest(path.as_uri(), path)


def _expanded(options: StoreOptions) -> StoreOptions:
    from dataclasses import replace

    from ..errors import FactoryError
    from ..factories.base import expand_env
    from ..remotes.config import S3_KEYS, check_secret, check_timeout

    check_secret(options.secret_access_key)
    check_timeout(options.timeout)
    try:
        values = {key: expand_env(getattr(options, key)) for key in S3_KEYS}
    except FactoryError as e:
        raise PondUsageError(f"export: {e}") from None
    return replace(options, **values)


def check_outside(dest: Dest, pond_root: Path, rel: str | None = None) -> None:
    """Refuse to write inside the pond's own directory (its tables, blobs, caches)."""
    if dest.local is None:
        return
    root = pond_root.resolve()
    target = (dest.local / rel if rel else dest.local).resolve()
    if target == root or root in target.parents:
        where = "the export directory" if rel is None else f"{target}"
        raise InvalidPathError(f"{where} is inside the pond at {root}: export somewhere else")
