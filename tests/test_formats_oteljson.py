"""`oteljson` end to end through the CLI: host and pond files, every compression, globs with
schemas merged by name, malformed lines counted, wrong input named by file and line, copy
into a series, factory inputs, and the parse cache (issue 20 item 1)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from conftest import run_pond
from format_helpers import COMPRESS, cat_json
from otlp_lines import SECOND, T0, lines_file, request_line

from duckpond import formats
from duckpond.formats import Format
from duckpond.pond import Pond

# study 034/038: three requests a minute apart
PUMPS = [
    (T0, {"pump1_amps": 3.2, "pump2_amps": 5.9, "tank_level": 12.1}),
    (T0 + 60 * SECOND, {"pump1_amps": 5.3, "pump2_amps": 6.1, "tank_level": 12.2}),
    (T0 + 120 * SECOND, {"pump1_amps": 2.05, "pump2_amps": 6, "tank_level": 12.3}),
]
SUMMARY = (
    "SELECT count(*) AS n, round(avg(tank_level), 4) AS avg_tank, max(pump1_amps) AS max_p1, "
    "max(pump2_amps) AS max_p2, round(avg(pump1_amps), 4) AS avg_p1, "
    "min(timestamp) AS first FROM source"
)
EXPECTED = {
    "n": 3,
    "avg_tank": 12.2,
    "max_p1": 5.3,
    "max_p2": 6.1,
    "avg_p1": 3.5167,
    "first": "2023-11-14T22:13:20Z",
}


def summary(url: str, pond: Path | None = None) -> dict[str, object]:
    row = cat_json(url, "--sql", SUMMARY, pond=pond)[0]
    # a whole second, however many zero fraction digits the engine prints (DuckDB reads a
    # time zone's nanoseconds as microseconds)
    row["first"] = re.sub(r"\.0+(?=Z|\+)", "", str(row["first"])).replace("+00:00", "Z")
    return row


def scheme(codec: str | None) -> str:
    return "oteljson" + (f"+{codec}" if codec else "")


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_host_file_each_compression(tmp_path: Path, codec: str | None) -> None:
    f = tmp_path / "metrics.json"
    f.write_bytes(COMPRESS[codec](lines_file(PUMPS)))
    assert summary(f"host+{scheme(codec)}:///{f}") == EXPECTED
    # columns: timestamp first, then the metrics sorted by name
    out = run_pond("describe", f"host+{scheme(codec)}://{f}", "--format", "json")
    schema = json.loads(out.stdout)["schema"]
    assert [(c["name"], c["type"]) for c in schema] == [
        ("timestamp", "timestamp[ns, tz=UTC]"),
        ("pump1_amps", "double"),
        ("pump2_amps", "double"),
        ("tank_level", "double"),
    ]


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_pond_file_each_compression(tmp_path: Path, pond_dir: Path, codec: str | None) -> None:
    f = tmp_path / "well.json.x"
    f.write_bytes(COMPRESS[codec](lines_file(PUMPS)))
    run_pond("mkdir", "-p", "/ingest", pond=pond_dir)
    run_pond("copy", f"host://{f}", "/ingest/well.json.x", pond=pond_dir)
    # the pond keeps the raw bytes; the format is applied when reading
    raw = run_pond("cat", "/ingest/well.json.x", pond=pond_dir).stdout
    assert raw == f.read_bytes()
    assert summary(f"{scheme(codec)}:///ingest/well.json.x", pond=pond_dir) == EXPECTED


def test_missing_or_wrong_compression_is_named(tmp_path: Path) -> None:
    f = tmp_path / "m.json.gz"
    f.write_bytes(gzip.compress(lines_file(PUMPS)))
    out = run_pond("cat", f"host+oteljson://{f}", check=1)
    assert out.stderr.decode().strip() == f"error: {f} looks gzip-compressed: add +gzip to the URL"
    out = run_pond("cat", f"host+oteljson+zstd://{f}", check=1)
    assert out.stderr.decode().strip() == f"error: {f} is not zstd-compressed"
    f.write_bytes(gzip.compress(lines_file(PUMPS))[:-20])  # truncated
    out = run_pond("cat", f"host+oteljson+gzip://{f}", check=1)
    err = out.stderr.decode()
    assert err.startswith(f"error: cannot decompress {f} as gzip") and err.count("\n") == 1


def era(start: int, names: list[str]) -> list[tuple[int, dict[str, float | int]]]:
    return [
        (start + i * 60 * SECOND, {n: 40.0 + i + j / 10 for j, n in enumerate(names)})
        for i in range(3)
    ]


def test_glob_merges_schemas_by_name(tmp_path: Path, pond_dir: Path) -> None:
    """Study 039: three files with different metric sets; 9 rows, each era's null pattern
    3 times, well_depth in every row."""
    eras = [
        ["well_depth"],
        ["well_depth", "system_pressure_value"],
        ["well_depth", "system_pressure_value", "pump_rate"],
    ]
    # the raw files go in through the library calls `pond mkdir` and `pond copy` make (one
    # transaction each); reading them back through format URLs, the subject, is `pond cat`
    pond = Pond.open(pond_dir)
    with pond.transaction(["pond", "mkdir", "/ingest"]) as tx:
        tx.mkdir("/ingest")
    for i, names in enumerate(eras):
        f = tmp_path / f"metrics-{i}.json"
        f.write_bytes(lines_file(era(T0 + i * 3600 * SECOND, names)))
        pond.copy_in([f"host://{f}"], "/ingest/")
    rows = cat_json("oteljson:///ingest/metrics-*.json", pond=pond_dir)
    assert len(rows) == 9
    assert sorted(rows[0]) == ["pump_rate", "system_pressure_value", "timestamp", "well_depth"]
    patterns = [tuple(sorted(k for k, v in r.items() if v is not None)) for r in rows]
    assert {p: patterns.count(p) for p in set(patterns)} == {
        ("timestamp", "well_depth"): 3,
        ("system_pressure_value", "timestamp", "well_depth"): 3,
        ("pump_rate", "system_pressure_value", "timestamp", "well_depth"): 3,
    }
    counts = cat_json(
        "oteljson:///ingest/metrics-*.json",
        "--sql",
        "SELECT count(well_depth) AS wd, count(system_pressure_value) AS sp FROM source",
        pond=pond_dir,
    )
    assert counts == [{"wd": 9, "sp": 6}]
    # the same glob over the host files
    assert len(cat_json(f"host+oteljson://{tmp_path}/metrics-*.json")) == 9
    # a glob matching nothing is an error, not an empty table
    out = run_pond("cat", "oteljson:///ingest/nothing-*.json", pond=pond_dir, check=1)
    assert out.stderr.decode().strip() == "error: no pond files match /ingest/nothing-*.json"


def test_later_point_wins_and_int_points(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_bytes(lines_file([(T0, {"a": 1.5}), (T0, {"a": 2.5, "b": 7}), (T0 - SECOND, {"b": 1})]))
    rows = cat_json(f"host+oteljson://{f}")
    assert [(r["a"], r["b"]) for r in rows] == [(None, 1.0), (2.5, 7.0)]


def test_numbers_where_proto3_has_strings(tmp_path: Path) -> None:
    """Some writers put timeUnixNano and asInt as JSON numbers: accepted as well."""
    line = request_line(T0, {"x": 3}).replace(f'"{T0}"', str(T0)).replace('"3"', "3")
    f = tmp_path / "m.json"
    f.write_text(line + "\n" + request_line(T0 + SECOND, {"x": 4.5}) + "\n")
    assert [r["x"] for r in cat_json(f"host+oteljson://{f}")] == [3.0, 4.5]


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = lines_file(PUMPS).decode().splitlines()
    f = tmp_path / "m.json"
    f.write_text(
        "\n".join([good[0], "garbage", good[1], '{"resourceMetrics": 5}', good[2], ""]) + "\n"
    )
    out = run_pond("cat", f"host+oteljson://{f}", "--format", "json")
    assert len(json.loads(out.stdout)) == 3
    assert out.stderr.decode().splitlines() == [
        f"warning: skipped 2 malformed lines in {f} "
        "(first at line 2: not JSON (Expecting value at column 1))"
    ]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"a,b\n1,2\n", 1, "not JSON"),
        (b'\n\n{"resource": {}}\n', 3, "not an OTLP metrics request"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd", 1, "not UTF-8 text"),
    ],
)
def test_wrong_format_names_file_and_line(
    tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    f = tmp_path / "not-metrics"
    f.write_bytes(content)
    out = run_pond("cat", f"host+oteljson://{f}", check=1)
    err = out.stderr.decode()
    assert err.startswith(f"error: {f} is not oteljson: line {line}: {reason}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_hostile_input_is_bounded_and_clean(tmp_path: Path) -> None:
    good = lines_file(PUMPS[:1])
    huge = b'{"resourceMetrics": [' + b" " * (formats.MAX_LINE_BYTES + 10) + b"]}\n"
    deep = b"[" * 200_000 + b"]" * 200_000 + b"\n"
    f = tmp_path / "hostile.json"
    binary = bytes(range(11, 256))  # no newline inside: one line, not UTF-8
    f.write_bytes(good + huge + deep + binary + b"\n")
    out = run_pond("cat", f"host+oteljson://{f}", "--format", "json")
    assert len(json.loads(out.stdout)) == 1
    assert out.stderr.decode().splitlines() == [
        f"warning: skipped 3 malformed lines in {f} "
        f"(first at line 2: line longer than {formats.MAX_LINE_BYTES >> 20} MiB)"
    ]


def test_copy_into_series_then_query(tmp_path: Path, pond_dir: Path) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(lines_file(PUMPS))
    run_pond("copy", f"host+oteljson+series://{f}", "/pumps", pond=pond_dir)
    d = json.loads(run_pond("describe", "/pumps", "--format", "json", pond=pond_dir).stdout)
    assert d["type"] == "file:series:physical"
    assert d["time_column"] == "timestamp"
    assert d["versions"][0]["min_event_time"] == "2023-11-14T22:13:20Z"
    assert d["versions"][0]["max_event_time"] == "2023-11-14T22:15:20Z"
    rows = cat_json("/pumps", "--time-start", "2023-11-14T22:14:00Z", pond=pond_dir)
    assert [r["tank_level"] for r in rows] == [12.2, 12.3]
    # a second copy appends a version with a new metric: the series merges them by name
    g = tmp_path / "y.json"
    g.write_bytes(lines_file([(T0 + 180 * SECOND, {"tank_level": 12.4, "flow": 1.0})]))
    run_pond("copy", f"host+oteljson+series://{g}", "/pumps", pond=pond_dir)
    rows = cat_json(
        "/pumps", "--sql", "SELECT tank_level, flow FROM source ORDER BY 1", pond=pond_dir
    )
    assert [(r["tank_level"], r["flow"]) for r in rows] == [
        (12.1, None),
        (12.2, None),
        (12.3, None),
        (12.4, 1.0),
    ]
    # a format without +table/+series cannot be stored: the copy says how
    out = run_pond("copy", f"host+oteljson://{f}", "/x", pond=pond_dir, check=2)
    assert "host+oteljson+series://" in out.stderr.decode()


def test_factory_inputs_read_format_urls(tmp_path: Path, pond_dir: Path) -> None:
    # the raw files go in through the library calls `pond mkdir` and `pond copy` make (one
    # transaction each); reading them back through format URLs, the subject, is `pond cat`
    pond = Pond.open(pond_dir)
    with pond.transaction(["pond", "mkdir", "/ingest"]) as tx:
        tx.mkdir("/ingest")
    for i in range(2):
        f = tmp_path / f"metrics-{i}.json"
        f.write_bytes(lines_file([(t + i * 3600 * SECOND, v) for t, v in PUMPS]))
        pond.copy_in([f"host://{f}"], "/ingest/")
    reduce_cfg = tmp_path / "reduce.yaml"
    reduce_cfg.write_text(
        'in_pattern: "oteljson:///ingest/metrics-*.json"\n'
        'out_pattern: "$0"\n'
        "resolutions: [1h]\n"
        "aggregations: [{type: avg, columns: [tank_level]}, {type: count}]\n"
    )
    run_pond("mknod", "temporal-reduce", "/reduced", "--config-path", reduce_cfg, pond=pond_dir)
    rows = cat_json("/reduced/0/res=1h.series", pond=pond_dir)
    assert [(r["timestamp"], r["tank_level.avg"]) for r in rows] == [
        ("2023-11-14T22:00:00.000000Z", pytest.approx(12.2))
    ]
    sql_cfg = tmp_path / "sql.yaml"
    sql_cfg.write_text(
        'patterns: {m: "oteljson:///ingest/metrics-*.json"}\n'
        "query: SELECT timestamp, pump1_amps FROM m WHERE pump1_amps > 3\n"
    )
    run_pond("mknod", "sql-derived-series", "/hot", "--config-path", sql_cfg, pond=pond_dir)
    assert [r["pump1_amps"] for r in cat_json("/hot", pond=pond_dir)] == [3.2, 5.3, 3.2, 5.3]


def test_second_read_does_not_parse_again(tmp_path: Path) -> None:
    """The parsed version is cached by content: a second read in the same process (and a
    read of a copy of the same bytes in the pond) does not call the parser."""
    pond = Pond.create(tmp_path / "pond")
    f = tmp_path / "m.json"
    f.write_bytes(lines_file(PUMPS))
    with pond.transaction() as tx:
        tx.write_host_file("/m.json", f)
    builtin = formats.get("oteljson")
    calls: list[str] = []

    def counting(data: bytes, options: formats.Options, what: str) -> formats.Parsed:
        calls.append(what)
        return builtin.read(data, options, what)

    formats.register(Format("oteljson", counting, "counting"), replace=True)
    try:
        first = pond.read("oteljson:///m.json")
        second = pond.read("oteljson:///m.json")
        assert calls == ["/m.json"]
        assert first.equals(second) and first.num_rows == 3
        # a new version is new content: parsed once more
        f.write_bytes(lines_file(PUMPS[:2]))
        with pond.transaction() as tx:
            tx.write_host_file("/m.json", f)
        assert pond.read("oteljson:///m.json").num_rows == 2
        assert calls == ["/m.json", "/m.json"]
    finally:
        formats.register(builtin, replace=True)


def test_appended_logs_with_the_same_last_chunk_are_not_confused(tmp_path: Path) -> None:
    """An appended log (logfile-ingest) reads as all its versions: two logs whose last
    versions hold the same bytes are different content and must not share a cached parse."""
    from duckpond.storage import logappend

    pond = Pond.create(tmp_path / "pond")
    first, last = lines_file(PUMPS[:1]), lines_file(PUMPS[1:2])
    with pond.transaction() as tx:
        logappend.append(tx.staged, "/a.json", last, {})
        logappend.append(tx.staged, "/b.json", first, {})
    assert pond.read("oteljson:///a.json").num_rows == 1
    with pond.transaction() as tx:
        logappend.append(tx.staged, "/b.json", last, {})  # same bytes as /a.json's last
    assert pond.read("oteljson:///b.json").num_rows == 2
    assert pond.read("oteljson:///b.json", version=1).num_rows == 1
