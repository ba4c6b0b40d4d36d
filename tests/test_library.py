"""The library API (`duckpond.pond.Pond`) against real Delta tables: the filesystem model of
SPEC §3 (directories, files, versions, tables, series, describe, globs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from duckpond.errors import AlreadyExistsError, InvalidPathError, NotFoundError, PondError
from duckpond.pond import Pond

UTC = dt.UTC


def us(day: int, hour: int = 0) -> int:
    """µs since the epoch of 2024-01-DAY HOUR:00 UTC."""
    return int(dt.datetime(2024, 1, day, hour, tzinfo=UTC).timestamp() * 1_000_000)


def series_batch(day: int, n: int = 3, base: float = 0.0) -> pa.Table:
    """n hourly readings on 2024-01-DAY."""
    ts = [dt.datetime(2024, 1, day, h, tzinfo=UTC) for h in range(n)]
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "value": pa.array([base + h for h in range(n)], pa.float64()),
        }
    )


@pytest.fixture
def pond(pond_dir: Path) -> Pond:
    return Pond.open(pond_dir)


# -- directories and raw files ---------------------------------------------------------------


def test_mkdir_and_parents(pond: Pond) -> None:
    with pond.transaction() as tx:
        tx.mkdir("/a")
    with pond.transaction() as tx:
        tx.mkdir("/a/b/c", parents=True)
    assert [e.path for e in pond.list()] == ["/a", "/a/b", "/a/b/c"]
    assert {e.type for e in pond.list()} == {"dir:physical"}

    with pytest.raises(AlreadyExistsError):
        with pond.transaction() as tx:
            tx.mkdir("/a")
    with pytest.raises(NotFoundError):
        with pond.transaction() as tx:
            tx.mkdir("/x/y")
    # -p of an existing directory is fine and changes nothing
    before = pond.data.version()
    with pond.transaction() as tx:
        tx.mkdir("/a/b", parents=True)
    assert pond.data.version() == before


def test_write_bytes_and_read_back(pond: Pond) -> None:
    with pond.transaction() as tx:
        tx.write_bytes("/docs/readme.txt", b"hello\n", parents=True)
        tx.write_bytes("/docs/empty", b"")
        assert tx.read_bytes("/docs/readme.txt") == b"hello\n"  # a txn sees its own writes
    assert pond.read_bytes("/docs/readme.txt") == b"hello\n"
    assert pond.read_bytes("/docs/./../docs/empty") == b""
    info = {e.path: e for e in pond.list("/docs/*")}
    assert info["/docs/readme.txt"].type == "file:data:physical"
    assert info["/docs/readme.txt"].size == 6
    assert info["/docs/readme.txt"].version == 1
    with pytest.raises(NotFoundError):
        pond.read_bytes("/docs/missing")
    with pytest.raises(InvalidPathError):
        pond.read_bytes("/docs")
    with pytest.raises(InvalidPathError):
        pond.read_bytes("/../etc/passwd")


def test_versions_one_per_txn(pond: Pond) -> None:
    seqs = []
    for i in range(1, 4):
        with pond.transaction() as tx:
            tx.write_bytes("/f", f"v{i}".encode())
            seqs.append(tx.txn_seq)
    # two writes of the same node in one transaction make one version (the last content)
    with pond.transaction() as tx:
        tx.write_bytes("/f", b"first")
        tx.write_bytes("/f", b"v4")
        seqs.append(tx.txn_seq)
    versions = pond.versions("/f")
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert [v.txn_seq for v in versions] == seqs
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert pond.read_bytes("/f") == b"v4"
    for n in range(1, 5):
        assert pond.read_bytes("/f", version=n) == f"v{n}".encode()
    with pytest.raises(NotFoundError):
        pond.read_bytes("/f", version=5)
    assert pond.list("/f")[0].version == 4


def test_type_conflicts_and_write_over_directory(pond: Pond) -> None:
    with pond.transaction() as tx:
        tx.mkdir("/d")
        tx.write_bytes("/raw", b"x")
    with pytest.raises(InvalidPathError):
        with pond.transaction() as tx:
            tx.write_bytes("/d", b"x")
    with pytest.raises(InvalidPathError):
        with pond.transaction() as tx:
            tx.write_table("/raw", pa.table({"a": [1]}))
    with pytest.raises(PondError):
        with pond.transaction() as tx:
            tx.write_bytes("/raw/child", b"x")
    assert pond.read_bytes("/raw") == b"x"


# -- tables and series -----------------------------------------------------------------------


def test_table_from_arrow_and_pandas(pond: Pond) -> None:
    arrow = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": ["p", "q"]})
    with pond.transaction() as tx:
        tx.write_table("/t/arrow", arrow, parents=True)
        tx.write_table("/t/pandas", frame)
    assert pond.list("/t/arrow")[0].type == "file:table:physical"
    assert pond.read_table("/t/arrow").to_pylist() == arrow.to_pylist()
    assert pond.read_table("/t/pandas").to_pandas().equals(frame)
    # a table reads as its latest version; older ones stay readable
    with pond.transaction() as tx:
        tx.write_table("/t/arrow", pa.table({"id": [9], "name": ["z"]}))
    assert pond.read_table("/t/arrow").to_pylist() == [{"id": 9, "name": "z"}]
    assert pond.read_table("/t/arrow", version=1).to_pylist() == arrow.to_pylist()
    got = pond.sql("SELECT sum(id) AS s FROM source", path="/t/arrow", version=1)
    assert got.to_pylist() == [{"s": 6}]


def test_series_union_of_versions_with_event_times(pond: Pond) -> None:
    with pond.transaction() as tx:
        tx.write_series("/s/temp", series_batch(1), parents=True)
    with pond.transaction() as tx:
        tx.write_series("/s/temp", series_batch(2, base=10).to_pandas())  # pandas too
    with pond.transaction() as tx:
        tx.write_series("/s/temp", series_batch(3, base=20))
    assert pond.list("/s/temp")[0].type == "file:series:physical"
    assert pond.list("/s/temp")[0].version == 3

    rows = pond.sql("SELECT count(*) AS n, sum(value) AS s FROM series", path="/s/temp")
    assert rows.to_pylist() == [{"n": 9, "s": 3 + 33 + 63}]

    versions = pond.versions("/s/temp")
    assert [(v.min_event_time, v.max_event_time) for v in versions] == [
        (us(1, 0), us(1, 2)),
        (us(2, 0), us(2, 2)),
        (us(3, 0), us(3, 2)),
    ]
    # one version can be read on its own
    one = pond.sql("SELECT min(value) AS m FROM source", path="/s/temp", version=2)
    assert one.to_pylist() == [{"m": 10.0}]


def test_series_time_window(pond: Pond) -> None:
    for day in (1, 2, 3):
        with pond.transaction() as tx:
            tx.write_series("/s", series_batch(day, base=day * 10), parents=True)
    q = "SELECT value FROM source ORDER BY ts"

    def values(t0: int | None, t1: int | None) -> list[float]:
        got = pond.sql(q, path="/s", time_start=t0, time_end=t1)
        return [r["value"] for r in got.to_pylist()]

    assert values(us(2), us(2, 23)) == [20.0, 21.0, 22.0]
    assert values(us(1, 1), us(2, 1)) == [11.0, 12.0, 20.0, 21.0]  # inclusive bounds
    assert values(us(3, 2), None) == [32.0]
    assert values(None, us(1, 0)) == [10.0]
    assert values(us(5), us(6)) == []


def test_series_window_skips_versions_outside(pond: Pond) -> None:
    """A version outside the window is never opened: reading works even if it were lost."""
    big = 20_000  # rows: the Parquet is well over 64 KiB, so the version lives in a blob
    ts = pa.array([us(1) + i * 1_000_000 for i in range(big)], pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    first = pa.table({"ts": ts, "value": pa.array(range(big), pa.float64())})
    with pond.transaction() as tx:
        tx.write_series("/s", first)
    with pond.transaction() as tx:
        tx.write_series("/s", series_batch(10))
    old = pond.versions("/s")[0]
    assert old.content is None and old.content_hash
    pond.blobs.path_for(old.content_hash).unlink()

    got = pond.sql("SELECT count(*) AS n FROM source", path="/s", time_start=us(9))
    assert got.to_pylist() == [{"n": 3}]
    with pytest.raises(PondError):
        pond.sql("SELECT count(*) AS n FROM source", path="/s")


def test_series_needs_time_column(pond: Pond) -> None:
    with pytest.raises(PondError):
        with pond.transaction() as tx:
            tx.write_series("/s", pa.table({"a": ["x"]}))
    assert pond.list() == []


# -- describe --------------------------------------------------------------------------------


def test_describe(pond: Pond) -> None:
    seqs = []
    for day in (1, 2):
        with pond.transaction() as tx:
            tx.write_series("/s", series_batch(day))
            seqs.append(tx.txn_seq)
    d = pond.describe("/s").to_json()
    assert d["path"] == "/s"
    assert d["type"] == "file:series:physical"
    assert d["size"] > 0
    assert [f["name"] for f in d["schema"]] == ["ts", "value"]
    assert [v["version"] for v in d["versions"]] == [1, 2]
    assert [v["txn_seq"] for v in d["versions"]] == seqs
    assert all({"version", "txn_seq", "timestamp", "size"} <= set(v) for v in d["versions"])
    assert d["versions"][0]["min_event_time"].startswith("2024-01-01T00:00:00")
    assert d["versions"][1]["max_event_time"].startswith("2024-01-02T02:00:00")

    with pond.transaction() as tx:
        tx.write_bytes("/raw", b"12345")
    d = pond.describe("/raw").to_json()
    assert d["type"] == "file:data:physical" and d["size"] == 5 and "schema" not in d
    with pytest.raises(NotFoundError):
        pond.describe("/nope")


# -- globs -----------------------------------------------------------------------------------


@pytest.fixture
def tree(pond: Pond) -> Pond:
    with pond.transaction() as tx:
        tx.mkdir("/a/b/c", parents=True)
        tx.write_bytes("/a/x.txt", b"x")
        tx.write_bytes("/a/b/y.txt", b"y")
        tx.write_bytes("/a/b/c/z.csv", b"z")
        tx.write_bytes("/top.txt", b"t")
    return pond


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/*", ["/a", "/top.txt"]),
        ("/a/*", ["/a/b", "/a/x.txt"]),
        ("/*/x.txt", ["/a/x.txt"]),
        ("/**/*.txt", ["/a/b/y.txt", "/a/x.txt", "/top.txt"]),
        ("/a/**/*.csv", ["/a/b/c/z.csv"]),
        ("/a/**", ["/a", "/a/b", "/a/b/c", "/a/b/c/z.csv", "/a/b/y.txt", "/a/x.txt"]),
        ("/a/", ["/a/b", "/a/x.txt"]),
        ("/a/b/", ["/a/b/c", "/a/b/y.txt"]),
        ("/a", ["/a"]),
        ("/a/b/../x.txt", ["/a/x.txt"]),
        ("/nope/*", []),
        ("/a/*.csv", []),
    ],
)
def test_glob(tree: Pond, pattern: str, expected: list[str]) -> None:
    assert [e.path for e in tree.list(pattern)] == expected


def test_list_default_is_everything_but_root(tree: Pond) -> None:
    everything = [e.path for e in tree.list("/**/*")]
    assert [e.path for e in tree.list()] == everything
    assert everything == [
        "/a",
        "/a/b",
        "/a/b/c",
        "/a/b/c/z.csv",
        "/a/b/y.txt",
        "/a/x.txt",
        "/top.txt",
    ]
    assert "/" in [e.path for e in tree.list("/**")]


def test_glob_escaping_root_is_an_error(tree: Pond) -> None:
    with pytest.raises(InvalidPathError):
        tree.list("/../*")


def test_the_cli_purges_arrows_freed_pages_at_once_and_the_library_sets_nothing() -> None:
    """Arrow's allocator (mimalloc) keeps freed pages for a second by default; a
    long-lived pond's bursts then stacked up (bench 12). The CLI's entry point sets
    MIMALLOC_PURGE_DELAY to 0 before anything loads pyarrow, and keeps a value the user
    chose; importing and using the library leaves the environment alone (an embedder
    sets it itself, docs/developer/process-settings.md)."""
    import os
    import subprocess
    import sys

    library = (
        "import os, duckpond, duckpond.pond, pyarrow; duckpond.Pond; "
        "print(os.environ.get('MIMALLOC_PURGE_DELAY'))"
    )
    # the console script's entry point, with click's part replaced by a probe
    cli = (
        "import os, sys; from duckpond.cli import launch, main; "
        "main.main = lambda: print(os.environ.get('MIMALLOC_PURGE_DELAY'), "
        "'pyarrow' in sys.modules); sys.argv = ['pond', 'list']; launch.main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}

    def run(code: str) -> str:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run(library) == "None"
    assert run(cli) == "0 False"
    env["MIMALLOC_PURGE_DELAY"] = "250"
    assert run(cli) == "250 False"
    env["MIMALLOC_VERBOSE"] = "1"  # mimalloc prints its options as it starts
    del env["MIMALLOC_PURGE_DELAY"]
    loads = cli.replace("print(", "__import__('pyarrow').array([1]) and print(")
    out = subprocess.run([sys.executable, "-c", loads], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if "mimalloc" in out.stderr:  # pyarrow built with mimalloc: it took the setting
        assert "option 'purge_delay': 0" in out.stderr
