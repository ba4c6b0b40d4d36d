"""`pond rm`, `mv`, `revert`, `diff`, `log` (issue 22 item 1), through the CLI and the
library: each write one recorded transaction, every earlier version still readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from conftest import run_pond

from duckpond.dynamic import Resolver
from duckpond.pond import Pond

CSV_A = "time,station,temp\n" + "".join(f"2024-01-01T{h:02d}:00:00Z,EWR,{h}.5\n" for h in range(6))
CSV_B = "time,station,temp\n" + "".join(
    f"2024-01-02T{h:02d}:00:00Z,JFK,{10 + h}.0\n" for h in range(4)
)
COUNT_SQL = "SELECT station, count(*) AS n FROM source GROUP BY station ORDER BY station"


def cli_json(pond: Path, *args: object, check: bool | int = True) -> Any:
    return json.loads(run_pond(*args, "--format", "json", pond=pond, check=check).stdout)


def counts(pond: Path, path: str) -> list[dict[str, Any]]:
    return cli_json(pond, "cat", path, "--sql", COUNT_SQL)  # type: ignore[no-any-return]


def error_of(pond: Path, *args: object) -> str:
    proc = run_pond(*args, pond=pond, check=1)
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr.decode(), proc.stderr
    return lines[0]


def host_csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"host+csv+series://{path}"


def test_revert_of_a_doubled_copy_restores_series_derived_nodes_and_history(
    tmp_path: Path, pond_dir: Path
) -> None:
    """The issue's scenario: a CSV copied into a series twice doubles a station; reverting
    the second copy gives the counts back, in the series and in the nodes derived from it."""
    a, b = host_csv(tmp_path, "a.csv", CSV_A), host_csv(tmp_path, "b.csv", CSV_B)
    # set-up through the library calls `pond mkdir`, `copy` and `mknod` make (one
    # transaction each, the same recorded arguments); revert, the subject, is a process
    pond = Pond.open(pond_dir)
    with pond.transaction(["pond", "mkdir", "/weather"]) as tx:  # txn 2
        tx.mkdir("/weather")
    pond.copy_in([a], "/weather/all")  # txn 3
    pond.copy_in([b], "/weather/all")  # txn 4
    pond.copy_in([b], "/weather/all")  # txn 5: the mistake
    derived = {
        "patterns": {"w": "series:///weather/all"},
        "query": "SELECT time, station, temp FROM w",
    }
    reduce = {
        "in_pattern": "series:///weather/all",
        "out_pattern": "all",
        "time_column": "time",
        "resolutions": ["1d"],
        "aggregations": [{"type": "count", "columns": ["temp"]}],
    }
    for name, factory, config in (
        ("/derived", "sql-derived-series", derived),
        ("/reduced", "temporal-reduce", reduce),
    ):
        cfg = tmp_path / f"{name[1:]}.yaml"
        cfg.write_text(yaml.safe_dump(config))
        pond.mknod(factory, name, cfg.read_bytes())  # txns 6, 7
    assert counts(pond_dir, "/weather/all") == [
        {"station": "EWR", "n": 6},
        {"station": "JFK", "n": 8},
    ]
    day_counts = 'SELECT count(*) AS days, sum("temp.count") AS n FROM source'
    reduced = "/reduced/all/res=1d.series"
    assert cli_json(pond_dir, "cat", reduced, "--sql", day_counts) == [{"days": 2, "n": 14}]

    out = run_pond("revert", "5", pond=pond_dir).stdout.decode()
    assert out == "txn 8 reverts txn 5\nversion   /weather/all v4 (txn 8): drops version(s) 3\n"
    want = [{"station": "EWR", "n": 6}, {"station": "JFK", "n": 4}]
    assert counts(pond_dir, "/weather/all") == want
    assert counts(pond_dir, "/derived") == want
    assert cli_json(pond_dir, "cat", reduced, "--sql", day_counts) == [{"days": 2, "n": 10}]
    # history kept: the reverted version is still readable on its own
    pond = Pond.open(pond_dir)
    assert [v.version for v in pond.versions("/weather/all")] == [1, 2, 3, 4]
    assert pond.read_table("/weather/all", version=3).num_rows == 4
    d = pond.describe("/weather/all")
    assert [f.name for f in d.schema or []] == ["time", "station", "temp"]
    # reverting the revert brings the copy back
    run_pond("revert", "8", pond=pond_dir)
    assert counts(pond_dir, "/weather/all")[1] == {"station": "JFK", "n": 8}
    assert "no problems found" in run_pond("fsck", pond=pond_dir).stdout.decode()


def test_rm_files_dirs_factory_nodes_and_jobs(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/d/a", b"alpha", parents=True)
        tx.write_bytes("/d/sub/b", b"beta", parents=True)
        tx.write_bytes("/keep", b"k")
    job = yaml.safe_dump({"message": "hi", "write_path": "/ran"}).encode()
    pond.mknod("test-executor", "/etc/system.d/job", job)  # txn 3, its job writes /ran
    assert pond.read_bytes("/ran") == b"hi"
    err = error_of(pond_dir, "rm", "/d")
    assert err == "error: is a directory: /d (use -r)"
    run_pond("rm", "/etc/system.d/job", pond=pond_dir)
    pond.refresh()
    rm_seq = pond.data.last_txn_seq()
    run_pond("rm", "-r", "/d", "/ran", pond=pond_dir)
    names = [e["path"] for e in cli_json(pond_dir, "list", "/**")]
    assert names == ["/", "/etc", "/etc/system.d", "/keep"]
    # the job is gone: this write runs no post-commit task
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/keep", b"k2")
    assert "/ran" not in [e.path for e in pond.list("/**")]
    # reverting the rm -r puts the tree back, contents and all
    run_pond("revert", str(rm_seq + 1), pond=pond_dir)
    pond = Pond.open(pond_dir)
    assert pond.read_bytes("/d/a") == b"alpha" and pond.read_bytes("/d/sub/b") == b"beta"
    assert pond.read_bytes("/ran") == b"hi"


def test_mv_keeps_identity_and_versions(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    for i in range(3):
        with pond.transaction() as tx:
            tx.write_bytes("/a/f", f"v{i + 1}".encode(), parents=True)
    with pond.transaction() as tx:
        tx.mkdir("/b")
        tx.write_bytes("/b/g", b"other")
    node = pond.lookup("/a/f")
    assert node is not None
    run_pond("mv", "/a/f", "/b/", pond=pond_dir)  # into a directory: /b/f
    pond = Pond.open(pond_dir)
    moved = pond.lookup("/b/f")
    assert moved is not None and moved.node_id == node.node_id
    assert [pond.read_bytes("/b/f", version=v) for v in (1, 2, 3)] == [b"v1", b"v2", b"v3"]
    assert pond.lookup("/a/f") is None
    assert (
        error_of(pond_dir, "mv", "/b/f", "/b/g") == "error: /b/g exists (use --force to replace it)"
    )
    assert (
        error_of(pond_dir, "mv", "/b", "/b/inner") == "error: cannot move /b into itself (/b/inner)"
    )
    run_pond("mv", "-f", "/b/f", "/b/g", pond=pond_dir)
    pond = Pond.open(pond_dir)
    assert pond.read_bytes("/b/g") == b"v3" and pond.lookup("/b/g").node_id == node.node_id  # type: ignore[union-attr]
    run_pond("mv", "/b", "/c", pond=pond_dir)  # a directory
    pond = Pond.open(pond_dir)
    assert [e.path for e in pond.list("/**")] == ["/", "/a", "/c", "/c/g"]
    # a file moved back where its older versions are stored gets no duplicate versions
    pond.mv("/c/g", "/a/f")
    pond.mv("/a/f", "/c/g")
    assert [v.version for v in Pond.open(pond_dir).versions("/c/g")] == [1, 2, 3]
    log = cli_json(pond_dir, "log", "/c/g")
    assert [(e["txn_seq"], "mv" in e["command"]) for e in log] == [
        (10, True),  # named /c/g again
        (9, True),  # /c/g removed (moved to /a/f)
        (7, True),  # named /b/g (mv -f)
        (6, True),  # named /b/f
        (4, False),  # its versions
        (3, False),
        (2, False),
    ]
    assert log[0]["changes"] == ["named /c/g"]
    assert "no problems found" in run_pond("fsck", pond=pond_dir).stdout.decode()


def test_mv_of_a_factory_node(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_series(
            "/raw/s",
            pa.table({"timestamp": pa.array([0, 1], pa.timestamp("us")), "v": [1.0, 2.0]}),
            parents=True,
        )
    cfg = {"patterns": {"s": "series:///raw/s"}, "query": "SELECT timestamp, v * 2 AS v2 FROM s"}
    pond.mknod("sql-derived-series", "/d/x", yaml.safe_dump(cfg).encode())
    pond.mv("/d/x", "/y")
    node = Resolver.for_pond(Pond.open(pond_dir), cache=False).require("/y")
    assert node.scan().column("v2").to_pylist() == [2.0, 4.0]


def test_revert_table_write_mknod_and_conflicts(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:  # txn 2
        tx.write_table("/t", pa.table({"k": [1, 2]}))
    with pond.transaction() as tx:  # txn 3
        tx.write_table("/t", pa.table({"k": [9]}))
    with pond.transaction() as tx:  # txn 4
        tx.write_table("/t", pa.table({"k": [7, 7, 7]}))
    err = error_of(pond_dir, "revert", "3")
    assert err == (
        "error: cannot revert transaction 3: later transactions changed the same nodes: "
        "txn 4 (python): /t (revert those first, or use --force)"
    )
    out = cli_json(pond_dir, "revert", "3", "--force")
    assert out["txn_seq"] == 5 and out["versions"] == [
        {
            "path": "/t",
            "version": 4,
            "txn_seq": 5,
            "file_type": "file:table:physical",
            "size": out["versions"][0]["size"],
            "rows": 2,
            "reverts": None,
        }
    ]
    assert Pond.open(pond_dir).read_table("/t").column("k").to_pylist() == [1, 2]
    cfg = yaml.safe_dump({"patterns": {"t": "table:///t"}, "query": "SELECT k FROM t"})
    pond.mknod("sql-derived-table", "/dt", cfg.encode())  # txn 6
    run_pond("revert", "6", pond=pond_dir)
    assert [e.path for e in Pond.open(pond_dir).list("/**")] == ["/", "/t"]


def test_revert_refuses_what_is_not_a_user_write(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    job = yaml.safe_dump({"message": "hi", "write_path": "/ran"}).encode()
    pond.mknod("test-executor", "/etc/system.d/job", job)  # txn 2; its job: txn 3
    before = pond.data.version()
    assert error_of(pond_dir, "revert", "3") == (
        "error: transaction 3 is not a user write: post-commit job /etc/system.d/job wrote "
        "it after transaction 2 (revert that one, or `pond rm` the job)"
    )
    assert error_of(pond_dir, "revert", "1") == (
        "error: transaction 1 created the pond: it cannot be reverted"
    )
    assert error_of(pond_dir, "revert", "42") == "error: no transaction 42 (the newest is 3)"
    pond.refresh()
    assert pond.data.version() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rm", "/missing"), "error: no such file or directory: /missing"),
        (("rm", "-r", "/"), "error: cannot remove the root directory /"),
        (("rm", "d/a"), "error: not an absolute pond path: d/a"),
        (("mv", "/missing", "/x"), "error: no such file or directory: /missing"),
        (("mv", "/d", "/d/e"), "error: cannot move /d into itself (/d/e/d)"),
        (("mv", "/d/a", "/nodir/a"), "error: no such directory: /nodir"),
        (("revert", "99"), "error: no transaction 99 (the newest is 2)"),
        (("diff", "3", "1"), "error: no transaction 3 (the newest is 2)"),
        (("log", "/missing"), "error: no such file or directory: /missing"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_pond_unchanged(
    pond_dir: Path, args: tuple[str, ...], message: str
) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/d/a", b"a", parents=True)
        tx.mkdir("/d/e")
    before = [(e.path, e.version) for e in pond.list("/**")]
    assert error_of(pond_dir, *args) == message
    after = Pond.open(pond_dir)
    assert [(e.path, e.version) for e in after.list("/**")] == before
    assert after.data.last_txn_seq() == 2


def test_diff_lists_entries_and_versions(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    t = pa.table({"timestamp": pa.array([0, 1, 2], pa.timestamp("us")), "v": [1, 2, 3]})
    with pond.transaction() as tx:  # txn 2
        tx.write_series("/s", t)
        tx.write_bytes("/old", b"x")
        tx.write_bytes("/gone", b"y")
    with pond.transaction() as tx:  # txn 3
        tx.write_series("/s", t.slice(0, 2))
        tx.write_bytes("/new", b"12345")
    pond.mv("/old", "/renamed")  # txn 4
    pond.rm("/gone")  # txn 5
    d = cli_json(pond_dir, "diff", "2")
    assert d["start"] == 2 and d["end"] == 5
    assert d["entries"] == [
        {"kind": "removed", "path": "/gone", "file_type": "file:data:physical", "from_path": None},
        {"kind": "added", "path": "/new", "file_type": "file:data:physical", "from_path": None},
        {
            "kind": "moved",
            "path": "/renamed",
            "file_type": "file:data:physical",
            "from_path": "/old",
        },
    ]
    assert [
        (v["path"], v["version"], v["txn_seq"], v["size"], v["rows"]) for v in d["versions"]
    ] == [
        ("/new", 1, 3, 5, None),
        ("/s", 2, 3, d["versions"][1]["size"], 2),
    ]
    text = run_pond("diff", "4", "5", pond=pond_dir).stdout.decode()
    assert text == "txn 4 -> 5\nremoved   /gone  file:data:physical\n"


def test_revert_of_mknod_overwrite_restores_the_old_config(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_table("/t", pa.table({"k": [1, 2, 3]}))
    first = yaml.safe_dump({"patterns": {"t": "table:///t"}, "query": "SELECT k FROM t"})
    pond.mknod("sql-derived-table", "/q", first.encode())  # txn 3
    second = yaml.safe_dump({"patterns": {"t": "table:///t"}, "query": "SELECT k * 10 AS k FROM t"})
    pond.mknod("sql-derived-table", "/q", second.encode(), overwrite=True)  # txn 4
    q = "SELECT sum(k) AS s FROM source"
    assert cli_json(pond_dir, "cat", "/q", "--sql", q) == [{"s": 60}]
    run_pond("revert", "4", pond=pond_dir)
    assert cli_json(pond_dir, "cat", "/q", "--sql", q) == [{"s": 6}]
    after = Pond.open(pond_dir)
    assert [v.version for v in after.versions("/q")] == [1, 2, 3]  # the old config again, as v3
    assert after.fs.content(after.require("/q").row) == first.encode()


def test_the_site_shows_a_reverted_append_gone(tmp_path: Path) -> None:
    """A rebuild after the revert shows the series as it was before the append."""
    from site_pond import make_pond

    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    later = pa.table(
        {
            "timestamp": pa.array([1_704_931_200_000_000], pa.timestamp("us", tz="UTC")),
            "level": pa.array([42.5]),
        }
    )
    with pond.transaction() as tx:
        tx.write_series("/wells/north", later)
        seq = tx.txn_seq
    pond.site_build(out)
    assert "level = 42.5" in (out / "index.html").read_text()
    pond.revert(seq)
    pond.site_build(out)
    index = (out / "index.html").read_text()
    assert "level = 42.5" not in index and "2024-01-10 23:59:00 UTC" in index
    assert "2024-01-11 00:00:00 UTC" not in index
