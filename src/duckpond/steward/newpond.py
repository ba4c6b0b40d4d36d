"""`pond init`: a new pond's identity, both tables, the blob store and its root directory
(transaction 1)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from .. import nodes
from ..errors import AlreadyExistsError
from ..storage.blobs import BlobStore
from ..storage.datatable import DataTable
from .control import ControlTable
from .steward import Steward


def create(
    root: Path, created: str | None, args: list[str], wait: float = 0.0
) -> tuple[DataTable, ControlTable]:
    """Create the pond at `root` (absent, or an empty or unrelated directory); `created`:
    the creation time recorded with its identity (ISO 8601); `wait`: seconds to wait for
    the write lock."""
    if (root / "data").exists() or (root / "control").exists():
        raise AlreadyExistsError(f"a pond already exists at {root}")
    if root.exists() and not root.is_dir():
        raise AlreadyExistsError(f"{root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    import getpass  # ~0.5 ms (termios): only here

    identity = {
        "pond_id": nodes.uuid7(),
        "created": created,
        "user": getpass.getuser(),
        "host": socket.gethostname(),
    }
    desc = json.dumps({"pond": identity}, sort_keys=True)
    data = DataTable.create(root / "data", desc)
    control = ControlTable.create(root / "control", identity)
    (root / "blobs").mkdir(exist_ok=True)
    steward = Steward(root, data, control, BlobStore(root / "blobs"), wait)
    with steward.locked():
        with steward.transaction(args, {}) as tx:
            tx.create_root()
    return data, control
