"""The real `pond` CLI in subprocesses (SPEC §7): init, mkdir, copy in every URL form, copy
out, list, cat (raw, SQL, formats, versions, time windows), describe."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CLI, cli_env, run_pond

from duckpond.pond import Pond

RAW = b"\x00raw bytes\xff\n" * 10
BIG = bytes(range(256)) * 1024  # 256 KiB: lives in a blob
PLAIN_CSV = "name,qty\napple,3\npear,5\n"
X_CSV = "id,label\n1,one\n2,two\n3,three\n"
X2_CSV = "id,label\n10,ten\n"
Y_CSV = "ts,value\n2024-01-01T00:00:00Z,1.5\n2024-01-01T12:00:00Z,2.5\n"
Y2_CSV = "ts,value\n2024-01-02T00:00:00Z,3.5\n2024-01-03T00:00:00Z,4.5\n"
YZ_CSV = "ts,value\n2024-02-01T00:00:00Z,7\n"
XG_CSV = "k,v\na,1\nb,2\n"


def _parquet_table() -> pa.Table:
    return pa.table({"city": ["Oslo", "Rome"], "pop": [700_000, 2_800_000]})


def _series_table() -> pa.Table:
    ts = pa.array([1_700_000_000_000_000, 1_700_000_060_000_000], pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    return pa.table({"time": ts, "reading": [0.5, 0.75]})


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = root / "host"
        self.pond = root / "pond"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A pond filled through the CLI with one of every source form."""
    e = Env(tmp_path_factory.mktemp("cli"))
    h = e.host
    h.mkdir()
    (h / "raw.bin").write_bytes(RAW)
    (h / "big.bin").write_bytes(BIG)
    (h / "plain.csv").write_text(PLAIN_CSV)
    (h / "x.csv").write_text(X_CSV)
    (h / "y.csv").write_text(Y_CSV)
    (h / "v2").mkdir()
    (h / "v2" / "x.csv").write_text(X2_CSV)
    (h / "v2" / "y.csv").write_text(Y2_CSV)
    (h / "xg.csv.gz").write_bytes(gzip.compress(XG_CSV.encode()))
    with pa.CompressedOutputStream(str(h / "yz.csv.zst"), "zstd") as f:
        f.write(YZ_CSV.encode())
    pq.write_table(_parquet_table(), h / "t.parquet")
    pq.write_table(_series_table(), h / "s.parquet")
    buf = io.BytesIO()
    pq.write_table(_parquet_table(), buf)
    (h / "tg.parquet.gz").write_bytes(gzip.compress(buf.getvalue()))

    # init through $POND, the rest through --pond
    run_pond("init", env={"POND": str(e.pond)})
    run_pond("mkdir", "-p", "/data/in", pond=e.pond)
    run_pond("copy", f"host://{h}/raw.bin", "/data/raw.bin", pond=e.pond)
    run_pond(
        "copy",
        f"host://{h}/plain.csv",
        f"host://{h}/big.bin",
        f"host+table://{h}/t.parquet",
        f"host+series://{h}/s.parquet",
        f"host+csv+table://{h}/x.csv",
        f"host+csv+series://{h}/y.csv",
        f"host+csv+gzip+table://{h}/xg.csv.gz",
        f"host+csv+zstd+series://{h}/yz.csv.zst",
        f"host+table+gzip://{h}/tg.parquet.gz",
        "/data/in/",
        pond=e.pond,
    )
    # second versions: a table is replaced, a series gains a version
    run_pond(
        "copy",
        f"host+csv+table://{h}/v2/x.csv",
        f"host+csv+series://{h}/v2/y.csv",
        "/data/in",
        pond=e.pond,
    )
    return e


def cat(env: Env, *args: str) -> bytes:
    return run_pond("cat", *args, pond=env.pond).stdout


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


# -- list ------------------------------------------------------------------------------------


def test_list_json_shape_and_types(env: Env) -> None:
    out = run_pond("list", "--format", "json", pond=env.pond)
    entries = json.loads(out.stdout)
    assert all(set(x) == {"path", "type", "version", "size"} for x in entries)
    got = {x["path"]: (x["type"], x["version"]) for x in entries}
    assert got == {
        "/data": ("dir:physical", got["/data"][1]),
        "/data/in": ("dir:physical", got["/data/in"][1]),
        "/data/raw.bin": ("file:data:physical", 1),
        "/data/in/plain.csv": ("file:data:physical", 1),
        "/data/in/big.bin": ("file:data:physical", 1),
        "/data/in/t.parquet": ("file:table:physical", 1),
        "/data/in/s.parquet": ("file:series:physical", 1),
        "/data/in/x.csv": ("file:table:physical", 2),
        "/data/in/y.csv": ("file:series:physical", 2),
        "/data/in/xg.csv.gz": ("file:table:physical", 1),
        "/data/in/yz.csv.zst": ("file:series:physical", 1),
        "/data/in/tg.parquet.gz": ("file:table:physical", 1),
    }
    sizes = {x["path"]: x["size"] for x in entries}
    assert sizes["/data/raw.bin"] == len(RAW) and sizes["/data/in/big.bin"] == len(BIG)
    # the list is sorted by path, and it is the only thing on stdout
    assert [x["path"] for x in entries] == sorted(x["path"] for x in entries)


