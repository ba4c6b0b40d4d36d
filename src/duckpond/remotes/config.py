"""Attachments: which remotes a pond has, as YAML configs of the `remote` factory.

A backup or import is the factory node `/sys/remotes/NAME` (so it is versioned and backed up
with the pond). Its config keys: `url`, `mode` (push | pull | both), `mount` (where an import
appears; `/` for the pond's own backup), and the S3 options `endpoint`, `region`,
`access_key_id`, `secret_access_key`, `allow_http` and `timeout` (seconds each request may
take, default storage.objstore.DEFAULT_TIMEOUT_S). A secret is only ever stored as an
`${env:NAME}` reference: expanded when the store is opened, never written anywhere (the
other string options may be references too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import nodes, paths
from ..errors import FactoryError, InvalidPathError, PondError, PondUsageError, clip
from ..storage.objstore import StoreOptions

if TYPE_CHECKING:
    from ..factories.base import Secrets
    from ..storage.fs import PondFS
    from ..storage.objstore import ObjectStore

REMOTES_DIR = "/sys/remotes"
# The pond's own configuration (/etc/system.d jobs, /sys/remotes): never an import's mount.
RESERVED_MOUNTS = ("/etc", "/sys")
FACTORY = "remote"
IMPORT_FACTORY = "remote-import"  # an import's mount (remotes/mount.py)
IMPORTS_DIR = "imports"  # $POND/imports/NAME: the copy of an imported pond
MODES = ("push", "pull", "both")
# The string options of StoreOptions, in its field order (then `allow_http`, a bool).
S3_KEYS = ("endpoint", "region", "access_key_id", "secret_access_key")
KEYS = ("url", "mode", "mount", *S3_KEYS, "allow_http", "timeout")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_ONLY = re.compile(r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Attachment:
    """One remote of this pond. `mirror`: a restored pond's attachment, kept in a local file
    ($POND/remotes/NAME.yaml) because writing it as a node would fork the pond from its
    source."""

    name: str
    url: str
    mode: str = "push"
    mount: str | None = None
    options: StoreOptions = field(default_factory=StoreOptions)  # references unexpanded
    mirror: bool = False

    @property
    def pushes(self) -> bool:
        return self.mode in ("push", "both")

    @property
    def pulls(self) -> bool:
        return self.mode in ("pull", "both")

    @property
    def is_import(self) -> bool:
        """Another pond shown read-only under `mount` (pulled into $POND/imports/NAME)."""
        return self.mode == "pull" and self.mount not in (None, "/")

    @property
    def node_path(self) -> str:
        return paths.join(REMOTES_DIR, self.name)

    def to_config(self) -> dict[str, Any]:
        """The YAML mapping stored (references unexpanded; unset options left out)."""
        out: dict[str, Any] = {"url": self.url, "mode": self.mode}
        if self.mount is not None:
            out["mount"] = self.mount
        for key in S3_KEYS:
            value = getattr(self.options, key)
            if value is not None:
                out[key] = value
        if self.options.allow_http:
            out["allow_http"] = True
        if self.options.timeout is not None:
            out["timeout"] = _number(self.options.timeout)
        return out

    def to_yaml(self) -> bytes:
        import yaml

        return str(yaml.safe_dump(self.to_config(), sort_keys=True)).encode()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise PondUsageError(
            f"bad remote name {clip(name)!r}: use letters, digits, '_', '.' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def check_url(url: str) -> str:
    """`file:///abs/dir` or `s3://bucket[/prefix]`; anything else is refused."""
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path.startswith("/") or path.rstrip("/") == "":
            raise PondUsageError(
                f"bad remote URL {clip(url)!r}: a directory is file:///absolute/path"
            )
        if any(part in (".", "..") for part in path.split("/")):
            raise PondUsageError(f"bad remote URL {clip(url)!r}: no '.' or '..' parts")
        return url
    if url.startswith("s3://"):
        bucket, _, _prefix = url[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise PondUsageError(
                f"bad remote URL {clip(url)!r}: s3://bucket/prefix needs a valid bucket name"
            )
        return url
    raise PondUsageError(
        f"bad remote URL {clip(url)!r}: use file:///absolute/dir or s3://bucket/prefix"
    )


def check_mount(mount: str) -> str:
    """Refuse an import mounted where the pond keeps its configuration (its nodes there
    would be read as post-commit jobs or remotes)."""
    from ..errors import InvalidPathError

    for top in RESERVED_MOUNTS:
        if mount == top or mount.startswith(top + "/"):
            raise InvalidPathError(
                f"an import cannot be mounted under {top} (the pond's own configuration)"
            )
    return mount


def check_secret(value: str | None) -> str | None:
    """A secret is stored only as a reference; the literal is never echoed back."""
    if value is None or _ENV_ONLY.match(value):
        return value
    raise PondUsageError(
        "--secret-access-key must be an environment reference such as "
        "'${env:AWS_SECRET_ACCESS_KEY}': a literal secret would be stored in the pond "
        "and on its backups"
    )


def check_timeout(value: object) -> float | None:
    """A remote's `timeout`: seconds, more than 0 and at most MAX_TIMEOUT_S."""
    from ..storage.objstore import MAX_TIMEOUT_S

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PondUsageError(f"timeout must be a number of seconds, not {clip(str(value))!r}")
    if not 0 < value <= MAX_TIMEOUT_S:
        raise PondUsageError(
            f"timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, not {value:g}"
        )
    return float(value)


