"""Restore and verify check every remote object against what the remote's logs say
(issue 17 item 4): a damaged remote is a non-zero exit naming the object, and a failed
restore leaves nothing at its target.

One pond and its `file://` backup are built once per module; each attack damages a copy
of the backup."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_pond
from s3server import Remote

from duckpond.pond import Pond

BIG = 200 * 1024 + 17  # a blob (>= 64 KiB lives outside the rows)


@dataclass
class Built:
    pond: Path  # the source pond (backup b1 -> remote)
    remote: Path  # its pristine file:// backup
    mirror: Path  # a pond restored from it (attachment b1 -> remote)


def tree_bytes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in ("write.lock", "cache", "remotes"):
            if not p.name.startswith(".tmp-"):
                out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    import pyarrow as pa

    base = tmp_path_factory.mktemp("integrity")
    root = base / "pond"
    pond = Pond.create(root)
    with pond.transaction(["setup"]) as tx:
        tx.mkdir("/raw")
        tx.write_bytes("/raw/big.bin", os.urandom(BIG))
    with pond.transaction(["setup"]) as tx:
        tx.write_table("/raw/t", pa.table({"ts": ["2024-01-01", "2024-01-02"], "v": [1, 2]}))
    with pond.transaction(["setup"]) as tx:
        tx.write_bytes("/many/f.txt", b"file\n" * 50, parents=True)
    remote = base / "remote"
    run_pond("backup", "add", "b1", f"file://{remote}", pond=root)
    mirror = base / "mirror"
    run_pond("restore", "b1", f"file://{remote}", pond=mirror)
    return Built(root, remote, mirror)


def _flip(path: Path) -> None:
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0x01
    path.write_bytes(bytes(body))


def _blob(remote: Path) -> Path:
    return next(p for p in sorted((remote / "blobs").rglob("*")) if p.is_file())


def _data_file(remote: Path) -> Path:
    """The largest data Parquet file the log adds (the blob's row and the table's)."""
    files = [p for p in (remote / "data").rglob("*.parquet") if "_delta_log" not in p.parts]
    files = [p for p in files if "_pond_archive" not in p.parts]
    return max(files, key=lambda p: p.stat().st_size)


def _newest_entry(remote: Path, table: str) -> Path:
    return sorted((remote / table / "_delta_log").glob("*.json"))[-1]


def flip_blob(remote: Path) -> Path:
    p = _blob(remote)
    _flip(p)
    return p


def flip_data_file(remote: Path) -> Path:
    p = _data_file(remote)
    _flip(p)
    return p


def delete_data_file(remote: Path) -> Path:
    p = _data_file(remote)
    p.unlink()
    return p


def delete_blob(remote: Path) -> Path:
    p = _blob(remote)
    p.unlink()
    return p


def truncate_control_entry(remote: Path) -> Path:
    p = _newest_entry(remote, "control")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def junk_line_in_data_entry(remote: Path) -> Path:
    p = remote / "data" / "_delta_log" / f"{1:020d}.json"
    p.write_bytes(p.read_bytes() + b"junk\n")
    return p


def delete_newest_data_entry(remote: Path) -> Path:
    p = _newest_entry(remote, "data")
    p.unlink()
    return p


def truncate_data_entry(remote: Path) -> Path:
    """Cut the newest data entry at a line boundary: every line left is whole JSON."""
    p = _newest_entry(remote, "data")
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:-1]))
    return p


ATTACKS: list[Callable[[Path], Path]] = [
    flip_blob,
    flip_data_file,
    delete_data_file,
    delete_blob,
    truncate_control_entry,
    junk_line_in_data_entry,
    delete_newest_data_entry,
    truncate_data_entry,
]


def _damaged_copy(built: Built, tmp_path: Path, attack: Callable[[Path], Path]) -> tuple[Path, str]:
    remote = tmp_path / "remote"
    shutil.copytree(built.remote, remote)
    return remote, str(attack(remote).relative_to(remote))


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_restore_of_a_damaged_remote_fails_naming_the_object_and_leaves_nothing(
    built: Built, tmp_path: Path, attack: Callable[[Path], Path]
) -> None:
    remote, key = _damaged_copy(built, tmp_path, attack)
    target = tmp_path / "restored" / "pond"  # its parent is made by the restore, too
    proc = run_pond("restore", "b1", f"file://{remote}", pond=target, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert key in lines[0], (key, lines[0])
    assert not target.exists() and not target.parent.exists()
    assert list(tmp_path.iterdir()) == [remote]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_verify_of_a_damaged_remote_fails_naming_the_object(
    built: Built, tmp_path: Path, attack: Callable[[Path], Path]
) -> None:
    remote, key = _damaged_copy(built, tmp_path, attack)
    mirror = tmp_path / "mirror"
    shutil.copytree(built.mirror, mirror)
    yaml = mirror / "remotes" / "b1.yaml"
    yaml.write_text(yaml.read_text().replace(str(built.remote), str(remote)))
    proc = run_pond("verify", "b1", pond=mirror, check=1)
    out = proc.stdout.decode()
    assert any(line.startswith("[MISMATCH]") and key in line for line in out.splitlines()), out


def test_a_failed_restore_leaves_an_empty_target_directory_as_it_was(
    built: Built, tmp_path: Path
) -> None:
    remote, key = _damaged_copy(built, tmp_path, flip_blob)
    target = tmp_path / "empty"
    target.mkdir()
    os.chmod(target, 0o750)
    before = target.stat()
    proc = run_pond("restore", "b1", f"file://{remote}", pond=target, check=False)
    assert proc.returncode != 0 and key in proc.stderr.decode()
    after = target.stat()
    assert list(target.iterdir()) == []
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "remote"]


def test_an_undamaged_remote_restores_byte_identically_and_verifies_clean(
    built: Built, tmp_path: Path
) -> None:
    target = tmp_path / "restored"
    run_pond("restore", "b1", f"file://{built.remote}", pond=target)
    restored, remote, source = (tree_bytes(p) for p in (target, built.remote, built.pond))
    remote.pop("pond.json")
    assert restored == remote
    # the source is ahead only by the control records of its backup's own push
    assert {k: source[k] for k in restored} == restored
    for pond in (built.pond, target):
        proc = run_pond("verify", "b1", pond=pond)
        assert "[MISMATCH]" not in proc.stdout.decode()


def test_restore_from_s3_checks_what_it_downloads(
    built: Built, tmp_path: Path, s3_remote: Remote
) -> None:
    from test_remotes_cli import remote_args

    source = tmp_path / "pond"
    shutil.copytree(built.pond, source)
    opts, env = remote_args(s3_remote)
    run_pond("backup", "add", "s3b", s3_remote.url, *opts, pond=source, env=env)
    store = s3_remote.store()
    key = next(o.key for o in store.list("blobs/"))
    body = bytearray(store.get(key))
    body[len(body) // 2] ^= 0x01
    store.put(key, bytes(body))
    target = tmp_path / "restored"
    proc = run_pond("restore", "s3b", s3_remote.url, *opts, pond=target, env=env, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and key in err and len(err.splitlines()) == 1, err
    assert not target.exists()
