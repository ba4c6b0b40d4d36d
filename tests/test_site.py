"""`pond site build` and the `sitegen` post-commit factory, without a browser: what is
written, that it is the same for the same pond, that nothing outside OUTDIR is referenced,
and that a refused or failed build leaves the last good site exactly as it was."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import run_pond
from site_pond import make_pond

from duckpond.pond import Pond


@pytest.fixture(scope="module")
def site_pond(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("site") / "pond"
    _, seq = make_pond(root)
    return root, seq


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_build_writes_pages_data_and_library(site_pond: tuple[Path, int], tmp_path: Path) -> None:
    pond, seq = site_pond
    out = tmp_path / "site"
    proc = run_pond("site", "build", out, "--format", "json", pond=pond)
    report = json.loads(proc.stdout)
    assert report["series"] == ["/derived/wave", "/wells/north"]
    files = tree(out)
    for name in ("index.html", "status.html", "lib/bokeh.min.js", "lib/bokeh-api.min.js"):
        assert name in files
    assert "series/wells_north.html" in files and "series/derived_wave.html" in files
    index = files["index.html"].decode()
    assert 'href="series/wells_north.html"' in index and "/derived/wave" in index
    page = files["series/wells_north.html"].decode()
    manifest = json.loads(re.search(r'id="manifest">(.*?)</script>', page, re.S).group(1))
    # the temporal-reduce outputs are the tiers of their input, finest first
    # (6h and 1d are left out: the 1h tier already shows all 10 days in 240 points)
    assert [t["name"] for t in manifest["tiers"]] == ["raw", "1h"]
    assert manifest["tiers"][1]["path"] == "/reduced/north/res=1h.series"
    assert manifest["tiers"][1]["lines"] == {
        "level": {"mid": "level.avg", "lo": "level.min", "hi": "level.max"}
    }
    # every data file a page names exists; the coarsest tier is one file
    for tier in manifest["tiers"]:
        for chunk in tier["chunks"]:
            assert chunk["file"] in files
    assert len(manifest["tiers"][-1]["chunks"]) == 1
    status = files["status.html"].decode()
    assert f'data-txn-seq="{seq}"' in status
    assert "/etc/system.d/20-notify" in status and "intentionally failed" in status


def test_pages_reference_nothing_outside_the_site(
    site_pond: tuple[Path, int], tmp_path: Path
) -> None:
    pond, _ = site_pond
    out = tmp_path / "site"
    Pond.open(pond).site_build(out)
    for name, data in tree(out).items():
        if not name.endswith(".html"):
            continue
        for ref in re.findall(r'(?:src|href)="([^"]*)"', data.decode()):
            assert not re.match(r"^[a-z]+:|^/", ref), f"{name} refers to {ref}"
            if not ref.startswith("#"):
                assert (out / Path(name).parent / ref).resolve().is_file(), f"{name}: {ref}"


def test_same_pond_same_bytes(site_pond: tuple[Path, int], tmp_path: Path) -> None:
    """Twice, once by the library and once by the CLI: byte for byte the same site."""
    pond, _ = site_pond
    report = Pond.open(pond).site_build(tmp_path / "a")
    run_pond("site", "build", tmp_path / "b", pond=pond)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    files = set(tree(tmp_path / "a")) - {".pond-site-manifest.json"}  # bookkeeping: not counted
    assert report.files == len(files) and report.pages == 4
    # a rebuild in place (reusing what the last build learnt of stored versions): the same
    first = tree(tmp_path / "a")
    Pond.open(pond).site_build(tmp_path / "a")
    assert tree(tmp_path / "a") == first


def test_status_reads_recent_and_unfinished_at_once(site_pond: tuple[Path, int]) -> None:
    """What the status page shows (Pond.control_status, two reads of the control table) is
    what `pond control` and `pond control incomplete` show, when nothing is unfinished."""
    pond = Pond.open(site_pond[0])
    recent, incomplete = pond.control_status(limit=2)
    assert recent == pond.control_recent(limit=2) and len(recent) == 2
    assert recent[-1].post_commit[0].status == "failed"  # 20-notify, with its error
    assert incomplete == pond.control_incomplete() and not incomplete.to_json()["tasks"]


def test_config_selects_labels_and_refuses_unknown_keys(
    site_pond: tuple[Path, int], tmp_path: Path
) -> None:
    pond, _ = site_pond
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "title": "Wells",
                "series": ["/reduced/**"],
                "labels": {"/wells/north": "North well"},
                "units": {"/wells/north": "m"},
                "default_range": "1W",
                "time_zone": "viewer",
                "target_points": 200,
                "status_page": False,
            }
        )
    )
    out = tmp_path / "site"
    run_pond("site", "build", out, "--config", cfg, pond=pond)
    files = tree(out)
    assert "status.html" not in files and "series/derived_wave.html" not in files
    page = files["series/wells_north.html"].decode()
    assert "North well" in page and "<title>North well · Wells</title>" in page
    manifest = json.loads(re.search(r'id="manifest">(.*?)</script>', page, re.S).group(1))
    assert manifest["target_points"] == 200 and manifest["time_zone"] == "viewer"
    assert manifest["default_range"] == "1W" and manifest["unit"] == "m"

    cfg.write_text("title: x\ncolour: blue\n")
    before = tree(out)
    proc = run_pond("site", "build", out, "--config", cfg, pond=pond, check=1)
    assert proc.stderr.decode().strip() == (
        f"error: site config {cfg}: unknown config key(s): colour"
    )
    assert tree(out) == before


def test_refuses_to_replace_a_directory_that_is_not_a_site(
    site_pond: tuple[Path, int], tmp_path: Path
) -> None:
    pond, _ = site_pond
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious.txt").write_text("keep me")
    proc = run_pond("site", "build", home, pond=pond, check=1)
    assert "is not empty and holds no pond site" in proc.stderr.decode()
    assert tree(home) == {"precious.txt": b"keep me"}


def test_failed_build_leaves_the_last_good_site(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond, _ = make_pond(root)
    out = tmp_path / "site"
    pond.site_build(out)
    good = tree(out)
    # a derived series that plans but fails when read: the next build fails mid-way
    pond.mknod(
        "sql-derived-series",
        "/wells/broken",
        yaml.safe_dump(
            {
                "patterns": {"n": "/wells/north"},
                # fails on its rows only (DuckDB's integer / 0 is NULL, not an error)
                "query": "SELECT timestamp, CAST(CAST(level AS VARCHAR) || 'x' AS DOUBLE)"
                " AS level FROM n",
            }
        ).encode(),
    )
    proc = run_pond("site", "build", out, pond=root, check=1)
    assert proc.stderr.decode().startswith("error: ")
    assert tree(out) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pond", "site"]  # no leftovers


def test_sitegen_keeps_the_site_fresh_and_records_its_job(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond, _ = make_pond(root)
    out = tmp_path / "site"
    cfg = tmp_path / "sitegen.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": str(out), "title": "Fresh"}))
    run_pond("mknod", "sitegen", "/etc/system.d/90-site", "--config-path", cfg, pond=root)
    assert "Fresh" in (out / "index.html").read_text()
    assert "series/wells_north.html" in tree(out)
    run_pond("mkdir", "/incoming", pond=root)
    recent = json.loads(run_pond("control", "--format", "json", pond=root).stdout)
    jobs = {j["config_path"]: j for j in recent[-1]["post_commit"]}
    assert jobs["/etc/system.d/90-site"]["status"] == "completed"
    assert jobs["/etc/system.d/20-notify"]["status"] == "failed"
    # the status page the job wrote shows the write that triggered it, still running its
    # jobs (not as unfinished work)
    status = (out / "status.html").read_text()
    seq = recent[-1]["txn_seq"]
    assert f'data-txn-seq="{seq}"><td>{seq}</td><td>running its post-commit jobs</td>' in status
    assert '<p id="incomplete">Nothing unfinished.</p>' in status

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"out_dir": "relative/dir"}))
    proc = run_pond(
        "mknod", "sitegen", "/etc/system.d/91-x", "--config-path", bad, pond=root, check=1
    )
    assert "'out_dir' must be an absolute host path" in proc.stderr.decode()


def test_sitegen_failure_is_recorded_and_keeps_the_last_good_site(tmp_path: Path) -> None:
    root = tmp_path / "pond"
    pond, _ = make_pond(root)
    out = tmp_path / "site"
    pond.mknod("sitegen", "/etc/system.d/90-site", yaml.safe_dump({"out_dir": str(out)}).encode())
    good = tree(out)
    (tmp_path / "blocker").write_text("x")
    pond.mknod(
        "sitegen",
        "/etc/system.d/91-site",
        yaml.safe_dump({"out_dir": str(tmp_path / "blocker")}).encode(),
    )
    recent = pond.control_recent(limit=1)[0]
    failed = [j for j in recent.post_commit if j.status == "failed"]
    assert [j.config_path for j in failed] == ["/etc/system.d/20-notify", "/etc/system.d/91-site"]
    assert "is not a directory" in (failed[1].error_message or "")
    assert tree(out) != good  # 90-site rebuilt it (the status page changed) ...
    assert (out / "index.html").is_file()  # ... and it is whole


def test_series_without_tiers_is_downsampled_at_build_time(tmp_path: Path) -> None:
    """60,000 minutes and no temporal-reduce: too many rows to chart as they are, so the
    build computes tiers (avg/min/max) up to one that shows the whole span in 1,500 points."""
    import numpy as np
    import pyarrow as pa

    pond = Pond.create(tmp_path / "pond")
    n = 60_000
    t0 = 1_704_067_200_000_000
    table = pa.table(
        {
            "timestamp": pa.array(t0 + np.arange(n) * 60_000_000, pa.timestamp("us", tz="UTC")),
            "v": pa.array(np.arange(n, dtype=np.float64)),
        }
    )
    with pond.transaction() as tx:
        tx.write_series("/big", table)
    out = tmp_path / "site"
    pond.site_build(out)
    page = (out / "series" / "big.html").read_text()
    manifest = json.loads(re.search(r'id="manifest">(.*?)</script>', page, re.S).group(1))
    # 1m (60,000 rows) is over the limit; 1h shows the 41.7 days in 1,000 points
    assert [t["name"] for t in manifest["tiers"]] == ["5m", "15m", "1h"]
    hourly = manifest["tiers"][-1]
    assert hourly["rows"] == 1_000 and len(hourly["chunks"]) == 1
    assert hourly["lines"] == {"v": {"mid": "v.avg", "lo": "v.min", "hi": "v.max"}}
    index = (out / "index.html").read_text()
    assert "v = 59999" in index and "2024-02-11 15:59:00 UTC" in index


def test_rebuild_sees_a_new_version(tmp_path: Path) -> None:
    """The facts a build keeps are per version: appending to a series shows on the next
    build (its new last value and time), in place of the previous site."""
    import pyarrow as pa

    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    assert "2024-01-10 23:59:00 UTC" in (out / "index.html").read_text()
    later = pa.table(
        {
            "timestamp": pa.array([1_704_931_200_000_000], pa.timestamp("us", tz="UTC")),
            "level": pa.array([42.5]),
        }
    )
    with pond.transaction() as tx:
        tx.write_series("/wells/north", later)
    pond.site_build(out)
    index = (out / "index.html").read_text()
    assert "level = 42.5" in index and "2024-01-11 00:00:00 UTC" in index


def inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def _append_north(pond: Pond, us: int, level: float) -> None:
    import pyarrow as pa

    with pond.transaction() as tx:
        tx.write_series(
            "/wells/north",
            pa.table(
                {
                    "timestamp": pa.array([us], pa.timestamp("us", tz="UTC")),
                    "level": pa.array([level]),
                }
            ),
        )


def test_rebuild_replaces_only_changed_files_and_equals_a_fresh_build(tmp_path: Path) -> None:
    """A rebuild leaves the files whose bytes did not change alone (BokehJS, the data of
    series that were not written) and replaces the rest; the result is byte for byte a fresh
    build's. A rebuild that changes nothing creates no file; a site file changed since the
    last build is not the site's any more: the build refuses rather than overwrite it."""
    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    before = inodes(out)
    _append_north(pond, 1_704_931_200_000_000, 42.5)
    pond.site_build(out)
    pond.site_build(tmp_path / "fresh")
    assert tree(out) == tree(tmp_path / "fresh")
    after = inodes(out)
    kept = {name for name in after if after[name] == before.get(name)}
    assert {"lib/bokeh.min.js", "lib/bokeh-api.min.js", "assets/site.css"} <= kept
    assert any(n.startswith("data/derived_wave/") for n in kept)  # not written: untouched
    assert "index.html" not in kept  # north's last value changed
    # north's tiers gained a row: the chunk holding it is new, the earlier chunks are not
    north = {n for n in after if n.startswith("data/wells_north/")}
    assert north - kept and north & kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "pond", "site"]

    # a rebuild with nothing changed: not one file created, replaced or touched
    listing = sorted(os.listdir(out))
    pond.site_build(out)
    assert inodes(out) == after and tree(out) == tree(tmp_path / "fresh")
    assert sorted(os.listdir(out)) == listing

    # a site file changed since (same size, other bytes): refused, nothing changed
    css = out / "assets" / "site.css"
    css.write_bytes(b"x" * css.stat().st_size)
    _append_north(pond, 1_704_931_260_000_000, 43.5)
    changed = tree(out)
    proc = run_pond("site", "build", out, pond=tmp_path / "pond", check=1)
    assert "site.css is in the way of the site" in proc.stderr.decode()
    assert tree(out) == changed
    css.unlink()  # the user moves it away: the next build writes it again
    pond.site_build(out)
    pond.site_build(tmp_path / "fresh2")
    assert tree(out) == tree(tmp_path / "fresh2")
    assert "level = 43.5" in (out / "index.html").read_text()


