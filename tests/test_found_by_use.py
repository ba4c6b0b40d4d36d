"""Issue 17 item 11: things found by using the pond (`list /`, re-applying a CSV copy,
`recover --retry-failed`'s exit code, `control detail N`)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_pond

from duckpond.pond import Pond


def test_list_root_means_its_entries(pond_dir: Path, tmp_path: Path) -> None:
    """SPEC §3: a trailing `/` means the directory's contents, so `/` alone is the root's
    entries (like `/dir/`), not the root itself."""
    with Pond.open(pond_dir).transaction() as tx:
        tx.write_bytes("/f.txt", b"x")
        tx.write_bytes("/a/g.txt", b"y", parents=True)
    assert [e.path for e in Pond.open(pond_dir).list("/")] == ["/a", "/f.txt"]
    assert [e.path for e in Pond.open(pond_dir).list("/a/")] == ["/a/g.txt"]
    out = run_pond("list", "/", pond=pond_dir).stdout.decode().splitlines()
    assert out == ["/a", "/f.txt"]
    shown = json.loads(run_pond("list", "--format", "json", "/", pond=pond_dir).stdout)
    assert [e["path"] for e in shown] == ["/a", "/f.txt"]
    # the root itself is still there to be listed by a pattern that names it
    assert "/" in [e.path for e in Pond.open(pond_dir).list("/**")]
