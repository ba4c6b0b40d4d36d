"""`pond apply -f FILE...`: a pond's layout declared in YAML, applied in one transaction.

Each document is `{version: v1, kind: mkdir|copy|mknod, metadata: {path}, spec: {...}}`.
Every document of every file is validated before anything is written; then all of them are
applied in one write transaction, directories first, then copies, then factory nodes (the
nodes are checked together once all are staged, so they may refer to each other in any
order). Applying the same files again reports every path `unchanged` and commits nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import nodes, paths
from .errors import FactoryError, InvalidPathError, NotFoundError, PondError, PondUsageError

if TYPE_CHECKING:
    from .pond import Pond
    from .query.urls import SourceURL
    from .txn import WriteTxn

KINDS = ("mkdir", "copy", "mknod")
_ORDER = {"mkdir": 0, "copy": 1, "mknod": 2}


@dataclass
class Doc:
    kind: str
    path: str
    where: str  # "FILE#N" for messages
    spec: dict[str, Any] = field(default_factory=dict)
    sources: list[tuple[SourceURL, str]] = field(default_factory=list)  # copy: (url, target)


@dataclass(frozen=True)
class Planned:
    path: str
    kind: str
    action: str  # created | updated | unchanged

    def to_json(self) -> dict[str, str]:
        return asdict(self)


# -- reading and validating -------------------------------------------------------------------
def load(files: list[str | Path]) -> list[Doc]:
    """Parse and validate every document of every file; raise on the first bad one."""
    if not files:
        raise PondUsageError("apply needs at least one -f FILE")
    docs: list[Doc] = []
    for f in files:
        try:
            text = Path(f).read_text()
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {f}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise PondError(f"cannot read {f}: {e}") from None
        try:
            raw_docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise FactoryError(f"{f} is not valid YAML: {' '.join(str(e).split())}") from None
        for i, raw in enumerate(raw_docs, start=1):
            if raw is None:
                continue  # an empty document (a trailing ---)
            docs.append(_validate(raw, f"{f}#{i}"))
    if not docs:
        raise PondUsageError("no documents to apply")
    seen: dict[str, str] = {}
    for d in docs:
        if d.path in seen:
            raise InvalidPathError(f"{d.path} is declared twice ({seen[d.path]} and {d.where})")
        seen[d.path] = d.where
    return docs


def _validate(raw: Any, where: str) -> Doc:
    def bad(msg: str) -> FactoryError:
        return FactoryError(f"{where}: {msg}")

    if not isinstance(raw, dict):
        raise bad("a document is a mapping {version, kind, metadata, spec}")
    extra = sorted(set(raw) - {"version", "kind", "metadata", "spec"})
    if extra:
        raise bad(f"unknown key(s): {', '.join(map(str, extra))}")
    if raw.get("version") != "v1":
        raise bad(f"version must be v1, got {raw.get('version')!r}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise bad(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("path"), str):
        raise bad("metadata.path (a pond path) is required")
    if set(meta) - {"path"}:
        raise bad(f"unknown metadata key(s): {', '.join(sorted(set(meta) - {'path'}))}")
    if not meta["path"].startswith("/"):
        raise bad(f"metadata.path must be absolute: {meta['path']!r}")
    path = paths.normalize(meta["path"])
    spec = raw.get("spec") or {}
    if not isinstance(spec, dict):
        raise bad("spec must be a mapping")
    doc = Doc(kind, path, where, spec)
    if kind == "mkdir":
        if spec:
            raise bad(f"mkdir takes no spec keys: {', '.join(sorted(spec))}")
        if path == "/":
            raise bad("/ always exists")
    elif kind == "copy":
        _validate_copy(doc, bad)
    else:
        _validate_mknod(doc, bad)
    return doc


def _validate_copy(doc: Doc, bad: Any) -> None:
    from .query.urls import parse_source

    extra = sorted(set(doc.spec) - {"source", "overwrite", "time_column", "time_format"})
    if extra:
        raise bad(f"unknown copy spec key(s): {', '.join(extra)}")
    source = doc.spec.get("source")
    if not isinstance(source, str):
        raise bad("copy needs spec.source (host:///abs/path)")
    if not isinstance(doc.spec.get("overwrite", False), bool):
        raise bad("spec.overwrite must be true or false")
    for key, what in (("time_column", "a column name"), ("time_format", "a strptime format")):
        if key in doc.spec and not (isinstance(doc.spec[key], str) and doc.spec[key]):
            raise bad(
                f"spec.{key} must be {what} (like {'time' if 'column' in key else '%Y/%m/%d'})"
            )
    try:
        url = parse_source(source)
    except PondError as e:
        raise bad(str(e)) from None
    if url.scheme != "host":
        raise bad(f"spec.source must be a host URL (host:///abs/path), not {source}")
    try:
        url.check_storable()
    except PondError as e:
        raise bad(str(e)) from None
    from .query.sources import parsed_on_the_way_in

    if "time_format" in doc.spec and (url.fmt != "csv" or parsed_on_the_way_in(url)):
        raise bad("spec.time_format reads CSV sources without options (host+csv+series:///...)")
    host = Path(url.path)
    if host.is_dir():
        for f in sorted(p for p in host.rglob("*") if p.is_file()):
            rel = f.relative_to(host).as_posix()
            doc.sources.append((_with_path(url, str(f)), paths.join(doc.path, rel)))
        if not doc.sources:
            raise bad(f"host directory {host} holds no files")
    elif host.is_file():
        doc.sources.append((url, doc.path))
    else:
        raise bad(f"no such host file or directory: {host}")


def _with_path(url: SourceURL, path: str) -> SourceURL:
    from dataclasses import replace

    return replace(url, path=path)


def _validate_mknod(doc: Doc, bad: Any) -> None:
    from .factories import registry

    extra = sorted(set(doc.spec) - {"factory", "config"})
    if extra:
        raise bad(f"unknown mknod spec key(s): {', '.join(extra)}")
    name = doc.spec.get("factory")
    if not isinstance(name, str):
        raise bad("mknod needs spec.factory")
    config = doc.spec.get("config") or {}
    if not isinstance(config, dict):
        raise bad("spec.config must be a mapping")
    doc.spec["config"] = config
    try:
        registry.get(name).validate(config)
    except PondError as e:
        raise bad(str(e)) from None


# -- planning and applying --------------------------------------------------------------------
def apply(
    pond: Pond,
    files: list[str | Path],
    *,
    dry_run: bool = False,
    args: list[str] | None = None,
    vars: dict[str, str] | None = None,
) -> list[Planned]:
    """Validate all documents, then apply them in one transaction (none when nothing
    changes or `dry_run`). Returns each path's action, in the order applied."""
    docs = sorted(load(files), key=lambda d: (_ORDER[d.kind], d.path.count("/"), d.path))
    pond.refresh()
    plan = [Planned(d.path, d.kind, _action(pond, d)) for d in docs]
    if dry_run or all(p.action == "unchanged" for p in plan):
        return plan
    from .dynamic import check_node
    from .factories import registry

    with pond.transaction(args or ["pond", "apply", *map(str, files)], vars) as tx:
        for d, p in zip(docs, plan, strict=True):
            if p.action == "unchanged":
                continue
            if d.kind == "mkdir":
                tx.mkdir(d.path, parents=True)
            elif d.kind == "copy":
                for url, target in d.sources:
                    if _copy_action(pond, url, target, d) != "unchanged":
                        _copy(tx, url, target, d.spec)
            else:
                fac = registry.get(d.spec["factory"])
                config = yaml.safe_dump(d.spec["config"], sort_keys=False).encode()
                tx.mknod(d.path, fac.name, fac.file_type, config, overwrite=True)
        for d, p in zip(docs, plan, strict=True):
            if d.kind == "mknod" and p.action != "unchanged":
                if registry.get(d.spec["factory"]).kind == "data":
                    check_node(tx.staged, d.path)
    return plan


