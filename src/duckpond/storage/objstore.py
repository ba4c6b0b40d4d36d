"""One small object-store interface for remotes, with two backends.

`file:///abs/dir` (LocalStore) writes durably: a temp file in the target directory,
synced, then renamed (put) or linked (put-if-absent, atomic), and the directory synced.
`s3://bucket/prefix` (S3Store) goes through `obstore` (Rust `object_store`): put-if-absent
is a conditional put (`If-None-Match: *`), large files upload in parts. obstore is imported
only when an s3 store is opened (start-up time).

Keys are relative to the URL (`data/_delta_log/00000000000000000001.json`). Every failure
is a `RemoteError` whose one-line message names the URL and never a secret.
"""

from __future__ import annotations

import os
import re
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from ..errors import RemoteError, RemoteNotFound, clip
from .durability import fsync_dir

# A down or hung remote must fail fast: the steward's push task runs after every write,
# holding the write lock. Each request (one object, or one part of a large upload) has
# `StoreOptions.timeout` seconds to complete, connecting at most CONNECT_TIMEOUT_S of them;
# a failed request is retried at most MAX_RETRIES times and never once `timeout` has passed
# since its first try: one call gives up within about twice `timeout`.
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 3600.0
CONNECT_TIMEOUT_S = 5.0
MAX_RETRIES = 2
STREAM_CHUNK = 4 << 20
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoreOptions:
    """Connection options of an S3-compatible store (unused for file:// URLs).

    As given to `Pond.backup_add`, `Pond.remote_add` and `Pond.restore` (and stored in an
    attachment's config), the values may be `${env:NAME}` references; `secret_access_key`
    must be one. `open_store` takes them expanded."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    allow_http: bool = False
    # seconds each request may take (None: DEFAULT_TIMEOUT_S); see the constants above
    timeout: float | None = None

    def is_set(self) -> bool:
        """Whether any option differs from its default."""
        return self != StoreOptions()

    def with_timeout(self, timeout: float | None) -> StoreOptions:
        """These options with `timeout` (seconds) when it is given."""
        return self if timeout is None else replace(self, timeout=float(timeout))

    @property
    def timeout_s(self) -> float:
        return DEFAULT_TIMEOUT_S if self.timeout is None else self.timeout

    def delta_storage_options(self) -> dict[str, str]:
        """The same options as `deltalake` (delta-rs) storage options, for other readers."""
        out: dict[str, str] = {}
        if self.endpoint:
            out["AWS_ENDPOINT_URL"] = self.endpoint
        if self.region:
            out["AWS_REGION"] = self.region
        if self.access_key_id:
            out["AWS_ACCESS_KEY_ID"] = self.access_key_id
        if self.secret_access_key:
            out["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.allow_http:
            out["AWS_ALLOW_HTTP"] = "true"
        return out


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RemoteError(f"invalid remote key {clip(key)!r}")
    return key


class ObjectStore(ABC):
    """A flat key -> bytes store under one URL."""

    url: str

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; `RemoteNotFound` when absent."""

    @abstractmethod
    def get_file(self, key: str, path: Path, sync: bool = True) -> int:
        """Stream the object into `path` (replaced atomically; data synced unless `sync`
        is False, for a caller that syncs the whole file system once; the caller syncs the
        directory); returns its size. `RemoteNotFound` when absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, or None when absent."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the object."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (streamed; in parts when large)."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write the object only if no object has the key (atomic); False if one had."""

    @abstractmethod
    def list(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        """Every object under `prefix` (a key prefix of whole segments), sorted by key;
        with `after`, only keys greater than it."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (no error when absent)."""

    def set_modified(self, key: str, ms: int) -> None:
        """Give the object this modification time where the store allows it (a
        directory does; S3 keeps the upload time)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(ObjectStore):
    """A directory, written durably (temp file, fsync, rename or link, fsync dir)."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.url = url or f"file://{root}"

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _fail(self, what: str, key: str, e: OSError) -> NoReturn:
        raise RemoteError(f"remote {self.url}: cannot {what} {key}: {e.strerror or e}") from None

    def _parent(self, path: Path) -> None:
        """Create the directories above `path`, each synced into its own parent."""
        missing = []
        p = path.parent
        while not p.is_dir():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            fsync_dir(d.parent)

    def _temp(self, dest: Path) -> Path:
        self._parent(dest)
        return dest.parent / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise RemoteNotFound(f"remote {self.url} has no {key}") from None
        except OSError as e:
            self._fail("read", key, e)

    def get_file(self, key: str, path: Path, sync: bool = True) -> int:
        src = self._path(key)
        tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, STREAM_CHUNK)
                fout.flush()
                if sync:
                    os.fdatasync(fout.fileno())
                size = fout.tell()
            os.replace(tmp, path)
            return size
        except (FileNotFoundError, NotADirectoryError) as e:
            if not src.exists():
                raise RemoteNotFound(f"remote {self.url} has no {key}") from None
            raise RemoteError(f"cannot write {path}: {e.strerror or e}") from None
        except OSError as e:
            self._fail("read", key, e)
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            self._fail("stat", key, e)
        return ObjectInfo(key, st.st_size)

    def _write_temp(self, dest: Path, data: bytes | None, src: Path | None) -> Path:
        tmp = self._temp(dest)
        try:
            with open(tmp, "wb") as f:
                if src is not None:
                    with open(src, "rb") as fin:
                        shutil.copyfileobj(fin, f, STREAM_CHUNK)
                else:
                    f.write(data or b"")
                f.flush()
                os.fdatasync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def put(self, key: str, data: bytes) -> None:
        self._install(key, data, None)

    def put_file(self, key: str, path: Path) -> None:
        self._install(key, None, path)

    def _install(self, key: str, data: bytes | None, src: Path | None) -> None:
        dest = self._path(key)
        try:
            tmp = self._write_temp(dest, data, src)
            try:
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(dest.parent)
        except OSError as e:
            self._fail("write", key, e)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        dest = self._path(key)
        try:
            tmp = self._write_temp(dest, data, None)
            try:
                os.link(tmp, dest)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(dest.parent)
            return True
        except OSError as e:
            self._fail("write", key, e)

    def set_modified(self, key: str, ms: int) -> None:
        try:
            os.utime(self._path(key), ns=(ms * 1_000_000, ms * 1_000_000))
        except OSError as e:
            self._fail("write", key, e)

    def list(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        prefix = prefix.strip("/")
        top = self.root / _check_key(prefix) if prefix else self.root
        out: list[ObjectInfo] = []
        try:
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
                rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                for name in filenames:
                    if name.startswith(TMP_PREFIX):
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if after is not None and key <= after:
                        continue
                    try:
                        size = os.stat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:
                        continue
                    out.append(ObjectInfo(key, size))
        except OSError as e:
            self._fail("list", prefix, e)
        out.sort(key=lambda o: o.key)
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                fsync_dir(path.parent)
        except OSError as e:
            self._fail("delete", key, e)


class S3Store(ObjectStore):
    """An S3-compatible bucket (AWS, MinIO, R2, a local test server) through obstore."""

    def __init__(self, bucket: str, prefix: str, options: StoreOptions, url: str) -> None:
        from obstore.store import S3Store as _S3

        self.url = url
        self.bucket = bucket
        self.prefix = prefix
        config: dict[str, Any] = {}
        if options.endpoint:
            config["endpoint"] = options.endpoint
        if options.region:
            config["region"] = options.region
        if options.access_key_id:
            config["access_key_id"] = options.access_key_id
        if options.secret_access_key:
            config["secret_access_key"] = options.secret_access_key
        self.timeout = options.timeout_s
        limit = timedelta(seconds=self.timeout)
        client: dict[str, Any] = {
            "connect_timeout": min(limit, timedelta(seconds=CONNECT_TIMEOUT_S)),
            "timeout": limit,
        }
        if options.allow_http:
            client["allow_http"] = True
        retry: dict[str, Any] = {
            "max_retries": MAX_RETRIES,
            "retry_timeout": limit,
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
            },
        }
        try:
            self._store = _S3(
                bucket,
                prefix=prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                retry_config=retry,  # type: ignore[arg-type]
            )
        except Exception as e:  # obstore's configuration errors
            self._fail("open", "", e)

    def _fail(self, what: str, key: str, e: BaseException) -> NoReturn:
        reason = _reason(e)
        if _timed_out(e):
            reason = f"no answer within its timeout of {self.timeout:g}s"
        raise RemoteError(
            f"remote {self.url}: cannot {what} {key}: {reason}".replace("  ", " ")
        ) from None

    def get(self, key: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self._store, _check_key(key)).bytes())
        except FileNotFoundError:  # obstore's NotFoundError is one
            raise RemoteNotFound(f"remote {self.url} has no {key}") from None
        except Exception as e:
            self._fail("read", key, e)

    def get_file(self, key: str, path: Path, sync: bool = True) -> int:
        import obstore

        tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        try:
            result = obstore.get(self._store, _check_key(key))
            size = 0
            with open(tmp, "wb") as f:
                if int(result.meta["size"]) <= STREAM_CHUNK:
                    size = f.write(result.bytes())
                else:
                    for chunk in result.stream(min_chunk_size=STREAM_CHUNK):
                        size += f.write(chunk)
                f.flush()
                if sync:
                    os.fdatasync(f.fileno())
            os.replace(tmp, path)
            return size
        except FileNotFoundError:
            if not path.parent.is_dir():
                raise RemoteError(f"cannot write {path}: no such directory") from None
            raise RemoteNotFound(f"remote {self.url} has no {key}") from None
        except OSError as e:
            if _is_obstore_error(e):
                self._fail("read", key, e)
            raise RemoteError(f"cannot write {path}: {e.strerror or e}") from None
        except Exception as e:
            self._fail("read", key, e)
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo | None:
        import obstore

        try:
            meta = obstore.head(self._store, _check_key(key))
        except FileNotFoundError:
            return None
        except Exception as e:
            self._fail("stat", key, e)
        return ObjectInfo(key, int(meta["size"]))

    def put(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, _check_key(key), data)
        except Exception as e:
            self._fail("write", key, e)

    def put_file(self, key: str, path: Path) -> None:
        import obstore

        try:
            obstore.put(self._store, _check_key(key), Path(path))
        except Exception as e:
            if isinstance(e, OSError) and not _is_obstore_error(e):
                raise RemoteError(f"cannot read {path}: {e.strerror or e}") from None
            self._fail("write", key, e)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self._store, _check_key(key), data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        except Exception as e:
            self._fail("write", key, e)
        return True

    def list(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        import obstore

        prefix = prefix.strip("/")
        out: list[ObjectInfo] = []
        try:
            stream = obstore.list(self._store, prefix or None, offset=after, chunk_size=1000)
            for chunk in stream:
                for meta in chunk:
                    key = str(meta["path"])
                    if key.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                        continue
                    out.append(ObjectInfo(key, int(meta["size"])))
        except Exception as e:
            self._fail("list", prefix, e)
        out.sort(key=lambda o: o.key)
        return out

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, _check_key(key))
        except FileNotFoundError:
            return
        except Exception as e:
            self._fail("delete", key, e)


