"""Issue 6 items 2, 6, 7: the lock file is never followed, queries are bounded in memory and
time, YAML aliases cannot explode, error messages never echo a huge value, and a write
refuses names and inputs that would break later. (The CLI bad-input table in
test_cli_errors.py covers the same rules through the real CLI.)"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

import pyarrow as pa
import pytest
from conftest import run_pond
from test_cli_errors import _alias_bomb, check_error, state

from duckpond.errors import FactoryError, FormatError, InvalidPathError, PondError, QueryError, clip
from duckpond.factories.base import parse_config
from duckpond.lock import WriteLock, read_holder
from duckpond.paths import check_new_name
from duckpond.pond import Pond
from duckpond.query import limits

VICTIM = b"precious contents that a write must never touch\n"


# -- item 2: the lock file ------------------------------------------------------------------
def _plant(pond_dir: Path, kind: str, victim: Path) -> None:
    lock = pond_dir / "write.lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling-symlink":
        lock.symlink_to(victim.parent / "created-through-the-link")
    elif kind == "hardlink":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("symlink", "symbolic link"),
        ("dangling-symlink", "symbolic link"),
        ("hardlink", "hard links"),
        ("fifo", "not a regular file"),
        ("directory", "write.lock"),
    ],
)
def test_lock_file_is_never_followed(pond_dir: Path, tmp_path: Path, kind: str, text: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    run_pond("mkdir", "/before", pond=pond_dir)
    before = state(pond_dir)
    _plant(pond_dir, kind, victim)
    proc = run_pond("mkdir", "/x", pond=pond_dir, check=None, timeout=60)
    assert text in check_error(proc, 1)
    assert victim.read_bytes() == VICTIM
    assert not (tmp_path / "created-through-the-link").exists()
    assert state(pond_dir) == before
    if kind != "directory":
        assert read_holder(pond_dir / "write.lock") is None  # the note is not read through it


def test_lock_refusal_in_library(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    (tmp_path / "write.lock").symlink_to(victim)
    with pytest.raises(PondError, match="symbolic link"):
        WriteLock(tmp_path / "write.lock").acquire()
    assert victim.read_bytes() == VICTIM


# -- item 6: query bounds ---------------------------------------------------------------------
def test_sort_larger_than_the_memory_limit_spills(pond_dir: Path) -> None:
    """48 MB of values sorted under a 32 MiB limit: only possible by spilling to disk."""
    pond = Pond.open(pond_dir)
    t = pond.sql(
        "SELECT range AS value FROM range(6000000) ORDER BY value DESC", memory_limit=32 << 20
    )
    assert t.num_rows == 6_000_000
    assert t.column(0)[0].as_py() == 5_999_999 and t.column(0)[-1].as_py() == 0
    with pytest.raises(QueryError, match="memory limit of 32M"):
        pond.sql("SELECT array_agg(range) FROM range(10000000)", memory_limit=32 << 20)


def test_library_timeout_and_signal_state(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    fired: list[int] = []

    def mine(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    old = signal.signal(signal.SIGALRM, mine)
    try:
        with pytest.raises(QueryError, match="time limit of 0.5s"):
            pond.control_sql("SELECT count(*) FROM range(1, 100000000000)", timeout=0.5)
        # the caller's handler is back, and a quick query is not disturbed
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no stray alarm is set
        assert pond.sql("SELECT 1 AS one", timeout=60).to_pylist() == [{"one": 1}]
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert pond.sql("SELECT 1 AS one", timeout=1e300).num_rows == 1  # as good as none
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert fired == []  # and none fired
    finally:
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("1.5g", 3 << 29),
        ("64MiB", 64 << 20),
        ("0", None),
        ("9" * 30 + "T", 1 << 60),
    ],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert limits.parse_size(text) == size


def test_limit_options_are_documented_with_their_defaults(pond_dir: Path) -> None:
    for cmd in ("cat", "control"):
        out = run_pond(cmd, "--help").stdout.decode()
        assert "--memory-limit SIZE" in out and "--timeout SECONDS" in out
        assert "2G" in out and "600" in out


# -- item 6: YAML aliases and echoed values -------------------------------------------------
def test_alias_bomb_is_refused_before_it_is_built() -> None:
    bomb = _alias_bomb(levels=9)  # 10**9 strings if expanded
    tracemalloc.start()
    try:
        with pytest.raises(FactoryError, match="aliases") as e:
            parse_config(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the check walks the composed graph: tens of KB
    assert len(str(e.value)) < 200


def test_yaml_aliases_within_the_bound_still_work() -> None:
    cfg = parse_config("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\nlist: [*b, *b]\n")
    assert cfg == {"base": {"x": 1}, "other": {"x": 1, "y": 2}, "list": [{"x": 1}, {"x": 1}]}


@pytest.mark.parametrize(
    ("text", "match"),
    [("a: &x [1, *x]\n", "refers to itself"), ("[" * 3_000, "nested too deeply")],
)
def test_hostile_yaml_shapes(text: str, match: str) -> None:
    with pytest.raises(FactoryError, match=match):
        parse_config(text)


def test_yaml_error_echo_is_clipped() -> None:
    with pytest.raises(FactoryError) as e:
        parse_config("a: " + "x" * 1_000_000 + "\n b: [")
    assert len(str(e.value)) < 500


def test_clip() -> None:
    assert clip("short") == "short"
    assert clip("a\nb\0c\td") == "a\\nb\\x00c\\td"
    long = clip("y" * 10_000, 50)
    assert long.startswith("y" * 50 + "...") and "10,000 chars" in long
    assert len(str(PondError("z" * 10_000_000))) < 2_100


# -- item 7: names, duplicate columns, time columns -----------------------------------------
@pytest.mark.parametrize(
    "name",
    ["a\nb", "tab\there", "nul\0", "del\x7f", "c1\x85", "sep\u2028", "x" * 256, "\u00e9" * 128],
)
def test_bad_new_names(name: str) -> None:
    with pytest.raises(InvalidPathError):
        check_new_name(name)


@pytest.mark.parametrize("name", ["plain", "x" * 255, "\u00e9" * 127, "日本語", "sp ace"])
def test_good_new_names(name: str) -> None:
    check_new_name(name)


def test_every_write_path_checks_names(pond_dir: Path, tmp_path: Path) -> None:
    pond = Pond.open(pond_dir)
    host = tmp_path / "ok.csv"
    host.write_text("a\n1\n")
    writes = [
        lambda tx: tx.mkdir("/bad\nname"),
        lambda tx: tx.mkdir("/p\n/q", parents=True),
        lambda tx: tx.write_bytes("/bad\nname", b"x"),
        lambda tx: tx.write_host_file("/bad\nname", host),
        lambda tx: tx.write_csv_file("/" + "n" * 300, host),
        lambda tx: tx.symlink("/bad\nlink", "/target"),
        lambda tx: tx.mknod("/bad\nnode", "test-executor", "file:data:dynamic", b"{}"),
    ]
    before = state(pond_dir)
    for write in writes:
        with pytest.raises(InvalidPathError), pond.transaction() as tx:
            write(tx)
    assert state(pond_dir) == before


def test_duplicate_columns_are_refused_for_every_table_write(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(FormatError, match="two columns named 'a'"), pond.transaction() as tx:
        tx.write_table("/t", dup)


def test_time_column_error_names_the_column(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    text_time = pa.table({"time": ["yesterday", "today"], "v": [1, 2]})
    with pytest.raises(FormatError, match="column 'time' holds text values"):
        with pond.transaction() as tx:
            tx.write_series("/s", text_time)
    with pytest.raises(FormatError, match=r"no column is named .* \(columns: a, b;"):
        with pond.transaction() as tx:
            tx.write_series("/s", pa.table({"a": [1], "b": ["x"]}))