def _action(pond: Pond, d: Doc) -> str:
    if d.kind == "mkdir":
        loc = pond.lookup(d.path)
        if loc is None:
            return "created"
        if not nodes.is_dir(loc.file_type) or loc.file_type == nodes.DIR_DYNAMIC:
            raise InvalidPathError(f"{d.where}: {d.path} exists and is a {loc.file_type}")
        return "unchanged"
    if d.kind == "copy":
        actions = {_copy_action(pond, url, target, d) for url, target in d.sources}
        if actions == {"unchanged"}:
            return "unchanged"
        return "created" if pond.lookup(d.path) is None else "updated"
    from .factories import base

    loc = pond.lookup(d.path)
    if loc is None:
        return "created"
    if loc.row.factory is None:
        raise InvalidPathError(f"{d.where}: {d.path} exists and is a {loc.file_type}")
    from .storage.fs import PondFS

    raw = PondFS(pond.data, pond.blobs).content(loc.row)  # the config, not the derived data
    stored = base.parse_config(raw, f"config of {d.path}")
    same = loc.row.factory == d.spec["factory"] and stored == d.spec["config"]
    return "unchanged" if same else "updated"


def _copy_action(pond: Pond, url: SourceURL, target: str, d: Doc) -> str:
    loc = pond.lookup(target)
    if loc is None:
        return "created"
    want = _stored_type(url)
    if loc.file_type != want:
        raise InvalidPathError(f"{d.where}: {target} is a {loc.file_type}, not a {want}")
    if _same_content(pond, url, loc, d.spec):
        return "unchanged"
    if not d.spec.get("overwrite", False) and not nodes.is_series(want):
        raise InvalidPathError(f"{d.where}: {target} exists with other content (overwrite: true)")
    return "updated"


