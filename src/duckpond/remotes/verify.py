"""Verify: compare a local pond with a remote, entry by entry and file by file."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import NotFoundError, RemoteNotFound
from ..storage.objstore import ObjectStore
from . import layout
from .layout import LAST_CHECKPOINT, LOG, TABLES, LogListing
from .logs import (
    blob_refs,
    checkpoint_adds,
    local_pond_id,
    local_tip,
    remote_identity,
    remote_tip,
)
from .reports import MISMATCH, OK, RemoteTip, VerifyReport
from .transfers import WORKERS


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, store: ObjectStore) -> VerifyReport:
    """Compare the local pond with the remote: the pond id, every log entry both hold
    (by bytes), and every remote file by content hash (against the local file; a blob
    against its name). OK lines when equal or when one side is only behind; MISMATCH
    when they diverged or a remote file is missing or corrupt."""
    root = Path(root).absolute()
    lines: list[tuple[str, str]] = []
    mine = local_tip(root)
    if mine.data_version < 0:
        raise NotFoundError(f"no pond at {root}")
    ident = remote_identity(store)
    url = store.url
    if ident is None:
        lines.append((MISMATCH, f"{url} holds no pond ({layout.POND_JSON} is missing)"))
        return VerifyReport(url, lines, mine, RemoteTip(-1, -1, 0))
    pond_id = local_pond_id(root)
    if ident["pond_id"] != pond_id:
        lines.append((MISMATCH, f"{url} holds pond {ident['pond_id']}, not this pond {pond_id}"))
        return VerifyReport(url, lines, mine, RemoteTip(-1, -1, 0))
    lines.append((OK, f"{url} holds this pond ({pond_id})"))
    theirs = remote_tip(store)
    objects = {o.key: o.size for o in store.list("")}
    with ThreadPoolExecutor(WORKERS) as pool:
        expected: set[str] = set()
        for table in TABLES:
            lines += _verify_log(root, store, table, objects, expected, pool)
        lines += _verify_files(root, store, objects, expected, theirs, pool)
    if theirs.txn_seq < mine.txn_seq:
        lines.append(
            (
                OK,
                f"{url} is behind by {mine.txn_seq - theirs.txn_seq} transactions "
                f"(txn_seq {theirs.txn_seq} < {mine.txn_seq}); push to catch up",
            )
        )
    elif theirs.txn_seq > mine.txn_seq:
        lines.append(
            (
                OK,
                f"{url} is ahead by {theirs.txn_seq - mine.txn_seq} transactions "
                f"(txn_seq {theirs.txn_seq} > {mine.txn_seq}); pull to catch up",
            )
        )
    elif all(s == OK for s, _ in lines):
        lines.append((OK, f"{url} is up to date (txn_seq {mine.txn_seq})"))
    return VerifyReport(url, lines, mine, theirs)


def _remote_sha(store: ObjectStore, key: str) -> str | None:
    try:
        return hashlib.sha256(store.get(key)).hexdigest()
    except RemoteNotFound:
        return None


def _verify_log(
    root: Path,
    store: ObjectStore,
    table: str,
    objects: dict[str, int],
    expected: set[str],
    pool: ThreadPoolExecutor,
) -> list[tuple[str, str]]:
    """Compare the entries both sides hold; collect the files the remote must hold."""
    table_dir = root / table
    local = layout.local_log(table_dir)
    remote = LogListing()
    prefix = f"{table}/{LOG}/"
    for key, size in objects.items():
        if key.startswith(prefix) and "/" not in key[len(prefix) :]:
            remote.add(key[len(prefix) :], size)
    out: list[tuple[str, str]] = []
    if remote.tip < 0:
        return [(OK, f"{table}: the remote holds no log entries yet (push to catch up)")]
    gaps = [v for v in range(remote.start, remote.tip + 1) if v not in remote.entries]
    # a gap is valid only below a checkpoint the remote holds (the log resumes after it)
    if gaps and not any(c >= gaps[-1] for c in remote.checkpoints if c <= remote.tip):
        out.append((MISMATCH, f"{table}: remote log entries missing: {_span(gaps)}"))
    common = sorted(set(local.entries) & set(remote.entries))
    shas = dict(
        zip(
            common,
            pool.map(lambda v: _remote_sha(store, layout.entry_key(table, v)), common),
            strict=True,
        )
    )
    diverged = [v for v in common if shas[v] != _sha256_file(table_dir / LOG / local.entries[v])]
    if diverged:
        out.append((MISMATCH, f"{table}: diverged from this pond at version {diverged[0]}"))
    else:
        out.append(
            (
                OK,
                f"{table}: {len(common)} log entries match (remote version {remote.tip}, "
                f"local {local.tip})",
            )
        )
    # Files the remote must hold: those added up to its tip (that this pond still has).
    upto = min(remote.tip, local.tip)
    ck = [c for c in local.checkpoints if c <= upto]
    if local.start > 0 and ck:
        # entries pruned locally: the files live at the oldest checkpoint stand for them
        oldest = local.checkpoints[min(ck)]
        for rel in checkpoint_adds([table_dir / LOG / n for n in oldest]):
            expected.add(f"{table}/{rel}")
    for v in range(0, upto + 1):
        name = local.entries.get(v)
        if name is None:
            continue
        body = (table_dir / LOG / name).read_bytes()
        for rel in layout.parse_entry(body, f"{table} log entry {v}").adds:
            expected.add(f"{table}/{rel}")
    for v, names in local.checkpoints.items():
        if remote.start <= v <= upto:
            expected.update(layout.log_key(table, n) for n in names)
    return out


def _span(versions: list[int]) -> str:
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]}"


def _verify_files(
    root: Path,
    store: ObjectStore,
    objects: dict[str, int],
    expected: set[str],
    theirs: RemoteTip,
    pool: ThreadPoolExecutor,
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    # Blobs the remote must hold: those the expected data files' rows reference.
    data_files = [root / k for k in expected if k.startswith("data/") and f"/{LOG}/" not in k]
    expected_blobs = {layout.blob_key(d) for d in blob_refs(p for p in data_files if p.exists())}
    expected = {k for k in expected if (root / k).exists()} | expected_blobs
    missing = sorted(k for k in expected if k not in objects)
    for key in missing[:20]:
        out.append((MISMATCH, f"missing on the remote: {key}"))
    if len(missing) > 20:
        out.append((MISMATCH, f"... and {len(missing) - 20} more files missing on the remote"))
    # Every remote file this pond can check: table files against the local copy, blobs
    # against their name.
    checks: list[tuple[str, str]] = []  # (key, wanted sha256)
    for key in sorted(objects):
        parts = key.split("/")
        if parts[0] == layout.BLOBS and len(parts) == 3:
            checks.append((key, parts[2]))
        elif parts[0] in TABLES and (root / key).is_file() and parts[-1] != LAST_CHECKPOINT:
            if f"/{LOG}/" in key and parts[-1].endswith(".json"):
                continue  # entries: compared above
            checks.append((key, _sha256_file(root / key)))
    got = list(pool.map(lambda c: _remote_sha(store, c[0]), checks))
    corrupt = [
        key for (key, want), sha in zip(checks, got, strict=True) if sha is not None and sha != want
    ]
    for key in corrupt[:20]:
        out.append((MISMATCH, f"corrupt on the remote (content hash differs): {key}"))
    if len(corrupt) > 20:
        out.append((MISMATCH, f"... and {len(corrupt) - 20} more corrupt files on the remote"))
    if not missing and not corrupt:
        nbytes = sum(objects[k] for k, _ in checks if k in objects)
        out.append(
            (OK, f"{len(checks)} remote files match their content hashes ({nbytes:,} bytes)")
        )
    return out
