"""`pond site build` and the `sitegen` post-commit factory, without a browser: what is
written, that it is the same for the same pond, that nothing outside OUTDIR is referenced,
and that a refused or failed build leaves the last good site exactly as it was."""

from __future__ import annotations

import json
import re
import shutil
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
    assert report.files == len(tree(tmp_path / "a")) and report.pages == 4
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
                "query": "SELECT timestamp, CAST(level AS BIGINT) / 0 AS level FROM n",
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


def test_rebuild_links_unchanged_files_and_equals_a_fresh_build(tmp_path: Path) -> None:
    """A rebuild hard-links the files whose bytes did not change from the site it replaces
    (BokehJS, the data of series that were not written) and writes the rest; the result is
    byte for byte a fresh build's. A file of the old site altered in place is not reused.
    The files both sites share stay beside OUTDIR as the next build's starting point."""
    import pyarrow as pa

    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    before = inodes(out)
    with pond.transaction() as tx:
        tx.write_series(
            "/wells/north",
            pa.table(
                {
                    "timestamp": pa.array([1_704_931_200_000_000], pa.timestamp("us", tz="UTC")),
                    "level": pa.array([42.5]),
                }
            ),
        )
    # same size, other bytes: must be written again, not linked
    css = out / "assets" / "site.css"
    css.write_bytes(b"x" * css.stat().st_size)
    pond.site_build(out)
    pond.site_build(tmp_path / "fresh")
    assert tree(out) == tree(tmp_path / "fresh")
    after = inodes(out)
    kept = {name for name in after if after[name] == before.get(name)}
    assert {"lib/bokeh.min.js", "lib/bokeh-api.min.js", ".pond-site"} <= kept
    assert any(n.startswith("data/derived_wave/") for n in kept)  # not written: reused
    assert "index.html" not in kept  # north's last value changed
    # north's tiers gained a row: the chunk holding it is new, the earlier chunks are not
    north = {n for n in after if n.startswith("data/wells_north/")}
    assert north - kept and north & kept
    assert "assets/site.css" not in kept
    # of the old site, only files the new one shares are kept (beside it, for the next
    # build to start from): no bytes the live site does not hold
    spare = inodes(tmp_path / ".site.spare")
    assert spare and all(after[n] == ino for n, ino in spare.items())
    assert "assets/site.css" not in spare and "index.html" not in spare

    # a rebuild with nothing changed starts from that spare: not one file created
    pond.site_build(out)
    assert inodes(out) == after and tree(out) == tree(tmp_path / "fresh")
    # a spare tampered with (a stray file, other bytes in one of its files) is corrected
    spare_dir = tmp_path / ".site.spare"
    (spare_dir / "stray.txt").write_text("not part of any site")
    victim = next(p for p in sorted(spare_dir.rglob("*.js")) if p.stat().st_nlink == 2)
    victim.unlink()  # never write into a spare file: it is the live site's file too
    victim.write_bytes(b"y" * 10)
    with pond.transaction() as tx:
        tx.write_series(
            "/wells/north",
            pa.table(
                {
                    "timestamp": pa.array([1_704_931_260_000_000], pa.timestamp("us", tz="UTC")),
                    "level": pa.array([43.5]),
                }
            ),
        )
    pond.site_build(out)
    pond.site_build(tmp_path / "fresh2")
    assert tree(out) == tree(tmp_path / "fresh2")
    assert "level = 43.5" in (out / "index.html").read_text()
    # OUTDIR removed: the next build removes what was kept of it too
    shutil.rmtree(out)
    pond.site_build(out)
    assert not spare_dir.exists() and tree(out) == tree(tmp_path / "fresh2")


def test_build_failing_after_reusing_files_leaves_the_last_good_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that fails after it linked files of the previous site into its new one
    leaves that site exactly as it was: same bytes, same files, no extra links to them."""
    from duckpond.site import builder

    pond, _ = make_pond(tmp_path / "pond")
    out = tmp_path / "site"
    pond.site_build(out)
    pond.site_build(out)  # the second build leaves a spare for the next to start from
    good, ids = tree(out), inodes(out)
    assert (tmp_path / ".site.spare").is_dir()
    real = builder._chunk_script
    calls: list[str] = []

    def fail_on_second_series(key: str, *args: object) -> str:
        calls.append(key)
        if key.startswith("data/wells_north/"):
            raise OSError(28, "No space left on device")
        return real(key, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(builder, "_chunk_script", fail_on_second_series)
    with pytest.raises(OSError, match="No space left"):
        pond.site_build(out)
    assert any(c.startswith("data/derived_wave/") for c in calls)  # linked before failing
    assert tree(out) == good and inodes(out) == ids
    assert all((out / n).stat().st_nlink == 1 for n in ids)  # no other names for them
    # no leftovers (the spare the failed build started from is gone with it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pond", "site"]
    monkeypatch.setattr(builder, "_chunk_script", real)
    pond.site_build(out)
    assert tree(out) == good