def test_build_failing_midway_leaves_the_last_good_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that fails after it wrote some of its files leaves the site exactly as it
    was: same bytes, same files (inodes), and nothing left beside it."""
    from duckpond.site import encode

    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    _append_north(pond, 1_704_931_200_000_000, 42.5)
    good, ids = tree(out), inodes(out)
    real = encode.chunk_script
    calls: list[str] = []

    def fail_on_second_series(key: str, *args: object) -> str:
        calls.append(key)
        if key.startswith("data/wells_north/"):
            raise OSError(28, "No space left on device")
        return real(key, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(encode, "chunk_script", fail_on_second_series)
    with pytest.raises(OSError, match="No space left"):
        pond.site_build(out)
    assert any(c.startswith("data/derived_wave/") for c in calls)  # written before failing
    assert tree(out) == good and inodes(out) == ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pond", "site"]  # no leftovers
    monkeypatch.setattr(encode, "chunk_script", real)
    pond.site_build(out)
    assert "level = 42.5" in (out / "index.html").read_text()


# -- issue 17 item 9: a build removes only what an earlier build wrote -----------------------
def test_a_rebuild_keeps_the_users_files_inside_the_site(tmp_path: Path) -> None:
    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    (out / "notes.txt").write_text("mine")
    (out / "data" / "mine.csv").write_text("a,b\n")
    (out / "extra").mkdir()
    (out / "extra" / "x.html").write_text("<p>mine</p>")
    (out / "series" / "old.html").write_text("a page I wrote")
    _append_north(pond, 1_704_931_200_000_000, 42.5)
    pond.site_build(out)
    # the status page goes: a file the last build wrote is removed, the user's stay
    pond.site_build(out, {"status_page": False})
    assert not (out / "status.html").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "data" / "mine.csv").read_text() == "a,b\n"
    assert (out / "extra" / "x.html").read_text() == "<p>mine</p>"
    assert (out / "series" / "old.html").read_text() == "a page I wrote"
    assert "level = 42.5" in (out / "index.html").read_text()
    # a file of the site the user took over (its bytes changed) is not removed either
    pond.site_build(out)
    (out / "status.html").write_text("my status")
    pond.site_build(out, {"status_page": False})
    assert (out / "status.html").read_text() == "my status"


def test_a_planted_marker_or_manifest_deletes_nothing(
    site_pond: tuple[Path, int], tmp_path: Path
) -> None:
    pond, _ = site_pond
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "precious.txt").write_text("keep me")
    (home / "index.html").write_text("my index")
    (home / ".pond-site").write_text("")  # an empty marker, as an earlier pond wrote
    before = tree(home)
    proc = run_pond("site", "build", home, pond=pond, check=1)
    assert "is not empty and holds no pond site" in proc.stderr.decode()
    assert tree(home) == before
    # a planted manifest claiming the user's files: they are not what a build wrote
    files = {"docs/precious.txt": ["0" * 64], "index.html": ["0" * 64]}
    (home / ".pond-site-manifest.json").write_text(
        json.dumps({"format": "pond-site-manifest 1", "files": files})
    )
    before = tree(home)
    proc = run_pond("site", "build", home, pond=pond, check=1)
    assert "index.html is in the way of the site" in proc.stderr.decode()
    assert tree(home) == before
    (home / "index.html").unlink()
    run_pond("site", "build", home, pond=pond)
    assert (home / "docs" / "precious.txt").read_text() == "keep me"
    assert "index.html" in tree(home)


def test_a_symlinked_outdir_stays_a_link(site_pond: tuple[Path, int], tmp_path: Path) -> None:
    pond, _ = site_pond
    real = tmp_path / "www" / "real"
    real.mkdir(parents=True)
    link = tmp_path / "site"
    link.symlink_to(real, target_is_directory=True)
    run_pond("site", "build", link, pond=pond)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "index.html").is_file()
    built = tree(real)
    run_pond("site", "build", link, pond=pond)  # again, through the link
    assert link.is_symlink() and tree(real) == built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "www"]
    assert sorted(p.name for p in (tmp_path / "www").iterdir()) == ["real"]


def test_a_site_written_by_an_earlier_pond_is_taken_over(
    site_pond: tuple[Path, int], tmp_path: Path
) -> None:
    """A site with the exact marker an earlier pond wrote (no manifest): its files at the
    site's paths are replaced, anything else is kept, and the marker goes."""
    from duckpond.site.builder import LEGACY_TEXT

    pond, _ = site_pond
    out = tmp_path / "site"
    out.mkdir()
    (out / ".pond-site").write_bytes(LEGACY_TEXT)
    (out / "index.html").write_text("an old index")
    (out / "mine.txt").write_text("mine")
    run_pond("site", "build", out, pond=pond)
    assert "an old index" not in (out / "index.html").read_text()
    assert (out / "mine.txt").read_text() == "mine"
    assert not (out / ".pond-site").exists()
