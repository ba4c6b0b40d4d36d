"""`pond apply`: validation first, one transaction, dependency order, idempotence (issue 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_pond
from steward_helpers import control_rows, data_version

from duckpond import apply as apply_mod
from duckpond.dynamic import Resolver
from duckpond.errors import PondError
from duckpond.pond import Pond

MANIFEST = """\
version: v1
kind: mknod
metadata: {{path: /derived/hourly}}
spec:
  factory: sql-derived-series
  config:
    patterns: {{raw: "series:///raw/*"}}
    query: SELECT timestamp, v * 2 AS v2 FROM raw
---
version: v1
kind: copy
metadata: {{path: /raw/a}}
spec: {{source: "host+series://{parquet}"}}
---
version: v1
kind: mkdir
metadata: {{path: /empty/dir}}
---
version: v1
kind: copy
metadata: {{path: /notes/readme.txt}}
spec: {{source: "host://{text}"}}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    parquet = tmp_path / "a.parquet"
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array([0, 3_600_000_000], pa.timestamp("us", tz="UTC")),
                "v": [1.0, 2.0],
            }
        ),
        parquet,
    )
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    manifest = tmp_path / "pond.yaml"
    manifest.write_text(MANIFEST.format(parquet=parquet, text=text))
    return {"parquet": parquet, "text": text, "manifest": manifest}


def test_apply_creates_in_dependency_order_then_is_idempotent(
    pond_dir: Path, files: dict[str, Path]
) -> None:
    pond = Pond.open(pond_dir)
    plan = apply_mod.apply(pond, [files["manifest"]])
    assert [(p.kind, p.path, p.action) for p in plan] == [
        ("mkdir", "/empty/dir", "created"),
        ("copy", "/notes/readme.txt", "created"),
        ("copy", "/raw/a", "created"),
        ("mknod", "/derived/hourly", "created"),
    ]
    pond.refresh()
    derived = Resolver.for_pond(pond, cache=False).require("/derived/hourly")
    assert derived.scan().column("v2").to_pylist() == [2.0, 4.0]
    assert pond.read_bytes("/notes/readme.txt") == b"hello\n"
    before = (data_version(pond_dir), len(control_rows(pond_dir)))
    again = apply_mod.apply(Pond.open(pond_dir), [files["manifest"]])
    assert {p.action for p in again} == {"unchanged"}
    assert (data_version(pond_dir), len(control_rows(pond_dir))) == before


def test_apply_updates_changed_config_and_content(pond_dir: Path, files: dict[str, Path]) -> None:
    apply_mod.apply(Pond.open(pond_dir), [files["manifest"]])
    text = files["manifest"].read_text().replace("v * 2", "v * 3")
    files["manifest"].write_text(text.replace("{source:", "{overwrite: true, source:"))
    files["text"].write_text("changed\n")
    plan = apply_mod.apply(Pond.open(pond_dir), [files["manifest"]])
    assert {p.path: p.action for p in plan} == {
        "/empty/dir": "unchanged",
        "/raw/a": "unchanged",
        "/notes/readme.txt": "updated",
        "/derived/hourly": "updated",
    }
    assert Pond.open(pond_dir).read_bytes("/notes/readme.txt") == b"changed\n"