def _number(value: float) -> int | float:
    """A whole number of seconds is stored as an int (`timeout: 30`, not `30.0`)."""
    return int(value) if float(value).is_integer() else value


def validate(config: dict[str, Any], what: str = "remote") -> dict[str, Any]:
    """Check a stored config (references unexpanded); FactoryError with the reason."""
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise FactoryError(f"{what}: unknown config key(s): {', '.join(map(str, unknown))}")
    for key in KEYS:
        if key == "timeout":
            continue  # a number, checked below
        value = config.get(key)
        want: type = bool if key == "allow_http" else str
        if value is not None and not isinstance(value, want):
            kind = "true or false" if want is bool else "a string"
            raise FactoryError(f"{what}: '{key}' must be {kind}")
    if not config.get("url"):
        raise FactoryError(f"{what}: config needs 'url'")
    mode = config.get("mode", "push")
    if mode not in MODES:
        raise FactoryError(f"{what}: 'mode' must be one of {', '.join(MODES)}, not {mode!r}")
    try:
        check_url(config["url"])
        check_secret(config.get("secret_access_key"))
        check_timeout(config.get("timeout"))
    except PondUsageError as e:
        raise FactoryError(f"{what}: {e}") from None
    mount = config.get("mount")
    if mount is not None and paths.normalize(mount) != mount:
        raise FactoryError(f"{what}: 'mount' must be an absolute, normalized pond path")
    if mode == "pull" and mount is None:
        raise FactoryError(f"{what}: a pull-mode remote needs 'mount'")
    return dict(config)


def from_config(name: str, config: dict[str, Any], mirror: bool = False) -> Attachment:
    cfg = validate(config, f"remote {name}")
    return Attachment(
        name=name,
        url=cfg["url"],
        mode=cfg.get("mode", "push"),
        mount=cfg.get("mount"),
        options=options_of(cfg),
        mirror=mirror,
    )


def options_of(config: dict[str, Any]) -> StoreOptions:
    """The S3 options of a config mapping (as they are: references stay references)."""
    timeout = config.get("timeout")
    return StoreOptions(
        **{key: config.get(key) for key in S3_KEYS},
        allow_http=bool(config.get("allow_http", False)),
        timeout=None if timeout is None else float(timeout),
    )


def parse(name: str, raw: bytes, mirror: bool = False) -> Attachment:
    from ..factories.base import parse_config

    return from_config(name, parse_config(raw, f"remote {name}"), mirror=mirror)


def store_options(att: Attachment, secrets: Secrets | None = None) -> StoreOptions:
    """The S3 options with `${env:...}` expanded now (values collected in `secrets`, so an
    error text can have them put back as references)."""
    from ..factories.base import expand_env

    try:
        values = {key: expand_env(getattr(att.options, key), secrets) for key in S3_KEYS}
    except FactoryError as e:
        raise FactoryError(f"remote {att.name}: {e}") from None
    return StoreOptions(**values, allow_http=att.options.allow_http, timeout=att.options.timeout)


def store_for(att: Attachment, secrets: Secrets | None = None) -> ObjectStore:
    """The object store of an attachment (obstore loads here, never at start-up)."""
    from ..storage.objstore import open_store

    return open_store(att.url, store_options(att, secrets))


def node_attachments(fs: PondFS) -> list[Attachment]:
    """The attachments stored as nodes under /sys/remotes, in name order (unparseable
    ones are skipped: the task of such a node fails with the reason)."""
    loc = fs.lookup(REMOTES_DIR)
    if loc is None or not nodes.is_dir(loc.file_type):
        return []
    out = []
    for child in fs.children(loc):
        if child.row.factory != FACTORY:
            continue
        try:
            out.append(parse(paths.basename(child.path), fs.content(child.row)))
        except PondError:
            continue
    return sorted(out, key=lambda a: a.name)


def import_root(root: Path, name: str) -> Path:
    """Where `pond pull NAME` keeps the copy of an imported pond."""
    return Path(root) / IMPORTS_DIR / name


def explain_write_error(fs: PondFS, e: PondError) -> PondError | None:
    """A write refused at or under an import's mount (the path storage refused it at,
    `e.path`), said plainly; None when it is not one."""
    if e.path is None:
        return None
    for att in node_attachments(fs):
        if not att.is_import or att.mount is None:
            continue
        if e.path == att.mount or e.path.startswith(att.mount.rstrip("/") + "/"):
            return InvalidPathError(
                f"{att.mount} is a read-only import of remote {att.name}: "
                "writes under it are refused"
            )
    return None
