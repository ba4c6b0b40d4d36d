"""Where temporal-reduce keeps its sealed buckets: `$POND/sealed/<config>/<series>/`.

One directory per (reduce config, input series, resolution) holds `manifest.json` and the
runs of sealed output rows it names (Arrow IPC files, oldest first: each seal adds a run
holding only the buckets it closed, so a seal writes in proportion to them; uncompressed
and memory-mapped, as output rows are few). Each run is kept more than twice the size of
the next newer one: a new run is merged with the newest runs until that holds (a binary
counter: a few runs, each row rewritten a logarithmic number of times in all), so a seal
never rewrites the whole history's rows every few reads; past MAX_RUNS (irregular sizes)
they are merged into one. The manifest says which input versions the seal covers (their
count and the last of them), where sealing stopped (`sealed_hi`, µs) and a generation
number that grows by one with each saved state.

Crash safety: a new run gets a new name and is synced before the manifest is replaced
(write, fsync, rename, fsync of the directory), so a SIGKILL at any point leaves the old
state or the new one, never a mix; files no manifest names are removed by the next save.

Concurrent readers never block each other: a save takes a non-blocking lock and gives up
when another reader holds it or saved first (compare-and-swap on the manifest), or when
it read an older snapshot of the pond than the saved state's; the reader's answer is right
either way, only the saving is skipped.

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

FORMAT = "sealed-3"  # 2: calendar buckets, weeks from Monday; 3: the last version seen
MANIFEST = "manifest.json"
LOCK = ".lock"


@dataclass(frozen=True)
class SealState:
    generation: int
    count: int  # how many of the input's versions (oldest first) the seal has seen
    last: str  # the last of them, as version_key() gives it ("" when none)
    sealed_hi: int | None  # buckets starting before it are sealed (None: none yet)
    newest: int | None  # the newest event time seen (µs)
    seen_txn: int  # the newest transaction among those versions (a reader of an older
    # snapshot of the pond must not replace the state of a newer one)
    input_schema: pa.Schema | None  # the union schema of the versions seen
    sealed: pa.Table | None  # the sealed output rows, oldest first
    files: tuple[str, ...]  # the runs holding them, in the directory
    sizes: tuple[int, ...] = ()  # each run's rows
    # the live versions seen whose rows can reach the open buckets (their max event time
    # None or at least sealed_hi): (version, max event time), what the next read reopens
    hot: tuple[tuple[int, int | None], ...] = ()
    bounds: tuple[int | None, int | None] = (None, None)  # the input's temporal bounds


EMPTY = SealState(0, 0, "", None, None, 0, None, None, ())
MAX_RUNS = 16


def version_key(ident: str, txn_seq: int) -> str:
    """What the seal records of the last version it has seen: its id (node, version,
    content hash) and the transaction that wrote it."""
    return f"{ident}/{txn_seq}"


def namespace(pond_root: Path, config: dict[str, Any]) -> Path:
    """The directory of one reduce config's seals (what `rebuild` removes)."""
    return Path(pond_root) / "sealed" / digest(FORMAT, config)[:32]


class SealStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._seen: str | None = None  # the manifest as load() read it (None: missing)

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

        try:
            self._seen = self._manifest_text()
            doc = json.loads(self._seen or "")
        except (OSError, ValueError):
            return EMPTY
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return EMPTY
        try:
            schema = None
            if doc["input_schema"] is not None:
                raw = base64.b64decode(doc["input_schema"])
                schema = pa.ipc.read_schema(pa.py_buffer(raw))
            files = tuple(str(f) for f in doc["files"])
            try:
                # memory-mapped, uncompressed: reading the runs back copies nothing
                maps = [pa.memory_map(str(self.dir / f)) for f in files]
                runs = [pa.ipc.open_file(m).read_all() for m in maps]
            except FileNotFoundError:
                return None  # replaced under us: read the new manifest
            sealed = pa.concat_tables(runs) if runs else None
            return SealState(
                generation=int(doc["generation"]),
                count=int(doc["count"]),
                last=str(doc["last"]),
                sealed_hi=doc["sealed_hi"],
                newest=doc["newest"],
                seen_txn=int(doc["seen_txn"]),
                input_schema=schema,
                sealed=sealed,
                files=files,
                sizes=tuple(r.num_rows for r in runs),
                hot=tuple((int(v), None if hi is None else int(hi)) for v, hi in doc["hot"]),
                bounds=(_opt_int(doc["bounds"][0]), _opt_int(doc["bounds"][1])),
            )
        except (KeyError, TypeError, ValueError, OSError, pa.ArrowException):
            return EMPTY

    def save(self, old: SealState, new: SealState, added: pa.Table | None) -> bool:
        """Replace `old`, the state load() gave, by `new` unless another reader saved or is
        saving since; True when saved. `added`: the rows new.sealed has beyond old.sealed
        (one more run); None: new.sealed is written whole. Best effort: a read-only pond
        just seals nothing."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._locked() as got:
                # compare-and-swap: the manifest must still be the one load() read (also a
                # damaged or foreign one, which this save replaces)
                if not got or self._manifest_text() != self._seen or new.seen_txn < old.seen_txn:
                    return False
                self._write(old, new, added)
            return True
        except OSError:
            return False

    def _manifest_text(self) -> str | None:
        try:
            return (self.dir / MANIFEST).read_text()
        except FileNotFoundError:
            return None

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

    def _write(self, old: SealState, new: SealState, added: pa.Table | None) -> None:
        files: list[str] = []
        if added is not None and new.sealed is not None:
            keep = _runs_kept(list(old.sizes), added.num_rows)
            files = list(old.files[:keep])
            if keep == len(old.files):  # the new rows alone: one more run
                if added.num_rows:
                    files.append(self._put_run(new.generation, added))
            else:  # the newest runs and the new rows, merged into one
                merged = new.sealed.slice(sum(old.sizes[:keep]))
                files.append(self._put_run(new.generation, merged))
        elif new.sealed is not None and new.sealed.num_rows:
            files = [self._put_run(new.generation, new.sealed)]
        crash_point("seal-before-manifest")
        schema = None
        if new.input_schema is not None:
            schema = base64.b64encode(new.input_schema.serialize().to_pybytes()).decode()
        doc = {
            "format": FORMAT,
            "generation": new.generation,
            "count": new.count,
            "last": new.last,
            "sealed_hi": new.sealed_hi,
            "newest": new.newest,
            "seen_txn": new.seen_txn,
            "input_schema": schema,
            "files": files,
            "hot": [list(h) for h in new.hot],
            "bounds": list(new.bounds),
        }
        text = json.dumps(doc, sort_keys=True)
        replace_synced(self.dir / MANIFEST, lambda tmp: tmp.write_text(text))
        fsync_dir(self.dir)
        crash_point("seal-after-manifest")
        for p in self.dir.iterdir():  # runs of older states, and crashed saves'
            if p.name not in (MANIFEST, LOCK, *files):
                with contextlib.suppress(OSError):
                    p.unlink()

    def _put_run(self, generation: int, rows: pa.Table) -> str:
        """Write `rows` as a run under a name no earlier save used (a crashed save may
        have left its run behind); returns the name."""
        import pyarrow as pa

        name = f"run-{generation}-{os.urandom(4).hex()}.arrow"

        def write(tmp: Path) -> None:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, rows.schema) as w:
                w.write_table(rows)

        replace_synced(self.dir / name, write)
        return name


def _runs_kept(sizes: list[int], added: int) -> int:
    """How many of the runs of `sizes` rows (oldest first) stay as they are when a run of
    `added` rows is sealed: the newest ones are merged with it while the merged run would
    be at least half the size of the run before it (all of them past MAX_RUNS)."""
    if not added:
        return len(sizes)
    keep, merged = len(sizes), added
    while keep > 0 and merged * 2 >= sizes[keep - 1]:
        keep -= 1
        merged += sizes[keep]
    if keep + 1 > MAX_RUNS:
        return 0
    return keep


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
