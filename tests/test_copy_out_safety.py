"""Copy-out never writes outside its destination (issue 6 item 1) and checks every target
before writing any (issue 6 item 7): a symlink planted at or below the destination is refused
with a clear error, and nothing is written anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_pond

from duckpond.errors import InvalidPathError
from duckpond.hostdir import HostDir
from duckpond.pond import Pond


@pytest.fixture
def pond(pond_dir: Path) -> Pond:
    pond = Pond.open(pond_dir)
    with pond.transaction() as tx:
        tx.write_bytes("/a.txt", b"pond a")
        tx.write_bytes("/sub/b.txt", b"pond b", parents=True)
    return pond


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, or the link target of a symlink."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = f"-> {os.readlink(p)}"
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def copy_out(pond: Pond, dest: Path, check: bool | int = True) -> str:
    proc = run_pond("copy", "/**", f"host://{dest}", pond=pond.root, check=check)
    return proc.stderr.decode()


def test_copy_out_keeps_the_tree(pond: Pond, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    copy_out(pond, dest)
    assert tree(dest) == {"a.txt": b"pond a", "sub/b.txt": b"pond b"}
    copy_out(pond, dest)  # again over its own files: fine
    assert tree(dest) == {"a.txt": b"pond a", "sub/b.txt": b"pond b"}


def test_a_file_link_in_dest_is_not_followed(pond: Pond, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").symlink_to(victim)
    err = copy_out(pond, dest, check=1)
    assert err.startswith("error: refusing to write through the symlink") and "a.txt" in err
    assert victim.read_bytes() == b"precious"
    assert tree(dest) == {"a.txt": f"-> {victim}"}  # nothing written, not even sub/b.txt


def test_a_dangling_file_link_is_not_followed(pond: Pond, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").symlink_to(outside / "created")
    assert copy_out(pond, dest, check=1).startswith("error: refusing")
    assert tree(outside) == {}


def test_a_directory_link_in_dest_is_not_followed(pond: Pond, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    err = copy_out(pond, dest, check=1)
    assert "symlink" in err and "sub" in err
    assert tree(outside) == {}
    assert tree(dest) == {"sub": f"-> {outside}"}  # a.txt was not written either


def test_dest_itself_a_link_is_refused(pond: Pond, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dest").symlink_to(outside, target_is_directory=True)
    assert "symlink" in copy_out(pond, tmp_path / "dest", check=1)
    assert tree(outside) == {}


def test_a_link_planted_after_the_check_is_still_refused(pond: Pond, tmp_path: Path) -> None:
    # The race: the check passed, then a link appears. O_NOFOLLOW on every component holds.
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    with HostDir.open(dest) as out:
        out.check(["x/y.txt", "z.txt"])
        (dest / "x").symlink_to(outside, target_is_directory=True)
        (dest / "z.txt").symlink_to(outside / "z.txt")
        with pytest.raises(InvalidPathError, match="symlink"):
            out.write("x/y.txt", b"1")
        with pytest.raises(InvalidPathError, match="symlink"):
            out.write("z.txt", b"1")
    assert tree(outside) == {}


def test_every_target_is_checked_before_any_is_written(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "d").write_bytes(b"a file where a directory is needed")
    with HostDir.open(dest) as out:
        with pytest.raises(InvalidPathError, match="longer than"):
            out.check(["ok.txt", "n" * 300])
        with pytest.raises(InvalidPathError, match="control character"):
            out.check(["ok.txt", "bad\nname"])
        with pytest.raises(InvalidPathError, match="not a directory"):
            out.check(["ok.txt", "d/f"])
        with pytest.raises(InvalidPathError, match="both a file and a directory"):
            out.check(["e", "e/f"])
    assert tree(dest) == {"d": b"a file where a directory is needed"}


def test_a_refused_copy_leaves_no_new_destination(pond: Pond, tmp_path: Path) -> None:
    dest = tmp_path / "new" / "dest"
    with pytest.raises(InvalidPathError, match="two entries for one target"):
        pond.copy_out(["/a.txt", "/a.txt"], dest)
    assert not dest.exists()


def test_copy_out_library_call_refuses_the_same(pond: Pond, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InvalidPathError, match="symlink"):
        pond.copy_out("/**", dest)
    assert tree(dest) == {"sub": f"-> {tmp_path}"}


def test_a_hard_link_at_the_target_is_replaced_not_written_through(
    pond: Pond, tmp_path: Path
) -> None:
    # issue 17 item 6: a target that is a hard link to a file outside dest is replaced
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    os.link(victim, dest / "a.txt")
    os.link(victim, dest / "sub" / "b.txt")
    (dest / "a.txt").chmod(0o640)
    copy_out(pond, dest)
    assert victim.read_bytes() == b"precious"
    assert tree(dest) == {"a.txt": b"pond a", "sub/b.txt": b"pond b"}
    assert (dest / "a.txt").stat().st_ino != victim.stat().st_ino
    assert victim.stat().st_nlink == 1
    assert (dest / "a.txt").stat().st_mode & 0o777 == 0o640  # its permissions are kept


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with HostDir.open(dest) as out:
        out.check(["a.txt"])
        (dest / "a.txt").mkdir()  # a directory appeared where the file goes
        with pytest.raises(InvalidPathError, match="not a regular file"):
            out.write("a.txt", b"1")
        (dest / "a.txt").rmdir()
        out.write("a.txt", b"1")
    assert tree(dest) == {"a.txt": b"1"}
