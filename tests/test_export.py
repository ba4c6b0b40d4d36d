"""`pond export` through the real CLI: the layout, what a re-run redoes, removals, a killed
export, and bad input (one line, nothing written)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PondTemplates, run_pond
from export_helpers import add_version, build_pond48, normalized, parquet_files, pond_rows

from duckpond.pond import Pond


@pytest.fixture
def pond48(pond_templates: PondTemplates, tmp_path: Path) -> Path:
    """A pond with /s/temp: 48 hourly rows over 2024-01-01 and 02, in two versions (a copy
    of one built per test process by the CLI)."""
    return pond_templates.copy("pond48", tmp_path / "pond", build_pond48)


def read_hive(out: Path) -> list[dict[str, object]]:
    files = sorted(out.rglob("*.parquet"))
    return normalized(pa.concat_tables([pq.read_table(f, partitioning=None) for f in files]))


def test_hive_layout_by_day_holds_the_ponds_rows(pond48: Path, tmp_path: Path) -> None:
    """DuckPond's port test: a 48-row hourly series over two days, by year, month, day."""
    out = tmp_path / "out"
    proc = run_pond("export", "/s/temp", "--dir", out, "--temporal", "year,month,day", pond=pond48)
    assert proc.stdout.decode().splitlines() == [
        f"written    /s/temp: 48 rows, 2 files, 2 partitions -> {out}/s/temp",
        f"pond txn_seq 4 in file://{out} (parquet)",
    ]
    assert parquet_files(out) == {
        "s/temp/year=2024/month=1/day=1/data.parquet": 24,
        "s/temp/year=2024/month=1/day=2/data.parquet": 24,
    }
    # partition values live in the directory names only (the Hive convention)
    one = pq.read_table(out / "s/temp/year=2024/month=1/day=2/data.parquet", partitioning=None)
    assert one.column_names == ["timestamp", "v", "f", "name"]
    assert one.column("v").to_pylist() == list(range(24, 48))
    assert read_hive(out / "s") == pond_rows(pond48, "/s/temp")
    assert sorted(os.listdir(out)) == ["_pond_export.json", "_pond_export.json.lock", "s"]


def test_default_partitions_are_year_and_month_and_none_is_one_file(
    pond48: Path, tmp_path: Path
) -> None:
    run_pond("export", "/s/temp", "--dir", tmp_path / "a", pond=pond48)
    assert parquet_files(tmp_path / "a") == {"s/temp/year=2024/month=1/data.parquet": 48}
    run_pond("export", "/s/temp", "--dir", tmp_path / "b", "--temporal", "none", pond=pond48)
    assert parquet_files(tmp_path / "b") == {"s/temp/data.parquet": 48}


def test_a_rerun_redoes_only_changed_series(pond48: Path, tmp_path: Path) -> None:
    add_version(pond48, tmp_path, "/s/other", 0, 5)
    out = tmp_path / "out"
    args = ("export", "/s/*", "--dir", out, "--temporal", "year,month,day")
    run_pond(*args, pond=pond48)
    kept = out / "s/other/year=2024/month=1/day=1/data.parquet"
    inode = kept.stat().st_ino
    again = run_pond(*args, "--json", pond=pond48)
    status = {s["path"]: s["status"] for s in json.loads(again.stdout)["series"]}
    assert status == {"/s/other": "unchanged", "/s/temp": "unchanged"}
    add_version(pond48, tmp_path, "/s/temp", 48, 3)  # day 3
    third = json.loads(run_pond(*args, "--json", pond=pond48).stdout)
    assert [(s["path"], s["status"], s["rows"], s["partitions"]) for s in third["series"]] == [
        ("/s/other", "unchanged", 5, 1),
        ("/s/temp", "written", 51, 3),
    ]
    assert kept.stat().st_ino == inode  # not rewritten
    assert read_hive(out / "s/temp") == pond_rows(pond48, "/s/temp")
    assert parquet_files(out / "s/temp")["year=2024/month=1/day=3/data.parquet"] == 3
    # --rebuild rewrites everything
    forced = json.loads(run_pond(*args, "--json", "--rebuild", pond=pond48).stdout)
    assert [s["status"] for s in forced["series"]] == ["written", "written"]