def _stored_type(url: SourceURL) -> str:
    if url.entry == "series" or url.fmt == "series":
        return nodes.FILE_SERIES
    if url.entry == "table" or url.fmt == "table":
        return nodes.FILE_TABLE
    return nodes.FILE_DATA


def _same_content(pond: Pond, url: SourceURL, loc: Any, spec: dict[str, Any]) -> bool:
    from .query import ingest, sources

    stored = pond.read_bytes(loc.path)
    if _stored_type(url) == nodes.FILE_DATA:
        data = ingest.read_host_bytes(url.path, url.compression)
        return hashlib.sha256(data).digest() == hashlib.sha256(stored).digest()
    if sources.parsed_on_the_way_in(url):
        series = _stored_type(url) == nodes.FILE_SERIES
        new = sources.format_source(url, series, spec.get("time_column"))[0]
    elif url.fmt == "csv":
        new = _csv_as_stored(url, spec.get("time_format"))
    else:
        new = ingest.read_parquet_bytes(ingest.read_host_bytes(url.path, url.compression), url.path)
    old = ingest.read_parquet_bytes(stored, loc.path)
    return bool(new.replace_schema_metadata(None).equals(old.replace_schema_metadata(None)))


def _csv_as_stored(url: SourceURL, time_format: str | None) -> Any:
    """The table a copy of this CSV would store: converted as `write_csv_file` converts
    (a whole-file read infers other types, e.g. seconds where the pond stores ms)."""
    import tempfile

    import pyarrow.parquet as pq

    from .query import ingest

    with tempfile.TemporaryDirectory(prefix="pond-apply-") as tmp:
        dest = Path(tmp) / "x.parquet"
        ingest.csv_to_parquet_file(
            url.path, dest, compression=url.compression, time_format=time_format
        )
        return pq.read_table(dest)


def _copy(tx: WriteTxn, url: SourceURL, target: str, spec: dict[str, Any]) -> None:
    from .query import sources

    kind = _stored_type(url)
    asked = spec.get("time_column")  # else detected; the series remembers it either way
    if sources.parsed_on_the_way_in(url) and kind != nodes.FILE_DATA:
        series = kind == nodes.FILE_SERIES
        table, time_column = sources.format_source(url, series, asked)
        tx.write_table(target, table, series=series, time_column=time_column, parents=True)
    elif url.fmt == "csv":
        tx.write_csv_file(
            target,
            url.path,
            series=kind == nodes.FILE_SERIES,
            time_column=asked,
            compression=url.compression,
            parents=True,
            time_format=spec.get("time_format"),
        )
    elif kind != nodes.FILE_DATA:
        from .query.ingest import ARROW_CODECS

        tx.write_parquet_file(
            target,
            url.path,
            series=kind == nodes.FILE_SERIES,
            time_column=asked,
            # streamed through pyarrow, which names bzip2 "bz2"
            compression=ARROW_CODECS.get(url.compression or "", url.compression),
            parents=True,
        )
    elif url.compression:
        from .query import ingest

        tx.write_bytes(target, ingest.read_host_bytes(url.path, url.compression), parents=True)
    else:
        tx.write_host_file(target, url.path, parents=True)
