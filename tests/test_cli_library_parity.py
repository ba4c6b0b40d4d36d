"""Every `pond` command is a thin wrapper: the CLI and its `Pond` library call give the same
result (issue 7). JSON output is compared with the library result's `to_json()`; raw output
with the library's bytes; copies by the trees they leave."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_pond
from steward_helpers import make_pond, write_file

from duckpond.pond import Pond, describe_source, read_source
from duckpond.query import output

CSV = "ts,v\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n2024-01-01T02:00:00Z,3\n"


def cli_json(pond: Path | None, *args: str) -> object:
    return json.loads(run_pond(*args, "--format", "json", pond=pond).stdout)


def host_tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pond with a raw file, a table, a two-version series and a failed post-commit task;
    and the host directory its sources came from."""
    tmp = tmp_path_factory.mktemp("parity")
    host = tmp / "host"
    host.mkdir()
    (host / "t.csv").write_text(CSV)
    (host / "r.txt").write_bytes(b"raw\n")
    pond = make_pond(tmp / "pond", [("10-fail", {"message": "m", "fail": True})])
    with pond.transaction() as tx:
        tx.mkdir("/d")
    pond.copy_in([f"host+csv+series://{host}/t.csv", f"host://{host}/r.txt"], "/d")
    pond.copy_in([f"host+csv+series://{host}/t.csv"], "/d/t.csv")  # a second series version
    pond.copy_in([f"host+csv+table://{host}/t.csv"], "/tab")
    write_file(pond, "/e/f.txt", b"f")
    return pond.root, host


def test_list_and_describe(world: tuple[Path, Path]) -> None:
    root, host = world
    pond = Pond.open(root)
    assert cli_json(root, "list", "/**") == [e.to_json() for e in pond.list("/**")]
    for path in ("/d/t.csv", "/d/r.txt", "/tab", "/d"):
        assert cli_json(root, "describe", path) == pond.describe(path).to_json()
    url = f"host+csv://{host}/t.csv"
    assert cli_json(None, "describe", url) == describe_source(url, None).to_json()


def test_cat(world: tuple[Path, Path]) -> None:
    root, host = world
    pond = Pond.open(root)
    assert run_pond("cat", "/d/r.txt", pond=root).stdout == pond.read_bytes("/d/r.txt")
    assert run_pond("cat", "/d/t.csv", "--version", "1", "--format", "raw", check=2, pond=root)
    for args, kw in (
        (["/d/t.csv"], {}),
        (["/d/t.csv", "--version", "1"], {"version": 1}),
        (
            ["/tab", "--sql", "SELECT sum(v) AS s FROM source"],
            {"sql": "SELECT sum(v) AS s FROM source"},
        ),
        (
            ["/d/t.csv", "--time-start", "2024-01-01T01:00:00Z"],
            {"time_range": ("2024-01-01T01:00:00Z", None)},
        ),
        (["csv:///d/r.txt"], {}),
    ):
        got = cli_json(root, "cat", *args)
        assert got == json.loads(output.to_json_text(pond.read(args[0], **kw)))
    url = f"host+csv://{host}/t.csv"
    assert cli_json(None, "cat", url) == json.loads(output.to_json_text(read_source(url, None)))


def test_control_views(world: tuple[Path, Path]) -> None:
    root, _ = world
    pond = Pond.open(root)
    recent = cli_json(root, "control", "recent", "--limit", "50")
    assert recent == [t.to_json() for t in pond.control_recent(50)]
    assert any(p["status"] == "failed" for t in recent for p in t["post_commit"])
    seq = recent[-1]["txn_seq"]
    assert cli_json(root, "control", "detail", "--txn-seq", str(seq)) == (
        pond.control_detail(seq).to_json()
    )
    assert cli_json(root, "control", "incomplete") == pond.control_incomplete().to_json()
    q = "SELECT txn_seq, record_type FROM control_table ORDER BY timestamp"
    assert cli_json(root, "control", "--sql", q) == json.loads(
        output.to_json_text(pond.control_sql(q))
    )


def test_copy_in_and_out(world: tuple[Path, Path], tmp_path: Path) -> None:
    root, host = world
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(root, a)
    shutil.copytree(root, b)
    sources = [f"host://{host}/r.txt", f"host+csv+table://{host}/t.csv"]
    for p in (a, b):
        run_pond("mkdir", "/new", pond=p)
    run_pond("copy", *sources, "/new/", pond=a)
    Pond.open(b).copy_in(sources, "/new/")
    assert [e.to_json() for e in Pond.open(a).list("/**")] == [
        e.to_json() for e in Pond.open(b).list("/**")
    ]
    run_pond("copy", "/d/**", f"host://{tmp_path}/out-cli", pond=a)
    written = Pond.open(b).copy_out("/d/**", tmp_path / "out-lib")
    assert host_tree(tmp_path / "out-cli") == host_tree(tmp_path / "out-lib")
    assert sorted(p.relative_to(tmp_path / "out-lib") for p in written) == sorted(
        Path(p) for p in host_tree(tmp_path / "out-lib")
    )


def test_recover_maintain_rebuild(world: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = world
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(root, a)
    shutil.copytree(root, b)
    # a task that fails again: the same report, and exit 1
    got = json.loads(
        run_pond("recover", "--retry-failed", "--format", "json", pond=a, check=1).stdout
    )
    assert got == Pond.open(b).recover(retry_failed=True).to_json()
    assert got["tasks"] and got["tasks"][0]["outcome"] == "failed"
    assert cli_json(a, "recover") == Pond.open(b).recover().to_json()
    assert cli_json(a, "maintain", "--retention-hours", "1") == (
        Pond.open(b).maintain(retention_hours=1).to_json()
    )
    for p in (a, b):
        shutil.rmtree(p / "control")
    cli = cli_json(a, "rebuild-control")
    lib = Pond.open(b).rebuild_control().to_json()
    assert cli["transactions"] == lib["transactions"] > 0
    assert [m.replace(os.fspath(a), "") for m in cli["messages"]] == [
        m.replace(os.fspath(b), "") for m in lib["messages"]
    ]