def test_list_long_and_pattern(env: Env) -> None:
    out = run_pond("list", "-l", "/data/in/*.csv", pond=env.pond).stdout.decode()
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines] == [
        "/data/in/plain.csv",
        "/data/in/x.csv",
        "/data/in/y.csv",
    ]
    assert "file:table:physical" in lines[1] and "file:series:physical" in lines[2]
    short = run_pond("list", "/data/", pond=env.pond).stdout.decode().split()
    assert short == ["/data/in", "/data/raw.bin"]


# -- cat -------------------------------------------------------------------------------------


def test_cat_raw_bytes(env: Env) -> None:
    assert cat(env, "/data/raw.bin") == RAW
    assert cat(env, "/data/in/big.bin") == BIG
    assert cat(env, "/data/in/plain.csv") == PLAIN_CSV.encode()


def test_cat_table_in_a_pipe_is_parquet(env: Env) -> None:
    data = cat(env, "/data/in/t.parquet")
    assert data[:4] == b"PAR1"
    assert pq.read_table(io.BytesIO(data)).to_pylist() == _parquet_table().to_pylist()


def test_cat_sql_formats(env: Env) -> None:
    q = "SELECT label, id * 2 AS twice FROM source ORDER BY id"
    out = cat(env, "/data/in/x.csv", "--version", "1", "--sql", q, "--format", "csv")
    assert csv_rows(out) == [
        {"label": "one", "twice": "2"},
        {"label": "two", "twice": "4"},
        {"label": "three", "twice": "6"},
    ]
    out = cat(env, "/data/in/t.parquet", "--sql", "SELECT * FROM source", "--format", "json")
    assert json.loads(out) == _parquet_table().to_pylist()
    out = cat(
        env,
        "/data/in/s.parquet",
        "--sql",
        "SELECT count(*) AS n FROM series",
        "--format",
        "parquet",
    )
    assert pq.read_table(io.BytesIO(out)).to_pylist() == [{"n": 2}]


def test_cat_versions(env: Env) -> None:
    latest = csv_rows(cat(env, "/data/in/x.csv", "--format", "csv"))
    assert latest == [{"id": "10", "label": "ten"}]
    v1 = csv_rows(cat(env, "/data/in/x.csv", "--format", "csv", "--version", "1"))
    assert [r["label"] for r in v1] == ["one", "two", "three"]
    assert cat(env, "/data/raw.bin", "--version", "1") == RAW


def test_cat_series_union_and_time_window(env: Env) -> None:
    every = json.loads(cat(env, "/data/in/y.csv", "--format", "json"))
    assert sorted(r["value"] for r in every) == [1.5, 2.5, 3.5, 4.5]
    out = cat(
        env,
        "/data/in/y.csv",
        "--time-start",
        "2024-01-01T06:00:00Z",
        "--time-end",
        "2024-01-02T00:00:00Z",
        "--sql",
        "SELECT value FROM source ORDER BY ts",
        "--format",
        "json",
    )
    assert json.loads(out) == [{"value": 2.5}, {"value": 3.5}]


