"""The library surface of issue 7: bugs found by reading (a long-lived handle's control SQL,
fractional retention), `__version__`, and what `Pond.copy_in/copy_out/read/describe` return."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import cli_env, run_pond
from s3server import Remote

import duckpond
from duckpond.errors import InvalidPathError, PondError, PondUsageError
from duckpond.pond import Pond
from duckpond.results import Description, MaintainReport, TxnSummary


def test_control_sql_on_a_long_lived_handle_sees_its_own_writes(pond_dir: Path) -> None:
    pond = Pond.open(pond_dir)
    q = "SELECT count(*) AS n FROM control_table"
    before = pond.control_sql(q).to_pylist()[0]["n"]
    for i in range(4):
        with pond.transaction(["test", str(i)]) as tx:
            tx.write_bytes(f"/f{i}", b"x")
    fresh = Pond.open(pond_dir).control_sql(q).to_pylist()[0]["n"]
    assert fresh == before + 4 * 3  # begin, data_committed, completed per write
    assert pond.control_sql(q).to_pylist()[0]["n"] == fresh


def _replaced_files(pond_dir: Path) -> Pond:
    """A pond whose data partition holds several small files, so maintain compacts them
    and the replaced files become vacuum candidates right away."""
    pond = Pond.open(pond_dir)
    for i in range(6):
        with pond.transaction() as tx:
            tx.write_bytes("/f", str(i).encode())
    return pond


def test_maintain_keeps_files_replaced_within_a_fractional_retention(pond_dir: Path) -> None:
    pond = _replaced_files(pond_dir)
    on_disk = set((pond_dir / "data").rglob("*.parquet"))
    report = pond.maintain(retention_hours=0.5)
    assert isinstance(report, MaintainReport)
    assert report.data["files_after"] < report.data["files_before"]  # something was replaced
    assert report.data["files_vacuumed"] == 0
    assert on_disk <= set((pond_dir / "data").rglob("*.parquet"))  # nothing deleted
    # retention 0 does remove them: the figure above could have been otherwise
    assert pond.maintain(retention_hours=0).data["files_vacuumed"] > 0
    assert pond.read_bytes("/f") == b"5"


def test_version_from_package_and_cli() -> None:
    assert duckpond.__version__ and duckpond.__version__[0].isdigit()
    out = run_pond("--version").stdout.decode()
    assert out.strip() == f"pond {duckpond.__version__}"


def test_importing_the_package_loads_no_data_stack() -> None:
    code = (
        "import sys, duckpond, duckpond.cli.main; "
        "print(sorted(m for m in ('pyarrow', 'deltalake', 'numpy', 'yaml', 'duckdb') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.decode().strip() == "[]"


def _click_itself(*args: str, columns: str) -> bytes:
    """What click prints, without the console script's help cache."""
    code = "import sys; from duckpond.cli.main import main; sys.argv[0] = 'pond'; main()"
    env = cli_env({"COLUMNS": columns})
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True).stdout


def test_help_without_click_is_what_click_prints(tmp_path: Path) -> None:
    """`pond --help` (and `-h`, and no arguments) answers from a copy of click's own text
    kept in the user's cache directory, without importing click: the same bytes, whatever
    the width, stored or not; nothing is written into the installed package."""
    from duckpond.cli import launch

    package = Path(launch.__file__).parent
    in_package = sorted(package.rglob(launch.CACHE_PREFIX + "*"))
    cache_dir = tmp_path / "cache" / "duckpond"
    base = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    seen = set()
    for columns in ("80", "60", "70", "120", "80"):
        expected = _click_itself("--help", columns=columns)
        assert expected.startswith(b"Usage: pond [OPTIONS] COMMAND [ARGS]...")
        seen.add(expected)
        env = {**base, "COLUMNS": columns}
        assert run_pond("--help", env=env).stdout == expected  # stored when missing
        stored = [p.read_bytes() + b"\n" for p in cache_dir.glob(launch.CACHE_PREFIX + "*.txt")]
        assert expected in stored
        timed = [sys.executable, "-X", "importtime", "-m", "duckpond.cli"]
        for args in (["--help"], ["-h"], []):
            proc = subprocess.run([*timed, *args], env=cli_env(env), capture_output=True)
            assert proc.returncode == 0 and proc.stdout == expected
            assert b" click" not in proc.stderr  # answered without importing click
    assert len(seen) == 3  # 60 and 70 wrap differently; beyond 80, as at 80
    assert len(list(cache_dir.glob(launch.CACHE_PREFIX + "*.txt"))) == 4  # one per width
    assert sorted(package.rglob(launch.CACHE_PREFIX + "*")) == in_package
    proc = subprocess.run([*timed, "--version"], env=cli_env(base), capture_output=True)
    assert proc.stdout == _click_itself("--version", columns="80") == b"pond 0.1.0\n"
    assert proc.returncode == 0 and b" click" not in proc.stderr


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
    }


