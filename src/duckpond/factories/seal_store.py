"""Where temporal-reduce keeps its sealed buckets: `$POND/sealed/<config>/<series>/`.

One directory per (reduce config, input series, resolution) holds `manifest.json` and the
Parquet file of sealed output rows it names. The manifest says which input versions the seal
covers (their count and a hash of their ids), where sealing stopped (`sealed_hi`, µs) and a
generation number that grows by one with each saved state.

Crash safety: a new sealed file gets a new name and is synced before the manifest is
replaced (write, fsync, rename, fsync of the directory), so a SIGKILL at any point leaves
the old state or the new one, never a mix; files no manifest names are removed by the next
save. Concurrent readers never block each other: a save takes a non-blocking lock and
gives up when another reader holds it or saved first (compare-and-swap on the
generation); the reader's answer is right either way, only the saving is skipped.

Nothing here is a pond table: reads never write to those (SPEC §4). Deleting `sealed/`
(or `pond run NODE rebuild`) just makes the next read recompute and seal again.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..crashpoints import crash_point
from ..storage.durability import fsync_dir, replace_synced
from .live import digest

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT = "sealed-1"
MANIFEST = "manifest.json"
LOCK = ".lock"


@dataclass(frozen=True)
class SealState:
    generation: int
    count: int  # how many of the input's versions (oldest first) the seal has seen
    ids_hash: str  # ids_hash() of those versions' ids
    sealed_hi: int | None  # buckets starting before it are sealed (None: none yet)
    newest: int | None  # the newest event time seen (µs)
    seen_txn: int  # the newest transaction among those versions (a reader of an older
    # snapshot of the pond must not replace the state of a newer one)
    input_schema: pa.Schema | None  # the union schema of the versions seen
    sealed: pa.Table | None  # the sealed output rows, oldest first
    file: str | None  # the sealed rows' file name in the directory


EMPTY = SealState(0, 0, "", None, None, 0, None, None, None)


def ids_hash(ids: list[str]) -> str:
    return digest(ids)


def new_file_name(generation: int) -> str:
    """A name no earlier save used (a crashed save may have left its file behind)."""
    return f"sealed-{generation}-{os.urandom(4).hex()}.parquet"


def namespace(pond_root: Path, config: dict[str, Any]) -> Path:
    """The directory of one reduce config's seals (what `rebuild` removes)."""
    return Path(pond_root) / "sealed" / digest(FORMAT, config)[:32]


class SealStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def load(self) -> SealState:
        """The saved state; EMPTY when there is none or it cannot be read (a damaged or
        foreign state is never trusted: the read recomputes)."""
        for _ in range(3):  # a concurrent save may remove the file we were about to open
            state = self._load_once()
            if state is not None:
                return state
        return EMPTY

    def _load_once(self) -> SealState | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            doc = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return EMPTY
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return EMPTY
        try:
            schema = None
            if doc["input_schema"] is not None:
                raw = base64.b64decode(doc["input_schema"])
                schema = pa.ipc.read_schema(pa.py_buffer(raw))
            sealed = None
            if doc["file"] is not None:
                try:
                    sealed = pq.read_table(self.dir / doc["file"])
                except FileNotFoundError:
                    return None  # replaced under us: read the new manifest
            return SealState(
                generation=int(doc["generation"]),
                count=int(doc["count"]),
                ids_hash=str(doc["ids_hash"]),
                sealed_hi=doc["sealed_hi"],
                newest=doc["newest"],
                seen_txn=int(doc["seen_txn"]),
                input_schema=schema,
                sealed=sealed,
                file=doc["file"],
            )
        except (KeyError, TypeError, ValueError, OSError, pa.ArrowException):
            return EMPTY

    def save(self, old: SealState, new: SealState) -> bool:
        """Replace `old` by `new` (new.generation = old's + 1) unless another reader saved
        or is saving; True when saved. Best effort: a read-only pond just seals nothing."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._locked() as got:
                if not got or self._generation() != old.generation or new.seen_txn < old.seen_txn:
                    return False
                self._write(old, new)
            return True
        except OSError:
            return False

    def _generation(self) -> int:
        try:
            return int(json.loads((self.dir / MANIFEST).read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, old: SealState, new: SealState) -> None:
        import pyarrow.parquet as pq

        sealed = new.sealed
        if sealed is not None and new.file is not None and new.file != old.file:
            replace_synced(
                self.dir / new.file, lambda tmp: pq.write_table(sealed, tmp, compression="zstd")
            )
        crash_point("seal-before-manifest")
        schema = None
        if new.input_schema is not None:
            schema = base64.b64encode(new.input_schema.serialize().to_pybytes()).decode()
        doc = {
            "format": FORMAT,
            "generation": new.generation,
            "count": new.count,
            "ids_hash": new.ids_hash,
            "sealed_hi": new.sealed_hi,
            "newest": new.newest,
            "seen_txn": new.seen_txn,
            "input_schema": schema,
            "file": new.file,
        }
        text = json.dumps(doc, sort_keys=True)
        replace_synced(self.dir / MANIFEST, lambda tmp: tmp.write_text(text))
        fsync_dir(self.dir)
        crash_point("seal-after-manifest")
        for p in self.dir.iterdir():  # sealed files of older states, and crashed saves'
            if p.name not in (MANIFEST, LOCK, new.file):
                with contextlib.suppress(OSError):
                    p.unlink()