def test_cat_compressed_inputs(env: Env) -> None:
    got = csv_rows(cat(env, "/data/in/xg.csv.gz", "--format", "csv"))
    assert got == [{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]
    out = cat(env, "/data/in/yz.csv.zst", "--sql", "SELECT value FROM source", "--format", "json")
    assert json.loads(out) == [{"value": 7}]
    out = cat(env, "/data/in/tg.parquet.gz", "--format", "json")
    assert json.loads(out) == _parquet_table().to_pylist()


def test_cat_csv_url_of_a_raw_pond_file(env: Env) -> None:
    out = cat(
        env,
        "csv:///data/in/plain.csv",
        "--sql",
        "SELECT sum(qty) AS n FROM source",
        "--format",
        "json",
    )
    assert json.loads(out) == [{"n": 8}]


def test_host_urls_without_a_pond(env: Env) -> None:
    h = env.host
    out = run_pond("cat", f"host+csv://{h}/plain.csv", "--format", "csv").stdout
    assert csv_rows(out) == [{"name": "apple", "qty": "3"}, {"name": "pear", "qty": "5"}]
    out = run_pond("describe", f"host+table://{h}/t.parquet", "--format", "json").stdout
    d = json.loads(out)
    assert [f["name"] for f in d["schema"]] == ["city", "pop"]


# -- describe --------------------------------------------------------------------------------


def test_describe_json(env: Env) -> None:
    d = json.loads(run_pond("describe", "/data/in/y.csv", "--format", "json", pond=env.pond).stdout)
    assert d["path"] == "/data/in/y.csv"
    assert d["type"] == "file:series:physical"
    assert isinstance(d["size"], int) and d["size"] > 0
    assert [(f["name"], f["type"].startswith("timestamp")) for f in d["schema"]] == [
        ("ts", True),
        ("value", False),
    ]
    assert [v["version"] for v in d["versions"]] == [1, 2]
    for v in d["versions"]:
        assert {"version", "txn_seq", "timestamp", "size"} <= set(v)
    seqs = [v["txn_seq"] for v in d["versions"]]
    assert seqs[0] < seqs[1]
    assert d["versions"][0]["min_event_time"].startswith("2024-01-01T00:00:00")
    assert d["versions"][1]["max_event_time"].startswith("2024-01-03T00:00:00")
    # the txn_seq is the one of the copy that made the version
    txns = {p["txn_seq"]: p["args"] for _, p in Pond.open(env.pond).data.pond_txns()}
    assert "host+csv+series://" + str(env.host / "v2" / "y.csv") in txns[seqs[1]]


def test_describe_text_shows_types_verbatim(env: Env) -> None:
    d = json.loads(run_pond("describe", "/data/in/y.csv", "--format", "json", pond=env.pond).stdout)
    ts_type = next(f["type"] for f in d["schema"] if f["name"] == "ts")
    assert "[" in ts_type  # e.g. timestamp[us, tz=UTC]: brackets a markup parser would eat
    text = run_pond("describe", "/data/in/y.csv", "--format", "table", pond=env.pond).stdout
    assert f"ts: {ts_type}".encode() in text


# -- pond -> host ----------------------------------------------------------------------------


def test_copy_out_glob_to_host_tree(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pond("copy", "/data/**", f"host://{out}", pond=env.pond)
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert files["raw.bin"] == RAW
    assert files["in/big.bin"] == BIG
    assert files["in/plain.csv"] == PLAIN_CSV.encode()
    table = pq.read_table(io.BytesIO(files["in/t.parquet"]))
    assert table.to_pylist() == _parquet_table().to_pylist()
    # a series leaves as the union of its versions
    series = pq.read_table(io.BytesIO(files["in/y.csv"]))
    assert sorted(series.column("value").to_pylist()) == [1.5, 2.5, 3.5, 4.5]
    assert set(files) == {
        "raw.bin",
        "in/plain.csv",
        "in/big.bin",
        "in/t.parquet",
        "in/s.parquet",
        "in/x.csv",
        "in/y.csv",
        "in/xg.csv.gz",
        "in/yz.csv.zst",
        "in/tg.parquet.gz",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["cat", "/raw.bin"],
        ["cat", "/t", "--sql", "SELECT * FROM source", "--format", "json"],
        ["list", "/**"],
    ],
    ids=["cat", "sql", "list"],
)
def test_a_closed_stdout_ends_a_command_quietly_with_exit_0(
    pond_dir: Path, tmp_path: Path, args: list[str]
) -> None:
    """`pond ... | head -c 0`: the reader is gone before pond writes (its end of a real
    pipe closed first, so the EPIPE is certain): exit 0, nothing on stderr."""
    (tmp_path / "raw.bin").write_bytes(os.urandom(300_000))
    (tmp_path / "t.csv").write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(5000)))
    run_pond("copy", f"host://{tmp_path / 'raw.bin'}", "/raw.bin", pond=pond_dir)
    run_pond("copy", f"host+csv+table://{tmp_path / 't.csv'}", "/t", pond=pond_dir)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [*CLI, "--pond", str(pond_dir), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=cli_env(),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, b"")


def test_a_reader_that_stops_early_ends_pond_cat_quietly(pond_dir: Path, tmp_path: Path) -> None:
    """`pond cat BIG | head -c 10`: more than a pipe buffer, the reader leaves after 10 bytes."""
    data = os.urandom(3_000_000)
    (tmp_path / "big.bin").write_bytes(data)
    run_pond("copy", f"host://{tmp_path / 'big.bin'}", "/big.bin", pond=pond_dir)
    proc = subprocess.Popen(
        [*CLI, "--pond", str(pond_dir), "cat", "/big.bin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == data[:10]
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