def test_help_from_a_read_only_install_writes_nothing_there(tmp_path: Path) -> None:
    """An install whose package directory cannot be written (a copy of the package, made
    read-only; compared file by file, as root ignores the modes) gets click's help, and
    the help cache goes to the user's cache directory, or nowhere when that cannot be
    written either."""
    import duckpond

    site = tmp_path / "site"
    shutil.copytree(Path(duckpond.__file__).parent, site / "duckpond", ignore=_no_caches)
    for p in [site, *site.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    before = _tree(site)
    expected = _click_itself("--help", columns="80")
    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    try:
        for cache in (str(unwritable / "cache"), str(tmp_path / "cache"), str(tmp_path / "cache")):
            env = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": cache, "COLUMNS": "80"}
            env = cli_env({**env, "PYTHONDONTWRITEBYTECODE": "1"})
            for args in (["--help"], []):
                proc = subprocess.run(
                    [sys.executable, "-m", "duckpond.cli", *args], env=env, capture_output=True
                )
                assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, b"")
            assert _tree(site) == before
        assert len(list((tmp_path / "cache" / "duckpond").iterdir())) == 1
    finally:
        for p in [site, *site.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def _no_caches(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


@pytest.mark.parametrize(
    "args",
    [
        ["--pond", "/nowhere", "--help"],
        ["-q", "--wait=x", "-h", "--var", "a"],
        ["--pond=/p", "-v", "--help", "--version"],  # --help is --var's value
        ["--pond", "--help"],  # --help is --pond's value: click's "Missing command"
        ["--version", "--help"],
        ["--help", "list"],
        ["--pond"],
        ["-qh"],
        ["--pond", "/p", "--version"],
    ],
)
def test_console_script_answers_as_click_does(args: list[str]) -> None:
    """Whether the console script answers itself or hands over to click, the output and
    exit code are click's."""
    code = "import sys; from duckpond.cli.main import main; sys.argv[0] = 'pond'; main()"
    click_run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True)
    ours = run_pond(*args, check=None)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        click_run.returncode,
        click_run.stdout,
        click_run.stderr,
    )


def test_copy_in_read_describe(pond_dir: Path, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("ts,v\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n")
    raw = tmp_path / "r.bin"
    raw.write_bytes(b"raw bytes")
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.mkdir("/d")
    written = pond.copy_in([f"host+csv+series://{csv}", f"host://{raw}"], "/d")
    assert written == ["/d/t.csv", "/d/r.bin"]
    table = pond.read("/d/t.csv", sql="SELECT sum(v) AS s FROM source")
    assert isinstance(table, pa.Table) and table.to_pylist() == [{"s": 3}]
    late = pond.read("/d/t.csv", time_range=("2024-01-01T00:30:00Z", None))
    assert late.column("v").to_pylist() == [2]
    assert pond.is_raw("/d/r.bin") and not pond.is_raw("/d/t.csv")
    d = pond.describe("/d/t.csv")
    assert isinstance(d, Description) and d.time_column == "ts"
    assert [f.name for f in d.schema or []] == ["ts", "v"]
    host = pond.describe(f"host+csv://{csv}").to_json()
    assert set(host) == {"path", "type", "schema"} and host["type"] == "host"
    assert [(f["name"], f["type"][:9]) for f in host["schema"]] == [
        ("ts", "timestamp"),
        ("v", "int64"),
    ]
    [summary] = pond.control_recent(1)
    assert isinstance(summary, TxnSummary) and summary.status == "completed"


def test_copy_in_refuses_an_empty_destination(pond_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"a")
    pond = Pond.open(pond_dir)
    version = pond.data.version()
    with pytest.raises(InvalidPathError, match="empty destination"):
        pond.copy_in([f"host://{src}"], "")
    with pytest.raises(PondUsageError):
        pond.copy_in(["/not/a/host/url"], "/x")
    proc = run_pond("copy", f"host://{src}", "", pond=pond_dir, check=1)
    assert proc.stderr.decode().startswith("error: empty destination")
    assert Pond.open(pond_dir).list() == []
    assert Pond.open(pond_dir).data.version() == version


def test_remote_methods_take_one_store_options(
    tmp_path: Path, s3_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup_add`, `remote_add` and `restore` take the S3 options as one
    `duckpond.StoreOptions` (secret as an ${env:NAME} reference, kept unexpanded)."""
    from duckpond import StoreOptions

    assert s3_remote.options is not None
    monkeypatch.setenv("POND_TEST_SECRET", str(s3_remote.options.secret_access_key))
    options = dataclasses.replace(s3_remote.options, secret_access_key="${env:POND_TEST_SECRET}")
    pond = Pond.create(tmp_path / "pond")
    (tmp_path / "a.txt").write_bytes(b"hello")
    pond.copy_in([f"host://{tmp_path / 'a.txt'}"], "/a.txt")
    pond.backup_add("b", s3_remote.url, options=options)
    [info] = pond.remote_list()
    assert (info.name, info.pushed_txn_seq) == ("b", pond.data.last_txn_seq())
    assert pond.read_bytes("/sys/remotes/b").count(b"${env:POND_TEST_SECRET}") == 1

    restored, transfer = Pond.restore(tmp_path / "restored", "b", s3_remote.url, options=options)
    assert transfer.name == "b" and restored.read_bytes("/a.txt") == b"hello"
    other = Pond.create(tmp_path / "other")
    att = other.remote_add("imp", s3_remote.url, "/imp", options=options)
    assert att.options == options
    with pytest.raises(PondError, match="are for s3:// URLs"):
        other.backup_add("f", f"file://{tmp_path / 'f'}", options=StoreOptions(region="x"))
    with pytest.raises(PondError, match="environment reference"):
        other.backup_add("s", s3_remote.url, options=s3_remote.options)  # a literal secret
    assert [r.name for r in other.remote_list()] == ["imp"]
