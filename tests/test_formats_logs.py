"""`jsonlogs`, `weblog`, `excelhtml` and `csv` options end to end through the CLI, on the host
and in the pond, compressed and not (issue 20 item 1)."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import run_pond
from format_helpers import COMPRESS, cat_json


def schema_of(url: str, pond: Path | None = None) -> list[tuple[str, str]]:
    out = run_pond("describe", url, "--format", "json", pond=pond)
    return [(c["name"], c["type"]) for c in json.loads(out.stdout)["schema"]]


def url(fmt: str, codec: str | None, path: Path | str, host: bool = True) -> str:
    return f"{'host+' if host else ''}{fmt}{'+' + codec if codec else ''}://{path}"


# -- jsonlogs -----------------------------------------------------------------------------------
JOURNAL = (
    b'{"MSG":"boot","PRIO":"6","N":3}\n'
    b'{"MSG":"oops","UNIT":"ssh.service","X":{"a":1},"N":4}\n'
    b"[1, 2]\n"
    b'{"MSG":"ok","N":5,"ok":true}\n'
)


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_jsonlogs(tmp_path: Path, codec: str | None) -> None:
    f = tmp_path / "journal.json"
    f.write_bytes(COMPRESS[codec](JOURNAL))
    out = run_pond("cat", url("jsonlogs", codec, f), "--format", "json")
    assert json.loads(out.stdout) == [
        {"MSG": "boot", "N": 3, "PRIO": "6", "UNIT": None, "X": None, "ok": None},
        {"MSG": "oops", "N": 4, "PRIO": None, "UNIT": "ssh.service", "X": '{"a":1}', "ok": None},
        {"MSG": "ok", "N": 5, "PRIO": None, "UNIT": None, "X": None, "ok": True},
    ]
    assert out.stderr.decode().splitlines() == [
        f"warning: skipped 1 malformed line in {f} (first at line 3: a JSON list, not an object)"
    ]


def test_jsonlogs_time_column_makes_a_series(tmp_path: Path, pond_dir: Path) -> None:
    f = tmp_path / "app.log"
    f.write_text(
        '{"time": "2024-05-01T10:00:00Z", "level": "info", "ms": 12.5}\n'
        '{"time": "2024-05-01T12:00:00+02:00", "level": "warn", "ms": 3}\n'
    )
    assert schema_of(url("jsonlogs", None, f)) == [
        ("level", "string"),
        ("ms", "double"),
        ("time", "timestamp[us, tz=UTC]"),
    ]
    run_pond("copy", url("jsonlogs", None, f) + "", "/app", pond=pond_dir, check=2)
    run_pond("copy", f"host+jsonlogs+series://{f}", "/app", pond=pond_dir)
    d = json.loads(run_pond("describe", "/app", "--format", "json", pond=pond_dir).stdout)
    assert d["time_column"] == "time"
    # both lines are at 10:00 UTC
    assert d["versions"][0]["min_event_time"] == "2024-05-01T10:00:00Z"
    assert d["versions"][0]["max_event_time"] == "2024-05-01T10:00:00Z"
    # times without an offset are UTC; text that is not a time stays text
    g = tmp_path / "naive.log"
    g.write_text('{"ts": "2024-05-01 10:00:00.5"}\n{"ts": "2024-05-01T11:00:00"}\n')
    assert cat_json(f"host+jsonlogs://{g}") == [
        {"ts": "2024-05-01T10:00:00.500000Z"},
        {"ts": "2024-05-01T11:00:00.000000Z"},
    ]
    g.write_text('{"ts": "yesterday"}\n')
    assert schema_of(f"host+jsonlogs://{g}") == [("ts", "string")]


def test_jsonlogs_merges_conflicting_types_across_files(tmp_path: Path, pond_dir: Path) -> None:
    run_pond("mkdir", "/logs", pond=pond_dir)
    for name, body in (("a.json", '{"code": 1}\n'), ("b.json", '{"code": "E42"}\n')):
        (tmp_path / name).write_text(body)
        run_pond("copy", f"host://{tmp_path / name}", "/logs/", pond=pond_dir)
    assert cat_json("jsonlogs:///logs/*.json", pond=pond_dir) == [{"code": "1"}, {"code": "E42"}]


# -- weblog -------------------------------------------------------------------------------------
ACCESS = (
    b'10.1.2.3 - bob [02/Feb/2025:08:30:00 +0100] "GET /a?x=1 HTTP/1.1" 200 512 "-" "curl/8"\n'
    b'::1 - - [02/Feb/2025:07:31:00 +0000] "HEAD / HTTP/1.1" 204 -\n'
    b'192.0.2.9 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 404 2326 '
    b'"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"\n'
    b"this is not an access log line\n"
)


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_weblog(tmp_path: Path, pond_dir: Path, codec: str | None) -> None:
    f = tmp_path / "access.log.x"
    f.write_bytes(COMPRESS[codec](ACCESS))
    out = run_pond("cat", url("weblog", codec, f), "--format", "json")
    rows = json.loads(out.stdout)
    assert [r["timestamp"] for r in rows] == [
        "2025-02-02T07:30:00.000000Z",
        "2025-02-02T07:31:00.000000Z",
        "2000-10-10T20:55:36.000000Z",
    ]
    assert rows[0] == {
        "timestamp": "2025-02-02T07:30:00.000000Z",
        "remote_addr": "10.1.2.3",
        "remote_user": "bob",
        "method": "GET",
        "path": "/a?x=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "body_bytes_sent": 512,
        "http_referer": None,
        "http_user_agent": "curl/8",
    }
    assert (rows[1]["status"], rows[1]["body_bytes_sent"], rows[1]["http_user_agent"]) == (
        204,
        0,
        None,
    )
    assert rows[2]["http_referer"] == "http://www.example.com/start.html"
    assert out.stderr.decode().splitlines() == [
        f"warning: skipped 1 malformed line in {f} "
        "(first at line 4: not a Common or Combined Log Format line)"
    ]
    # the same bytes in the pond
    run_pond("copy", f"host://{f}", "/access.log.x", pond=pond_dir)
    got = cat_json(
        url("weblog", codec, "/access.log.x", host=False),
        "--sql",
        "SELECT count(*) AS n, sum(body_bytes_sent) AS b FROM source WHERE status < 400",
        pond=pond_dir,
    )
    assert got == [{"n": 2, "b": 512}]


def test_weblog_series_and_time_window(tmp_path: Path, pond_dir: Path) -> None:
    f = tmp_path / "access.log"
    f.write_bytes(ACCESS)
    run_pond("copy", f"host+weblog+series://{f}", "/web", pond=pond_dir)
    d = json.loads(run_pond("describe", "/web", "--format", "json", pond=pond_dir).stdout)
    assert d["time_column"] == "timestamp"
    rows = cat_json("/web", "--time-start", "2025-01-01T00:00:00Z", pond=pond_dir)
    assert [r["path"] for r in rows] == ["/a?x=1", "/"]
    # a time window straight over the raw log
    run_pond("copy", f"host://{f}", "/access.log", pond=pond_dir)
    rows = cat_json("weblog:///access.log", "--time-end", "2025-02-02T07:30:00Z", pond=pond_dir)
    assert [r["path"] for r in rows] == ["/a?x=1", "/apache_pb.gif"]


# -- excelhtml ----------------------------------------------------------------------------------
REPORT = b"""<html><body><table id="isi-report">
 <tr class="section"><td>Location</td><td>Well 3</td></tr>
 <tr class="dataHeader"><td>Date Time</td><td>Depth (m)</td><td>Temp (C)</td></tr>
 <tr class="data"><td>2024-05-01 10:00:00</td><td>3.25</td><td>11.8</td></tr>
 <tr class="data"><td>2024-05-01 10:15:00</td><td></td><td>n/a</td></tr>
