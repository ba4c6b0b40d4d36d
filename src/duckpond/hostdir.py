"""Writing files into a host directory without ever following a symlink at or below it.

`pond copy '/**' host:///dest` is often run as root by cron: a link planted in `dest`
(`dest/a -> /etc/passwd`, `dest/sub -> /etc`) must not redirect a write outside `dest`. Every
component is opened relative to its parent's descriptor with O_NOFOLLOW, so a link is refused
even if it appears between the check and the write. All targets are checked before the first
byte is written, so a bad name or a link in the way writes nothing.

An existing target is never opened for writing: each file is written to a new temporary file
beside it and renamed over it, so a target that is a hard link to a file outside `dest` (or
one that shares its inode with anything else) is replaced, and the other name keeps its bytes.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import InvalidPathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_EXCL: the temporary name is new, never an existing file (nor a link planted there)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidPathError(f"cannot copy out to {rel!r}: not a plain relative name")
    return parts


class HostDir:
    """A destination directory, held open by descriptor for the duration of a copy-out."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.name_max = os.fpathconf(fd, "PC_NAME_MAX")

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[HostDir]:
        """Open (creating it and its parents if missing) the destination `path`. Its parents
        are the user's choice and resolved normally; `path` itself must not be a link."""
        path = Path(os.path.abspath(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        parent = os.open(path.parent, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            created = not os.path.lexists(path)
            fd = _open_dir(parent, path.name, create=True, shown=path)
            try:
                yield cls(fd, path)
            except BaseException:
                if created:  # a refused copy leaves no trace, not even the directory
                    try:
                        os.rmdir(path.name, dir_fd=parent)
                    except OSError:
                        pass
                raise
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    def check(self, targets: Sequence[str]) -> None:
        """Refuse the whole copy when any target cannot be written: a name too long for
        the filesystem, a control character, two sources for one target, a file where a
        directory is needed (or the reverse), or a symlink in the way."""
        seen: set[tuple[str, ...]] = set()
        dirs: set[tuple[str, ...]] = set()
        for rel in targets:
            parts = tuple(_split(rel))
            for p in parts:
                if len(os.fsencode(p)) > self.name_max:
                    raise InvalidPathError(
                        f"cannot copy out {rel!r}: the name {p[:40]!r}... is longer than "
                        f"{self.name_max} bytes"
                    )
                if any(ord(c) < 32 for c in p):
                    raise InvalidPathError(f"cannot copy out {rel!r}: control character in name")
            if parts in seen or parts in dirs:
                raise InvalidPathError(f"cannot copy out {rel!r}: two entries for one target")
            seen.add(parts)
            dirs.update(parts[:i] for i in range(1, len(parts)))
        if seen & dirs:
            bad = "/".join(sorted(seen & dirs)[0])
            raise InvalidPathError(f"cannot copy out {bad!r}: both a file and a directory")
        for parts in sorted(seen):
            self._check_existing(parts)

    def _check_existing(self, parts: tuple[str, ...]) -> None:
        fd = os.dup(self.fd)
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return  # created on the way: nothing below it exists yet
                shown = self.path.joinpath(*parts[: i + 1])
                if stat.S_ISLNK(st.st_mode):
                    raise InvalidPathError(f"refusing to write through the symlink {shown}")
                if last:
                    if not stat.S_ISREG(st.st_mode):
                        raise InvalidPathError(f"cannot copy out: {shown} is not a regular file")
                    return
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidPathError(f"cannot copy out: {shown} is not a directory")
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        finally:
            os.close(fd)

    def write(self, rel: str, data: bytes) -> Path:
        """Write `data` to `rel` below the directory, creating directories on the way."""
        parts = _split(rel)
        fd = os.dup(self.fd)
        try:
            for i, name in enumerate(parts[:-1]):
                nxt = _open_dir(fd, name, create=True, shown=self.path.joinpath(*parts[: i + 1]))
                os.close(fd)
                fd = nxt
            shown = self.path.joinpath(*parts)
            mode = _existing_mode(fd, parts[-1], shown)
            # a short name of its own, so a target near NAME_MAX still fits
            tmp = f".pond-{secrets.token_hex(6)}.tmp"
            out = os.open(tmp, _FILE_FLAGS, 0o666, dir_fd=fd)
            try:
                try:
                    if mode is not None:
                        os.fchmod(out, mode)  # keep the permissions the replaced file had
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view) :]
                finally:
                    os.close(out)
                # rename replaces a name, never writes through it: a link planted since the
                # check above is itself replaced, nothing it points to is touched
                os.rename(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
            return shown
        finally:
            os.close(fd)


def _existing_mode(fd: int, name: str, shown: Path) -> int | None:
    """The permission bits of the regular file the new one replaces (None: no file there, the
    default applies). A symlink at the target is refused, as in check()."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise InvalidPathError(f"refusing to write through the symlink {shown}")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidPathError(f"cannot copy out: {shown} is not a regular file")
    return stat.S_IMODE(st.st_mode) & 0o777


def _open_dir(parent: int, name: str, create: bool, shown: Path) -> int:
    if create:
        try:
            os.mkdir(name, 0o777, dir_fd=parent)
        except FileExistsError:
            pass
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise InvalidPathError(f"refusing to write through the symlink {shown}") from None
            raise InvalidPathError(f"cannot copy out: {shown} is not a directory") from None
        raise
