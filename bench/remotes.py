"""Benchmark 17: remotes on a local S3 server (`moto.server` on 127.0.0.1, issue 8).

17a auto-push of one small write: `remotes.push.push` of one new transaction from the
    watermark (what the steward's `remote` task runs after a write) vs a bare
    `deltalake.write_deltalake` append of a small table to a Delta table on the same server
    (each with a history of as many versions; interleaved; medians).
17b the initial push of a 1,000-transaction pond (data, control, blobs; entries one by one
    with put-if-absent) vs copying the same files with obstore directly (the same 8
    parallel uploads, no ordering, no checks).
17c the restore of that remote into a new directory (files synced, renamed into place) vs
    copying the same objects down with obstore directly (a listing of the prefix, then 8
    downloads in parallel, not synced).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from duckpond.pond import Pond
from duckpond.remotes.push import push
from duckpond.remotes.restore import restore
from duckpond.remotes.transfers import WORKERS
from duckpond.remotes.verify import verify
from duckpond.storage.objstore import StoreOptions, open_store

from .common import Result, Timer, log, ratio_row

KEY, SECRET, REGION = "bench-key", "bench-secret", "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    out = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto.server did not start") from None
            time.sleep(0.1)


def _bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    ).create_bucket(Bucket=name)


def _write(pond: Pond, i: int) -> None:
    # one small file per write; every 100th write also a 256 KiB blob
    with pond.transaction(args=["bench", "write", str(i)]) as tx:
        tx.write_bytes(f"/d{i % 10}/f{i}", os.urandom(1024), parents=True)
        if i % 100 == 0:
            tx.write_bytes(f"/big/b{i}", os.urandom(256 * 1024), parents=True)


def run(work: Path, quick: bool) -> Result:
    txns = 100 if quick else 1_000
    history = 30 if quick else 100
    reps_small = 10 if quick else 31
    reps_big = 1 if quick else 3
    proc, endpoint = start_moto(work / "moto.log")
    try:
        return _run(work, endpoint, txns, history, reps_small, reps_big)
    finally:
        proc.terminate()
        proc.wait()


def _run(
    work: Path, endpoint: str, txns: int, history: int, reps_small: int, reps_big: int
) -> Result:
    import obstore
    from deltalake import write_deltalake
    from obstore.store import S3Store

    options = StoreOptions(endpoint, REGION, KEY, SECRET, allow_http=True)
    storage = options.delta_storage_options()
    _bucket(endpoint, "bench")
    t = Timer(warmup=1)

    # 17a: one small write pushed from the watermark vs a bare write_deltalake append
    log(f"17a: a pond and a Delta table with {history} versions each")
    small = work / "small"
    pond = Pond.create(small)
    for i in range(history):
        _write(pond, i + 1)
    store = open_store("s3://bench/small", options)
    tip = push(small, store).tip
    table_uri = "s3://bench/plain"
    row = pa.table({"x": pa.array([1], pa.int64()), "s": pa.array(["a" * 100])})
    write_deltalake(table_uri, row, storage_options=storage)
    for _ in range(history):
        write_deltalake(table_uri, row, mode="append", storage_options=storage)
    for i in range(reps_small + 1):
        _write(pond, history + 1 + i)
        tip = t.run("push1", lambda tip=tip: push(small, store, since=tip)).tip
        t.run(
            "wdl",
            lambda: write_deltalake(table_uri, row, mode="append", storage_options=storage),
        )
    assert verify(small, store).ok

    # 17b/17c: the initial push and the restore of a pond with many transactions
    log(f"17b: a pond of {txns} transactions")
    big = work / "big"
    pond = Pond.create(big)
    t0 = time.perf_counter()
    for i in range(txns - 1):
        _write(pond, i)
    log(f"17b: built in {time.perf_counter() - t0:.1f} s")
    raw = S3Store(
        "bench",
        config={
            "endpoint": endpoint,
            "region": REGION,
            "access_key_id": KEY,
            "secret_access_key": SECRET,
        },
        client_options={"allow_http": True},
    )
    pool = ThreadPoolExecutor(WORKERS)
    files: list[tuple[str, Path]] = []
    for rep in range(reps_big + 1):  # the first rep warms up
        url = f"s3://bench/big-{rep}"
        report = t.run("push", lambda url=url: push(big, open_store(url, options)))
        assert report.tip.txn_seq == txns
        # the baseline copies exactly the files the push wrote (not the compacted files
        # awaiting vacuum, nor log entries pruned behind a checkpoint)
        files = [
            (o.key, big / o.key) for o in open_store(url, options).list("") if o.key != "pond.json"
        ]
        prefix = f"copy-{rep}"

        def upload(item: tuple[str, Path], prefix: str = prefix) -> None:
            obstore.put(raw, f"{prefix}/{item[0]}", item[1])

        t.run("copy_up", lambda f=upload, files=files: list(pool.map(f, files)))
        dest = work / f"restored-{rep}"
        t.run("restore", lambda url=url, dest=dest: restore(dest, open_store(url, options)))
        down = work / f"downloaded-{rep}"

        def download(key: str, down: Path = down, cut: int = len(prefix) + 1) -> None:
            target = down / key[cut:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(obstore.get(raw, key).bytes()))

        def copy_down(
            f: Callable[[str], None] = download, prefix: str = prefix, n: int = len(files)
        ) -> None:
            # a copy of a prefix lists it first, as any copy tool does (so does restore)
            keys = [o["path"] for chunk in obstore.list(raw, prefix) for o in chunk]
            assert len(keys) == n
            list(pool.map(f, keys))

        t.run("copy_down", copy_down)
        if rep == reps_big:
            assert verify(dest, open_store(url, options)).ok
        shutil.rmtree(dest)
        shutil.rmtree(down)
    pool.shutdown()
    entries = report.entries
    nbytes = sum(p.stat().st_size for _, p in files)
    return Result(
        [
            ratio_row(
                "17a",
                f"auto-push of one small write vs write_deltalake append ({history} versions)",
                t.median("push1"),
                t.median("wdl"),
                1.5,
                reps=t.count("push1"),
            ),
            ratio_row(
                "17b",
                f"initial push, {txns:,} txns ({len(files):,} files, {nbytes / 1e6:.1f} MB)"
                " vs obstore copy",
                t.median("push"),
                t.median("copy_up"),
                1.3,
                reps=t.count("push"),
                files=len(files),
                bytes=nbytes,
                entries=entries,
            ),
            ratio_row(
                "17c",
                f"restore of it vs obstore download ({len(files):,} files)",
                t.median("restore"),
                t.median("copy_down"),
                1.3,
                reps=t.count("restore"),
            ),
        ],
        notes=[
            "17: moto.server on 127.0.0.1 (a Python server: every request costs ~1-3 ms of "
            "its CPU on the same 2 cores)."
        ],
    )