def _is_obstore_error(e: BaseException) -> bool:
    return type(e).__module__.startswith("obstore")


def _timed_out(e: BaseException) -> bool:
    """Whether an obstore error is a request that ran out of time (reqwest's timeout)."""
    text = str(e)
    return _is_obstore_error(e) and ("kind: Timeout" in text or "TimedOut" in text)


_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def _reason(e: BaseException) -> str:
    """A one-line reason from an obstore error (whose text spans a debug dump)."""
    text = str(e)
    code, message = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    if code:
        return clip(f"{code.group(1)}: {message.group(1) if message else ''}".strip(": "), 200)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    # "... Error performing PUT http://host/bucket/key in 5ms, after 2 retries - <cause>"
    if " - " in first:
        first = first.rsplit(" - ", 1)[-1]
    lowered = text.lower()
    for hint in ("connection refused", "timed out", "dns error", "certificate"):
        if hint in lowered and hint not in first.lower():
            first = f"{first} ({hint})"
    return clip(first, 200)


def open_store(url: str, options: StoreOptions | None = None) -> ObjectStore:
    """The store at `url`: `file:///abs/dir` or `s3://bucket[/prefix]`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise RemoteError(f"remote URL {clip(url)} must be file:///absolute/dir")
        path = Path(unquote(parts.path))
        if path != Path(os.path.normpath(path)) or ".." in path.parts:
            raise RemoteError(f"remote URL {clip(url)} must be a normalized absolute path")
        return LocalStore(path, url.rstrip("/") if len(url) > len("file:///") else url)
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not bucket or parts.query or parts.fragment:
            raise RemoteError(f"remote URL {clip(url)} must be s3://bucket/prefix")
        prefix = unquote(parts.path).strip("/")
        if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
            raise RemoteError(f"remote URL {clip(url)} has an invalid prefix")
        clean = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return S3Store(bucket, prefix, options or StoreOptions(), clean)
    raise RemoteError(
        f"unsupported remote URL {clip(url)}: use file:///absolute/dir or s3://bucket/prefix"
    )
