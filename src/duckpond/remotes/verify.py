"""Verify: compare a local pond with a remote, entry by entry and file by file."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import NotFoundError, RemoteNotFound
from ..storage.objstore import ObjectStore
from . import layout
from .integrity import RemoteCheck, restorable
from .layout import LAST_CHECKPOINT, LOG, TABLES
from .logs import blob_refs, checkpoint_adds, local_pond_id, local_tip, remote_identity
from .reports import MISMATCH, OK, RemoteTip, VerifyReport
from .transfers import WORKERS, Transfers


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(root: Path, store: ObjectStore) -> VerifyReport:
    """Check the remote on its own as a restore would (integrity.py: every object
    fetched and checked against the remote's logs), then compare it with the local pond:
    the pond id, every log entry both hold (by bytes), every remote table file this pond
    holds (by content hash), the files this pond says the remote must hold. OK lines when
    equal or when one side is only behind; MISMATCH when they diverged or a remote object
    is missing or damaged."""
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
    objects = {o.key: o.size for o in store.list("") if restorable(o.key)}
    # The remote on its own, as a restore would check it (every object fetched once).
    check = RemoteCheck(store, objects, fail_fast=False)
    with Transfers(None) as t:
        check.read_logs(t)
        check.fetch_all(check.todo(), store.get, t)
    for key, what in check.problems[:20]:
        lines.append((MISMATCH, f"{key} {what}"))
    if len(check.problems) > 20:
        lines.append((MISMATCH, f"... and {len(check.problems) - 20} more damaged objects"))
    data = check.tables["data"]
    theirs = RemoteTip(data.listing.tip, check.tables["control"].listing.tip, data.txn_seq)
    # Then against this pond.
    with ThreadPoolExecutor(WORKERS) as pool:
        expected: set[str] = set()
        for table in TABLES:
            lines += _verify_log(root, store, table, check, expected, pool)
        damaged = {key for key, _ in check.problems}
        lines += _verify_files(root, objects, expected, check.shas, damaged)
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
    check: RemoteCheck,
    expected: set[str],
    pool: ThreadPoolExecutor,
) -> list[tuple[str, str]]:
    """Compare the entries both sides hold; collect the files the remote must hold."""
    table_dir = root / table
    local = layout.local_log(table_dir)
    remote = check.tables[table].listing
    out: list[tuple[str, str]] = []
    if remote.tip < 0:
        return [(OK, f"{table}: the remote holds no log entries yet (push to catch up)")]
    common = sorted(set(local.entries) & set(remote.entries))

    def remote_sha(v: int) -> str | None:
        key = layout.entry_key(table, v)
        return check.shas[key] if key in check.shas else _remote_sha(store, key)

    shas = dict(zip(common, pool.map(remote_sha, common), strict=True))
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


def _verify_files(
    root: Path,
    objects: dict[str, int],
    expected: set[str],
    shas: dict[str, str],
    damaged: set[str],
) -> list[tuple[str, str]]:
    """The files this pond says the remote must hold, and every remote table file this
    pond holds too, by content hash (blobs were checked against their names)."""
    out: list[tuple[str, str]] = []
    # Blobs the remote must hold: those the expected data files' rows reference.
    data_files = [root / k for k in expected if k.startswith("data/") and f"/{LOG}/" not in k]
    expected_blobs = {layout.blob_key(d) for d in blob_refs(p for p in data_files if p.exists())}
    expected = {k for k in expected if (root / k).exists()} | expected_blobs
    missing = sorted(k for k in expected if k not in objects and k not in damaged)
    for key in missing[:20]:
        out.append((MISMATCH, f"missing on the remote: {key}"))
    if len(missing) > 20:
        out.append((MISMATCH, f"... and {len(missing) - 20} more files missing on the remote"))
    checks: list[tuple[str, str]] = []  # (key, this pond's sha256)
    for key in sorted(objects):
        parts = key.split("/")
        if parts[0] in TABLES and key in shas and parts[-1] != LAST_CHECKPOINT:
            if f"/{LOG}/" in key and parts[-1].endswith(".json"):
                continue  # entries: compared above
            if (root / key).is_file():
                checks.append((key, _sha256_file(root / key)))
    corrupt = [key for key, want in checks if shas[key] != want and key not in damaged]
    for key in corrupt[:20]:
        out.append((MISMATCH, f"differs from this pond's copy: {key}"))
    if len(corrupt) > 20:
        out.append((MISMATCH, f"... and {len(corrupt) - 20} more files differ from this pond"))
    if not missing and not corrupt and not damaged:
        nbytes = sum(objects[k] for k in shas if k in objects)
        out.append((OK, f"{len(shas)} remote files fetched and checked ({nbytes:,} bytes)"))
    return out
