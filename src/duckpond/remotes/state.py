"""Local remote state under `$POND/remotes/` (never pushed, never in Delta).

- `NAME.json`: the watermarks of one remote: what was last pushed (data/control Delta
  versions and txn_seq), what was last pulled, the last error. `pond status` reads only these.
- `NAME.yaml`: the attachment of a mirror (a pond made by `pond restore`, or following its
  backup with `pond remote add NAME URL /`). It cannot be a node in the pond's own data table:
  that write would fork the pond from its source. While one exists, writes are refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from ..errors import PondError

DIR = "remotes"
WATERMARK_KEYS = (
    "pushed_data_version",
    "pushed_control_version",
    "pushed_txn_seq",
    "pulled_txn_seq",
    "last_error",
    "updated",
)


def state_dir(root: Path) -> Path:
    return Path(root) / DIR


def _atomic_write(path: Path, data: bytes) -> None:
    from ..storage.durability import fsync_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_watermark(root: Path, name: str) -> dict[str, Any]:
    """The watermarks of remote `name` (every key present; None when never recorded)."""
    out: dict[str, Any] = dict.fromkeys(WATERMARK_KEYS)
    try:
        stored = json.loads((state_dir(root) / f"{name}.json").read_text())
    except (OSError, ValueError):
        return out
    if isinstance(stored, dict):
        out.update({k: stored[k] for k in WATERMARK_KEYS if k in stored})
    return out


def update_watermark(root: Path, name: str, **values: Any) -> dict[str, Any]:
    unknown = set(values) - set(WATERMARK_KEYS)
    if unknown:
        raise ValueError(f"unknown watermark key(s): {sorted(unknown)}")
    mark = read_watermark(root, name)
    mark.update(values)
    mark["updated"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    _atomic_write(state_dir(root) / f"{name}.json", json.dumps(mark, sort_keys=True).encode())
    return mark


def forget(root: Path, name: str) -> None:
    """Remove what this pond keeps locally about remote `name`."""
    for suffix in (".json", ".yaml"):
        try:
            (state_dir(root) / f"{name}{suffix}").unlink()
        except FileNotFoundError:
            pass


# -- mirrors ------------------------------------------------------------------------------------
def mirror_names(root: Path) -> list[str]:
    """Names of the mirror attachments (cheap: one directory listing, no YAML)."""
    try:
        names = os.listdir(state_dir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n[: -len(".yaml")] for n in names if n.endswith(".yaml"))


def write_mirror(root: Path, name: str, config: bytes) -> None:
    _atomic_write(state_dir(root) / f"{name}.yaml", config)


def read_mirror(root: Path, name: str) -> bytes:
    try:
        return (state_dir(root) / f"{name}.yaml").read_bytes()
    except FileNotFoundError:
        raise PondError(f"no mirror attachment named {name}") from None


def check_writable(root: Path) -> None:
    """Refuse a write to a mirror: it would fork the pond from the one it follows."""
    names = mirror_names(root)
    if names:
        name = names[0]
        raise PondError(
            f"this pond mirrors {name} (read-only); `pond remote remove {name}` makes it writable"
        )