def test_changed_raw_file_without_overwrite_is_refused(
    pond_dir: Path, files: dict[str, Path]
) -> None:
    apply_mod.apply(Pond.open(pond_dir), [files["manifest"]])
    files["text"].write_text("changed\n")
    with pytest.raises(PondError, match="overwrite"):
        apply_mod.apply(Pond.open(pond_dir), [files["manifest"]])


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("version: v2\nkind: mkdir\nmetadata: {path: /x}\n", "version must be v1"),
        ("version: v1\nkind: rmdir\nmetadata: {path: /x}\n", "kind must be"),
        ("version: v1\nkind: mkdir\nmetadata: {}\n", "metadata.path"),
        ("version: v1\nkind: mkdir\nmetadata: {path: x}\n", "absolute"),
        ("version: v1\nkind: copy\nmetadata: {path: /x}\nspec: {source: /nope}\n", "host URL"),
        (
            "version: v1\nkind: copy\nmetadata: {path: /x}\nspec: {source: 'host+csv:///x.csv'}\n",
            "say how to store a CSV",
        ),
        (
            "version: v1\nkind: copy\nmetadata: {path: /x}\nspec: {source: 'host:///nope/x'}\n",
            "no such host file",
        ),
        (
            "version: v1\nkind: mknod\nmetadata: {path: /x}\n"
            "spec: {factory: temporal-reduce, config: {in_pattern: /a/*, resolutions: [1h],"
            " aggregations: [{type: median}]}}\n",
            "unknown aggregation",
        ),
        (
            "version: v1\nkind: mkdir\nmetadata: {path: /x}\n---\n"
            "version: v1\nkind: mkdir\nmetadata: {path: /x/}\n",
            "declared twice",
        ),
        ("version: v1\nkind: mkdir\nmetadata: {path: /x}\n: bad: [\n", "not valid YAML"),
    ],
)
def test_bad_documents_reject_the_whole_apply(
    pond_dir: Path, files: dict[str, Path], tmp_path: Path, doc: str, needle: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(doc)
    before = (data_version(pond_dir), len(control_rows(pond_dir)))
    with pytest.raises(PondError, match=needle):
        apply_mod.apply(Pond.open(pond_dir), [files["manifest"], bad])
    assert (data_version(pond_dir), len(control_rows(pond_dir))) == before


def test_missing_input_fails_the_transaction_and_writes_nothing(
    pond_dir: Path, tmp_path: Path
) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        "version: v1\nkind: mkdir\nmetadata: {path: /a}\n---\n"
        "version: v1\nkind: mknod\nmetadata: {path: /d}\nspec: {factory: sql-derived-table,"
        " config: {patterns: {x: /missing}, query: SELECT * FROM x}}\n"
    )
    before = data_version(pond_dir)
    with pytest.raises(PondError, match="matches no"):
        apply_mod.apply(Pond.open(pond_dir), [f])
    assert data_version(pond_dir) == before
    assert Pond.open(pond_dir).lookup("/a") is None


def test_dry_run_writes_nothing(pond_dir: Path, files: dict[str, Path]) -> None:
    before = (data_version(pond_dir), len(control_rows(pond_dir)))
    plan = apply_mod.apply(Pond.open(pond_dir), [files["manifest"]], dry_run=True)
    assert {p.action for p in plan} == {"created"}
    assert (data_version(pond_dir), len(control_rows(pond_dir))) == before
    _ = json, run_pond


def test_copy_of_a_host_directory(pond_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "site"
    (src / "css").mkdir(parents=True)
    (src / "index.html").write_text("<h1>hi</h1>")
    (src / "css" / "a.css").write_text("h1 {}")
    f = tmp_path / "m.yaml"
    f.write_text(
        f"version: v1\nkind: copy\nmetadata: {{path: /www}}\nspec: {{source: 'host://{src}'}}\n"
    )
    assert [p.action for p in apply_mod.apply(Pond.open(pond_dir), [f])] == ["created"]
    pond = Pond.open(pond_dir)
    assert [e.path for e in pond.list("/www/**/*")] == [
        "/www/css",
        "/www/css/a.css",
        "/www/index.html",
    ]
    assert pond.read_bytes("/www/css/a.css") == b"h1 {}"
    assert [p.action for p in apply_mod.apply(Pond.open(pond_dir), [f])] == ["unchanged"]
    (src / "new.txt").write_text("new")
    assert [p.action for p in apply_mod.apply(Pond.open(pond_dir), [f])] == ["updated"]
    assert Pond.open(pond_dir).read_bytes("/www/new.txt") == b"new"
