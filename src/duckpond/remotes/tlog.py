"""`pond tlog verify --remote NAME`: the tamper-evident log recomputed from a remote's copy.

What the check reads of a pond (both logs, the data table's archive, the live Parquet
files of both tables; never blobs) is fetched into a temporary directory, laid out as a
pond, and checked there exactly as a local pond is (storage/tlogcheck.py). Nothing is
checked against this pond: the remote's own records are the evidence, so a backup that
was rewritten is caught even when the local pond is gone.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..errors import PondError, RemoteError, RemoteNotFound
from ..storage import deltalog, tlogcheck
from . import config
from .layout import ARCHIVE_DIR, LOG, TABLES
from .logs import remote_identity
from .ops import _error_text, _secrets, find
from .transfers import WORKERS

if TYPE_CHECKING:
    from ..storage.objstore import ObjectStore
    from .ops import PondHost


def _fetch(store: ObjectStore, keys: list[str], root: Path, missing_ok: bool = False) -> None:
    """Copy `keys` under `root`; with `missing_ok`, one that is gone is left out (the
    check then finds the rows it held missing)."""

    def one(key: str) -> None:
        dest = root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.get_file(key, dest, sync=False)
        except RemoteNotFound:
            if not missing_ok:
                raise

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="pond-tlog") as pool:
        for _ in pool.map(one, keys):
            pass


def _copy_table(store: ObjectStore, table: str, root: Path) -> None:
    """The table's log and archive, then the files live in them."""
    keys = [o.key for o in store.list(f"{table}/{LOG}/")]
    if table == "data":
        keys += [o.key for o in store.list(f"{table}/{ARCHIVE_DIR}/")]
    _fetch(store, keys, root)
    try:
        snap = deltalog.Snapshot.load(root / table, stats=False, gaps=True)
    except (deltalog.Unsupported, OSError, ValueError, KeyError, TypeError) as e:
        raise RemoteError(f"the {table} table's log at {store.url} cannot be read ({e})") from None
    _fetch(store, [f"{table}/{unquote(f.path)}" for f in snap.add_files()], root, True)


def verify(pond: PondHost, name: str) -> tlogcheck.TlogReport:
    """Recompute the log from remote `name`'s copy of a pond."""
    att = find(pond, name)
    secrets = _secrets()
    try:
        store = config.store_for(att, secrets)
        if remote_identity(store) is None:
            raise RemoteError(f"{att.url} holds no pond")
        with tempfile.TemporaryDirectory(prefix="pond-tlog-") as tmp:
            root = Path(tmp)
            for table in TABLES:
                _copy_table(store, table, root)
            return tlogcheck.check(root / "data", root / "control", att.url)
    except PondError as e:
        raise type(e)(_error_text(e, secrets)) from None
