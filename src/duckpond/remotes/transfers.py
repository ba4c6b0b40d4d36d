"""Moving files between a pond and a remote: a thread pool that counts files and bytes
(for the report and the progress callback), downloads, and local file helpers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from ..errors import RemoteError
from ..storage.durability import fsync_dir
from ..storage.objstore import ObjectStore
from . import layout

Progress = Callable[[int, int], None]


# Independent uploads and downloads in flight at once.
WORKERS = 8


class _Skipped(Exception):
    """A job not started because an earlier one failed."""


class Transfers:
    """A thread pool moving independent files, counting files and bytes for the report
    and the progress callback.

    The first job that fails stops the rest: jobs not started yet are skipped and
    `all()` raises that first failure. A remote that stops answering thus costs one
    request timeout per job already running, not one per queued file."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.total = 0
        self.done = 0
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pond-remote")

    def __enter__(self) -> Transfers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def plan(self, nbytes: int) -> None:
        with self._lock:
            self.total += nbytes

    def moved(self, nbytes: int, files: int = 1) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self.done += nbytes
            done, total = self.done, max(self.total, self.done)
        if self.progress is not None and nbytes:  # (a fetch counted later says nothing)
            self.progress(done, total)

    def submit(self, job: Callable[[], int], files: int = 1) -> Future[int]:
        def run() -> int:
            if self._failure is not None:
                raise _Skipped
            try:
                n = job()
            except BaseException as e:
                with self._lock:
                    self._failure = self._failure or e
                raise
            self.moved(n, files)
            return n

        return self._pool.submit(run)

    def all(self, futures: Iterable[Future[int]]) -> None:
        """Wait for `futures`; the first failure of any job is raised (the running ones
        are waited for, the rest skipped)."""
        futures = list(futures)
        wait(futures)
        if self._failure is not None:
            raise self._failure
        for f in futures:
            f.result()


def read_local(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RemoteError(f"cannot read {path}: {e.strerror or e}") from None


def download(
    store: ObjectStore, key: str, dest: Path, t: Transfers, sync: bool = True
) -> Future[int]:
    def job() -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return store.get_file(key, dest, sync=sync)

    return t.submit(job)


def stamp(path: Path, body: bytes) -> None:
    """Give a copied log entry its commit's time as its modification time: Delta readers
    time travel by that time (`load_as_version(datetime)`), not by commitInfo."""
    ms = layout.commit_time_ms(body)
    if ms is not None:
        os.utime(path, ns=(ms * 1_000_000, ms * 1_000_000))


def sync_dirs(dirs: Iterable[Path]) -> None:
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        if d.is_dir():
            fsync_dir(d)