</table></body></html>
"""


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_excelhtml(tmp_path: Path, codec: str | None) -> None:
    f = tmp_path / "report.html"
    f.write_bytes(COMPRESS[codec](REPORT))
    assert cat_json(url("excelhtml", codec, f)) == [
        {"Date Time": "2024-05-01T10:00:00.000000Z", "Depth (m)": 3.25, "Temp (C)": 11.8},
        {"Date Time": "2024-05-01T10:15:00.000000Z", "Depth (m)": None, "Temp (C)": None},
    ]


def test_excelhtml_series_and_errors(tmp_path: Path, pond_dir: Path) -> None:
    f = tmp_path / "report.html"
    f.write_bytes(REPORT)
    run_pond("copy", f"host+excelhtml+series://{f}", "/well3", pond=pond_dir)
    d = json.loads(run_pond("describe", "/well3", "--format", "json", pond=pond_dir).stdout)
    assert d["time_column"] == "Date Time"
    assert d["versions"][0]["max_event_time"] == "2024-05-01T10:15:00Z"
    g = tmp_path / "other.html"
    g.write_bytes(b"<html><body><table id='x'><tr><td>1</td></tr></table></body></html>")
    out = run_pond("cat", f"host+excelhtml://{g}", check=1)
    assert out.stderr.decode() == (
        f'error: {g} is not excelhtml: line 1: no <table id="isi-report">\n'
    )


# -- csv options --------------------------------------------------------------------------------
@pytest.mark.parametrize("codec", list(COMPRESS))
def test_csv_options(tmp_path: Path, pond_dir: Path, codec: str | None) -> None:
    f = tmp_path / "semi.csv"
    f.write_bytes(COMPRESS[codec](b"alpha;1;'x;y'\nbeta;2;'z'\n"))
    opts = "?delimiter=;&header=false&quote='"
    rows = cat_json(url("csv", codec, f) + opts)
    assert rows == [
        {"column_1": "alpha", "column_2": 1, "column_3": "x;y"},
        {"column_1": "beta", "column_2": 2, "column_3": "z"},
    ]
    run_pond("copy", f"host://{f}", "/semi.csv", pond=pond_dir)
    assert cat_json(url("csv", codec, "/semi.csv", host=False) + opts, pond=pond_dir) == rows


def test_csv_escape_and_infer_rows(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text('name,v\n"a \\"quoted\\" word",1\nb,2\nc,x\n')
    rows = cat_json(f"host+csv://{f}?escape=\\&infer_rows=3")
    assert rows[0] == {"name": 'a "quoted" word', "v": "1"}
    # two rows decide the type: the third does not fit it, and the error names the row
    out = run_pond("cat", f"host+csv://{f}?escape=\\&infer_rows=2", check=1)
    assert out.stderr.decode().startswith(f"error: malformed CSV in {f}: ")


def test_csv_ragged_rows_are_skipped_and_counted(tmp_path: Path, pond_dir: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("a,b\n1,2\n3\n4,5\n6,7,8\n")
    run_pond("copy", f"host://{f}", "/r.csv", pond=pond_dir)
    out = run_pond("cat", "csv:///r.csv", "--format", "json", pond=pond_dir)
    assert json.loads(out.stdout) == [{"a": 1, "b": 2}, {"a": 4, "b": 5}]
    assert out.stderr.decode().splitlines() == [
        "warning: skipped 2 malformed lines in /r.csv (first at line 3: expected 2 fields, "
        "found 1: 3)"
    ]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("?has_header=maybe", "csv option header must be true or false, got 'maybe'"),
        ("?delimiter=ab", "csv option delimiter must be one character, got 'ab'"),
        ("?bogus=1", "unknown option 'bogus' for format csv"),
    ],
)
def test_bad_csv_options_are_errors(tmp_path: Path, suffix: str, message: str) -> None:
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    out = run_pond("cat", f"host+csv://{f}{suffix}", check=2)
    assert message in out.stderr.decode()


def test_options_on_a_format_without_options(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_text("")
    out = run_pond("cat", f"host+oteljson://{f}?delimiter=x", check=2)
    assert "unknown option 'delimiter' for format oteljson (options: none)" in out.stderr.decode()


# -- the older copy forms take bzip2 too --------------------------------------------------------
def test_copy_csv_and_parquet_with_bzip2(tmp_path: Path, pond_dir: Path) -> None:
    import pyarrow.parquet as pq

    c = tmp_path / "x.csv.bz2"
    c.write_bytes(bz2.compress(b"timestamp,v\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n"))
    run_pond("copy", f"host+csv+bzip2+series://{c}", "/c", pond=pond_dir)
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"v": [1, 2, 3]}), p)
    b = tmp_path / "x.parquet.bz2"
    b.write_bytes(bz2.compress(p.read_bytes()))
    run_pond("copy", f"host+table+bzip2://{b}", "/t", pond=pond_dir)
    assert [r["v"] for r in cat_json("/c", pond=pond_dir)] == [1, 2]
    assert [r["v"] for r in cat_json("/t", pond=pond_dir)] == [1, 2, 3]
