"""Remotes at the library level: push, pull, restore and verify against real ponds, each
scenario on `file://` and on `s3://` (a local moto server)."""

from __future__ import annotations

import os
from pathlib import Path

from s3server import Remote

from duckpond.pond import Pond
from duckpond.remotes import sync


def _pond_with_files(root: Path, n: int = 3, big: bool = True) -> Pond:
    pond = Pond.create(root)
    for i in range(n):
        with pond.transaction(args=["test", str(i)]) as tx:
            tx.write_bytes(f"/f{i}", os.urandom(300_000 if big and i == 1 else 100))
    return pond


def test_push_twice_moves_nothing_the_second_time(tmp_path: Path, remote: Remote) -> None:
    root = tmp_path / "pond"
    _pond_with_files(root)
    store = remote.store()
    first = sync.push(root, store)
    assert first.entries > 0 and first.files > 0
    assert first.tip == sync.local_tip(root) == sync.remote_tip(store)
    again = sync.push(root, store)
    assert again.up_to_date and again.bytes == 0
    watermark = sync.push(root, store, since=first.tip)
    assert watermark.up_to_date and watermark.bytes == 0