def test_a_series_gone_from_the_pond_is_removed_from_the_export(
    pond48: Path, tmp_path: Path
) -> None:
    add_version(pond48, tmp_path, "/s/other", 0, 5)
    out = tmp_path / "out"
    run_pond("export", "/s/*", "--dir", out, pond=pond48)
    pond = Pond.open(pond48)
    with pond.transaction(["rm"]) as tx:
        tx.staged.remove("/s/other")
    proc = run_pond("export", "/s/*", "--dir", out, pond=pond48)
    assert proc.stdout.decode().splitlines()[:2] == [
        "removed    /s/other",
        f"unchanged  /s/temp: 48 rows, 1 files, 1 partitions -> {out}/s/temp",
    ]
    assert parquet_files(out) == {"s/temp/year=2024/month=1/data.parquet": 48}
    assert sorted(json.loads((out / "_pond_export.json").read_text())["series"]) == ["/s/temp"]


def test_a_table_is_exported_whole(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    run_pond("init", pond=root)
    csv = tmp_path / "t.csv"
    csv.write_text("site,depth\nnorth,3\nsouth,7\n")
    run_pond("copy", f"host+csv+table://{csv}", "/sites", pond=root)
    run_pond("export", "/sites", "--dir", tmp_path / "out", pond=root)
    table = pq.read_table(tmp_path / "out/sites/data.parquet")
    assert table.to_pylist() == [{"site": "north", "depth": 3}, {"site": "south", "depth": 7}]


@pytest.mark.parametrize("point", ["export_staged", "export_between_renames"])
def test_a_killed_reexport_never_leaves_half_an_export(
    pond48: Path, tmp_path: Path, point: str
) -> None:
    """Killed after the new tree is staged, the previous export is whole; killed between
    the renames, the series is absent (never a mix). The next run puts it right."""
    out = tmp_path / "out"
    args = ("export", "/s/temp", "--dir", out, "--temporal", "year,month,day")
    run_pond(*args, pond=pond48)
    before = read_hive(out / "s/temp")
    add_version(pond48, tmp_path, "/s/temp", 48, 24)
    proc = run_pond(*args, pond=pond48, env={"POND_CRASH_AT": point}, check=False)
    assert proc.returncode == -9
    if point == "export_staged":
        assert read_hive(out / "s/temp") == before
    else:
        assert not (out / "s/temp").exists()
    assert (out / "_pond_export_tmp").is_dir()  # the staged tree, left by the crash
    # the killed run's files are all below the staging directory, which readers can skip
    staged = [p for p in parquet_files(out) if p.startswith("_pond_export_tmp/")]
    new = [p for p in staged if ".old/" not in p]
    assert (len(new), len(staged) - len(new)) == ((3, 0) if point == "export_staged" else (3, 2))
    proc = run_pond(*args, pond=pond48)
    assert proc.stdout.decode().startswith("written    /s/temp: 72 rows, 3 files")
    assert read_hive(out / "s/temp") == pond_rows(pond48, "/s/temp")
    assert not (out / "_pond_export_tmp").exists()


def test_delta_reexport_is_one_overwrite_commit(pond48: Path, tmp_path: Path) -> None:
    """Each export of a series is one Delta version; the previous stays readable (time
    travel), so a reader in the middle of a re-export keeps its version."""
    from deltalake import DeltaTable

    out = tmp_path / "out"
    args = ("export", "/s/temp", "--dir", out, "--format", "delta", "--temporal", "year,month,day")
    run_pond(*args, pond=pond48)
    add_version(pond48, tmp_path, "/s/temp", 48, 24)
    run_pond(*args, pond=pond48)
    dt = DeltaTable(str(out / "s/temp"))
    assert dt.version() == 1
    assert dt.metadata().partition_columns == ["year", "month", "day"]
    meta = [h.get("pond_txn_seq") for h in dt.history()]
    assert meta == ["5", "4"]  # newest first: the pond version each export read
    assert sorted(Path(u).parent.name for u in dt.file_uris()) == ["day=1", "day=2", "day=3"]
    assert delta_count(dt) == 72
    dt.load_as_version(0)
    assert delta_count(dt) == 48


def delta_count(dt: object) -> int:
    from deltalake import QueryBuilder

    result = QueryBuilder().register("t", dt).execute("select count(*) as n from t").read_all()
    return int(result.column("n")[0].as_py())


ERRORS = [
    (("/nope",), 1, "no such file or directory: /nope"),
    (("/s",), 1, "cannot export /s: a directory (export series and tables)"),
    (("/x/*",), 1, "no series or table matches /x/*"),
    (("/s/temp", "--temporal", "month"), 2, "--temporal 'month': use a prefix of year,month,"),
    (("/s/temp", "--temporal", "year,day"), 2, "--temporal 'year,day': use a prefix"),
    (("/s/temp", "--format", "csv"), 2, "Invalid value for '--format'"),
]


@pytest.mark.parametrize(("args", "code", "message"), ERRORS)
def test_bad_input_is_one_line_and_writes_nothing(
    pond48: Path, tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    out = tmp_path / "out"
    proc = run_pond("export", *args, "--dir", out, pond=pond48, check=code)
    err = proc.stderr.decode()
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_refuses_raw_files_and_directories_inside_the_pond(pond48: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hi\n")
    run_pond("copy", f"host://{note}", "/s/note", pond=pond48)
    proc = run_pond("export", "/s/note", "--dir", tmp_path / "out", pond=pond48, check=1)
    assert proc.stderr.decode() == (
        "error: cannot export /s/note: not a table or series (export series and tables)\n"
    )
    # a glob takes the series among other entries
    run_pond("export", "/s/*", "--dir", tmp_path / "out", pond=pond48)
    assert list(parquet_files(tmp_path / "out")) == ["s/temp/year=2024/month=1/data.parquet"]
    before = sorted(str(p) for p in pond48.rglob("*"))
    proc = run_pond("export", "/s/temp", "--dir", pond48 / "exports", pond=pond48, check=1)
    assert proc.stderr.decode() == (
        f"error: the export directory is inside the pond at {pond48}: export somewhere else\n"
    )
    assert sorted(str(p) for p in pond48.rglob("*")) == before


def test_never_overwrites_what_no_export_wrote(pond48: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "s/temp").mkdir(parents=True)
    (out / "s/temp/mine.txt").write_text("keep me\n")
    proc = run_pond("export", "/s/temp", "--dir", out, pond=pond48, check=1)
    assert proc.stderr.decode() == (
        f"error: {out}/s/temp exists and no earlier export wrote it: "
        "move it away or export elsewhere\n"
    )
    assert (out / "s/temp/mine.txt").read_text() == "keep me\n"


def test_refuses_the_export_directory_of_another_pond(pond48: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pond("export", "/s/temp", "--dir", out, pond=pond48)
    other = tmp_path / "other"
    run_pond("init", pond=other)
    add_version(other, tmp_path, "/t/x", 0, 2)
    proc = run_pond("export", "/t/x", "--dir", f"file://{out}", pond=other, check=1)
    pond_id = json.loads((out / "_pond_export.json").read_text())["pond_id"]
    assert proc.stderr.decode() == (
        f"error: file://{out} holds the export of another pond ({pond_id}): "
        "export into a directory of its own\n"
    )
    assert not (out / "t").exists()


def test_a_derived_series_exports_and_follows_its_inputs(pond48: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "double.yaml"
    cfg.write_text(
        'patterns: {t: "/s/temp"}\nquery: "SELECT timestamp, v * 2 AS v2 FROM t"\n'
        "time_column: timestamp\n"
    )
    run_pond("mknod", "sql-derived-series", "/d/double", "--config-path", cfg, pond=pond48)
    out = tmp_path / "out"
    args = ("export", "/d/double", "--dir", out, "--json")
    first = json.loads(run_pond(*args, pond=pond48).stdout)["series"]
    assert [(s["status"], s["rows"], s["partitions"]) for s in first] == [("written", 48, 1)]
    want = pond_rows(pond48, "/d/double")
    assert [r["v2"] for r in want] == [2 * i for i in range(48)]
    assert read_hive(out / "d/double") == want
    assert json.loads(run_pond(*args, pond=pond48).stdout)["series"][0]["status"] == "unchanged"
    add_version(pond48, tmp_path, "/s/temp", 48, 1)  # its input changed: so did it
    again = json.loads(run_pond(*args, pond=pond48).stdout)["series"]
    assert [(s["status"], s["rows"]) for s in again] == [("written", 49)]
    assert read_hive(out / "d/double") == pond_rows(pond48, "/d/double")
