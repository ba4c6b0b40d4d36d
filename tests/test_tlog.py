"""The tamper-evident log (`pond tlog show|verify`): an intact pond reproduces its tree,
and every kind of tampering (another Delta writer editing, deleting or adding rows; a data
log entry deleted, two swapped, the log cut short) names the exact first changed txn_seq,
locally and in a backup. Real ponds, the real CLI, real SIGKILLs at the crash points."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import run_pond
from deltalake import DeltaTable, write_deltalake
from s3server import ACCESS_KEY, REGION, SECRET_KEY, Remote
from steward_helpers import make_pond, write_file

from duckpond.pond import Pond

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


# -- an independent RFC 6962 reference ---------------------------------------------------------
def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle tree hash over leaf hashes, by its recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_the_tree_is_rfc6962_at_every_size() -> None:
    from duckpond.storage.tlog import Tree, hash_leaf

    leaves = [hash_leaf(b"leaf %d" % i) for i in range(70)]
    tree = Tree()
    assert tree.root() == mth([])
    for i, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert (tree.size, tree.root()) == (i, mth(leaves[:i]))
        assert len(tree.frontier) == bin(i).count("1")


def _pond(tmp_path: Path, writes: int = 5) -> Path:
    """init (txn 1) and `writes` more transactions, each one file: txns 2..writes+1."""
    root = tmp_path / "pond"
    pond = Pond.create(root)
    for i in range(writes):
        write_file(pond, f"/d/f{i}", f"content {i}\n".encode() * (i + 1))
    return root


def show(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_pond("tlog", "show", "--format", "json", pond=root).stdout)
    return out


def verify(root: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    return run_pond("tlog", "verify", *args, pond=root, env=env, check=code).stdout.decode()


def version_of(root: Path, seq: int) -> int:
    return next(leaf["data_version"] for leaf in show(root)["leaves"] if leaf["txn_seq"] == seq)


def entry(root: Path, version: int) -> Path:
    return root / "data" / "_delta_log" / f"{version:020d}.json"


# -- an intact pond -----------------------------------------------------------------------------
def test_intact_pond_reproduces_the_rfc6962_tree(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    s = show(root)
    leaves = [bytes.fromhex(leaf["leaf"]) for leaf in s["leaves"]]
    assert [leaf["txn_seq"] for leaf in s["leaves"]] == [1, 2, 3, 4, 5, 6]
    assert [leaf["index"] for leaf in s["leaves"]] == [1, 2, 3, 4, 5, 6]
    # every recorded head is the RFC 6962 root of the leaves so far
    for i, leaf in enumerate(s["leaves"], start=1):
        assert leaf["root"] == mth(leaves[:i]).hex()
    assert (s["size"], s["root"], s["unrecorded"]) == (6, mth(leaves).hex(), 0)
    assert verify(root) == f"intact: 6 transaction(s), root {s['root']}\n"
    table = run_pond("tlog", "show", pond=root).stdout.decode().splitlines()
    assert table[0] == f"tree size 6, root {s['root']}"
    assert table[1].split() == ["leaf", "txn_seq", "version", "leaf", "hash", "root"]
    assert table[2].split() == [
        "1",
        "1",
        "1",
        s["leaves"][0]["leaf"][:16],
        s["leaves"][0]["root"][:16],
    ]
    assert len(table) == 8


def test_a_leaf_is_the_documented_hash_of_the_rows_a_transaction_wrote(tmp_path: Path) -> None:
    """The leaf encoding of docs/reliability/tlog.md, recomputed with deltalake + pyarrow."""
    root = _pond(tmp_path, writes=2)
    dt = DeltaTable(str(root / "data"))
    import pyarrow.parquet as pq

    def enc(v: object) -> bytes:
        if v is None:
            return b"\x00"
        if isinstance(v, int):
            return b"\x01" + v.to_bytes(8, "little", signed=True)
        b = v.encode() if isinstance(v, str) else bytes(v)  # type: ignore[arg-type]
        return b"\x02" + len(b).to_bytes(8, "little") + b

    columns = ["node_id", "file_type", "version", "timestamp", "content", "content_hash",
               "size", "min_event_time", "max_event_time", "extended_attributes", "factory",
               "txn_seq"]  # fmt: skip
    digests: dict[int, list[bytes]] = {}
    for uri in dt.file_uris():
        part = uri.split("/part_id=")[1].split("/")[0]  # the partition value, from the path
        t = pq.read_table(uri)
        t = t.set_column(
            t.schema.get_field_index("timestamp"), "timestamp", t["timestamp"].cast(pa.int64())
        )
        for row in t.to_pylist():
            raw = enc(part) + b"".join(enc(row[c]) for c in columns)
            digests.setdefault(row["txn_seq"], []).append(hashlib.sha256(raw).digest())
    for leaf in show(root)["leaves"]:
        tid = leaf["txn_id"].encode()
        rows = sorted(digests[leaf["txn_seq"]])
        body = (
            b"pond.tlog.leaf.1\n"
            + leaf["txn_seq"].to_bytes(8, "little", signed=True)
            + len(tid).to_bytes(8, "little")
            + tid
            + len(rows).to_bytes(8, "little")
            + b"".join(rows)
        )
        assert leaf["leaf"] == hashlib.sha256(b"\x00" + body).hexdigest()


def _foreign_table() -> pa.Table:
    """Rows as other writers may store them: nulls everywhere, ms timestamps, int32 and
    large types, non-ASCII text, empty bytes, a column missing, several chunks."""
    first = pa.table(
        {
            "node_id": pa.array(["n1", None, "n\u00e9\u6c34"], pa.large_string()),
            "file_type": ["file:data:physical", "dir", None],
            "version": pa.array([1, None, 2**40], pa.int64()),
            "timestamp": pa.array([1_700_000_000_123, None, -5], pa.timestamp("ms", tz="UTC")),
            "content": pa.array([b"", None, bytes(range(256))], pa.large_binary()),
            "content_hash": [None, "h", ""],
            "size": pa.array([0, None, -1], pa.int32()),
            "min_event_time": pa.array([None, None, 7], pa.int64()),
            "max_event_time": pa.array([None, 3, None], pa.uint32()),
            "extended_attributes": ['{"a": 1}', None, "{}"],
            "txn_seq": pa.array([3, None, 4], pa.int64()),
        }  # no `factory`: a file from before that column
    )
    return pa.concat_tables([first, first.slice(1)])


@pytest.mark.parametrize("table", [_foreign_table(), _foreign_table().slice(0, 0)])
def test_verify_hashes_rows_exactly_as_a_write_does(table: pa.Table) -> None:
    """`pond tlog verify` encodes rows with Arrow kernels, a write value by value
    (tlog.row_digests): the same digests, byte for byte, or no leaf would ever match."""
    from duckpond.storage.tlog import row_digests
    from duckpond.storage.tlogrows import table_digests

    parts = [f"p{i % 2}" for i in range(table.num_rows)]
    want = row_digests(table, parts)
    assert table_digests(table, parts) == want
    assert len(want) == table.num_rows and [s for s, _ in want[:3]] == (
        [3, -1, 4] if table.num_rows else []
    )


# -- tampering with another Delta writer ---------------------------------------------------------
def _edit(root: Path) -> None:
    DeltaTable(str(root / "data")).update(predicate="txn_seq = 3", updates={"size": "999"})


def _delete_rows(root: Path) -> None:
    DeltaTable(str(root / "data")).delete("txn_seq = 4")


def _append_row(root: Path) -> None:
    """A forged version of an existing row, appended under txn 5's seq."""
    import pyarrow.parquet as pq

    dt = DeltaTable(str(root / "data"))
    for uri in dt.file_uris():
        part = uri.split("/part_id=")[1].split("/")[0]
        t = pq.read_table(uri)
        t = t.filter(pa.compute.equal(t["txn_seq"], 5))
        if t.num_rows:
            t = t.slice(0, 1).append_column("part_id", pa.array([part]))
            t = t.set_column(t.schema.get_field_index("version"), "version", pa.array([99]))
            write_deltalake(str(root / "data"), t, mode="append")
            return
    raise AssertionError("no row of txn 5")


def _merge(root: Path) -> None:
    """deltalake's MERGE: txn 2's file row gets other content."""
    dt = DeltaTable(str(root / "data"))
    source = pa.table({"txn_seq": pa.array([2], pa.int64()), "content": [b"forged\n"]})
    (
        dt.merge(source, "t.txn_seq = s.txn_seq AND t.content IS NOT NULL", "s", "t")
        .when_matched_update({"content": "s.content"})
        .execute()
    )


@pytest.mark.parametrize(
    ("tamper", "seq"), [(_edit, 3), (_delete_rows, 4), (_append_row, 5), (_merge, 2)]
)
def test_another_delta_writer_changing_rows_is_caught(
    tmp_path: Path, tamper: Any, seq: int
) -> None:
    root = _pond(tmp_path)
    tamper(root)
    out = verify(root, code=1)
    assert out == f"tampered: txn {seq}: content changed: its rows are not the ones it committed\n"
    # the pond keeps working, and the next write does not hide the change
    write_file(Pond.open(root), "/later", b"later\n")
    assert verify(root, code=1) == out


def test_a_foreign_compaction_changes_nothing(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    before = show(root)["root"]
    DeltaTable(str(root / "data")).optimize.compact()
    assert verify(root) == f"intact: 6 transaction(s), root {before}\n"


# -- tampering with the data log ----------------------------------------------------------------
def test_a_deleted_log_entry_names_its_transaction(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    v = version_of(root, 4)
    entry(root, v).unlink()
    assert verify(root, code=1) == (
        "tampered: txn 4: missing: no data commit holds it (the data log goes from txn 3 to "
        f"txn 5; data log version {v} is missing)\n"
    )


def test_swapped_log_entries_are_an_order_change(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    a, b = version_of(root, 3), version_of(root, 4)
    tmp = entry(root, a).with_suffix(".swap")
    entry(root, a).rename(tmp)
    entry(root, b).rename(entry(root, a))
    tmp.rename(entry(root, b))
    assert verify(root, code=1) == (
        f"tampered: txn 3: order changed: its data commit (version {b}) now comes after txn "
        f"4's (version {a})\n"
    )


def test_a_log_cut_short_is_caught_by_the_control_table(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    for seq in (5, 6):
        entry(root, version_of(root, seq)).unlink()
    # the data log alone is a valid, shorter history; the control table knows better
    assert verify(root, code=1) == (
        f"tampered: txn 5: missing: the control table records it committed at data version "
        f"{version_of_before(root, 5)}, but the data log ends at txn 4 (the data log was cut "
        "short)\n"
    )


def version_of_before(root: Path, seq: int) -> int:
    """A truncated pond's data version of `seq`, as the control table recorded it."""
    from steward_helpers import control_rows

    return next(
        r["data_fs_version"]
        for r in control_rows(root)
        if r["txn_seq"] == seq and r["record_type"] == "data_committed"
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("leaf", "00" * 32, "content changed: its rows are not the ones it committed"),
        ("root", "00" * 32, "the tree head it recorded was changed"),
        ("frontier", ["00" * 32, "11" * 32], "the tree head it recorded was changed"),
        ("size", "three", "its record in the data log is unreadable"),
    ],
)
def test_a_hand_edited_record_is_caught(
    tmp_path: Path, key: str, value: object, problem: str
) -> None:
    """Editing txn 3's record instead of the rows (txn 3 is leaf 3: a frontier of two)."""
    root = _pond(tmp_path)
    path = entry(root, version_of(root, 3))
    lines = path.read_text().splitlines()
    info = json.loads(lines[0])
    pond_txn = json.loads(info["commitInfo"]["pond_txn"])
    pond_txn["tlog"][key] = value
    info["commitInfo"]["pond_txn"] = json.dumps(pond_txn, sort_keys=True)
    path.write_text("\n".join([json.dumps(info), *lines[1:]]) + "\n")
    assert verify(root, code=1) == f"tampered: txn 3: {problem}\n"


def _rewrite_record(root: Path, seq: int, change: Any) -> None:
    """Rewrite txn `seq`'s commitInfo line as another JSON writer would (spaces after the
    separators), `change` applied to its `tlog` record."""
    path = entry(root, version_of(root, seq))
    lines = path.read_text().splitlines()
    info = json.loads(lines[0])
    pond_txn = json.loads(info["commitInfo"]["pond_txn"])
    change(pond_txn["tlog"])
    info["commitInfo"]["pond_txn"] = json.dumps(pond_txn)
    path.write_text("\n".join([json.dumps(info), *lines[1:]]) + "\n")


def test_a_record_spelled_otherwise_means_the_same(tmp_path: Path) -> None:
    """Verify compares an intact record as the hex text the pond writes and parses only
    one that differs: the same hashes in capitals, rewritten by another JSON writer, are
    still the same record."""
    root = _pond(tmp_path)
    head = show(root)

    def capitals(rec: dict[str, Any]) -> None:
        rec.update(
            leaf=rec["leaf"].upper(),
            root=rec["root"].upper(),
            frontier=[h.upper() for h in rec["frontier"]],
        )

    _rewrite_record(root, 3, capitals)
    _rewrite_record(root, 6, capitals)  # the newest: the head verify reports
    assert verify(root) == f"intact: 6 transaction(s), root {head['root']}\n"


def test_verify_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """The check pauses the cyclic collector while it runs: on after an intact pond, a
    tampered one and a check that raised; off stays off."""
    import gc

    root = _pond(tmp_path, writes=2)
    pond = Pond.open(root)
    assert gc.isenabled()
    assert pond.tlog_verify().ok
    assert gc.isenabled()
    _rewrite_record(root, 2, lambda rec: rec.update(root="00" * 32))
    assert pond.tlog_verify().problem == "txn 2: the tree head it recorded was changed"
    assert gc.isenabled()
    from duckpond.storage.tlogcheck import check

    with pytest.raises(Exception, match="nowhere"):
        check(tmp_path / "nowhere", None, "nowhere")
    assert gc.isenabled()
    gc.disable()
    try:
        assert pond.tlog_verify().first_bad == 2
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_damaged_newest_record_does_not_stop_writes(tmp_path: Path) -> None:
    """The next write recomputes the tree instead of extending a damaged frontier: only
    the damaged commit is named."""
    root = _pond(tmp_path)
    path = entry(root, version_of(root, 6))
    lines = path.read_text().splitlines()
    info = json.loads(lines[0])
    pond_txn = json.loads(info["commitInfo"]["pond_txn"])
    pond_txn["tlog"]["frontier"] = ["00" * 32]  # leaf 6: two hashes, this is one
    info["commitInfo"]["pond_txn"] = json.dumps(pond_txn, sort_keys=True)
    path.write_text("\n".join([json.dumps(info), *lines[1:]]) + "\n")
    write_file(Pond.open(root), "/after", b"after\n")
    assert verify(root, code=1) == "tampered: txn 6: the tree head it recorded was changed\n"
    assert show(root)["size"] == 7


def test_a_pruned_log_is_verified_from_the_archive(tmp_path: Path) -> None:
    """Log pruning moves old entries' pond_txn (records included) to the archive: verify
    reads them there, and an edit of a pruned transaction's rows is still named."""
    root = tmp_path / "pond"
    Pond.create(root)
    for name in ("data", "control"):
        DeltaTable(str(root / name)).alter.set_table_properties(
            {"delta.logRetentionDuration": "interval 0 seconds"}
        )
    pond = Pond.open(root)
    for i in range(210):  # past two automatic checkpoints: one prune has run
        write_file(pond, f"/f{i % 10}", b"v%d" % i)
    assert not entry(root, 5).exists()
    s = show(root)
    assert (s["size"], s["unrecorded"]) == (211, 0)
    assert verify(root) == f"intact: 211 transaction(s), root {s['root']}\n"
    _edit(root)
    assert verify(root, code=1) == (
        "tampered: txn 3: content changed: its rows are not the ones it committed\n"
    )


# -- ponds from before the log ------------------------------------------------------------------
def _strip_records(root: Path) -> None:
    """Make the pond look written by a version without the log: no `tlog` in any commit."""
    for path in sorted((root / "data" / "_delta_log").glob("*.json")):
        lines = path.read_text().splitlines()
        out = []
        for line in lines:
            action = json.loads(line)
            info = action.get("commitInfo")
            if info and "pond_txn" in info:
                pond_txn = json.loads(info["pond_txn"])
                pond_txn.pop("tlog", None)
                info["pond_txn"] = json.dumps(pond_txn, sort_keys=True)
            out.append(json.dumps(action, separators=(",", ":")))
        path.write_text("\n".join(out) + "\n")


def test_an_existing_pond_starts_its_log_at_the_next_write(tmp_path: Path) -> None:
    root = _pond(tmp_path, writes=3)
    _strip_records(root)
    assert run_pond("tlog", "show", pond=root).stdout.decode().splitlines()[:2] == [
        f"tree size 0, root {EMPTY_ROOT}",
        "4 newer transaction(s) not in the log yet (written before it was kept; the next "
        "write records them)",
    ]
    assert verify(root) == (
        "note: 4 transaction(s) from txn 1 on are not in the log yet (written before it was "
        "kept); the next write records them\n"
        f"intact: 0 transaction(s), root {EMPTY_ROOT}\n"
    )
    # the next write adopts the history: its head covers every earlier transaction
    write_file(Pond.open(root), "/new", b"new\n")
    s = show(root)
    assert [leaf["root"] is None for leaf in s["leaves"]] == [True] * 4 + [False]
    assert s["size"] == 5
    assert verify(root) == f"intact: 5 transaction(s), root {s['root']}\n"
    # a change in the adopted history is caught, and named by the range it is in
    _edit(root)
    assert verify(root, code=1) == (
        "tampered: txn 1..4: content changed: written before the log was kept, they no "
        "longer match the tree head txn 5 recorded\n"
    )


# -- backups ------------------------------------------------------------------------------------
def _attach(root: Path, remote: Remote) -> dict[str, str]:
    """`pond backup add b URL` (credentials as ${env:} references) and a push."""
    env: dict[str, str] = {}
    args = ["backup", "add", "b", remote.url]
    if remote.options is not None:
        env = {"TLOG_KEY_ID": ACCESS_KEY, "TLOG_SECRET": SECRET_KEY}
        args += ["--endpoint", str(remote.options.endpoint), "--region", REGION,
                 "--access-key-id", "${env:TLOG_KEY_ID}",
                 "--secret-access-key", "${env:TLOG_SECRET}", "--allow-http"]  # fmt: skip
    run_pond(*args, pond=root, env=env)
    run_pond("push", "b", pond=root, env=env)
    return env


def test_a_backup_is_verified_on_its_own_records(tmp_path: Path, remote: Remote) -> None:
    root = _pond(tmp_path)
    env = _attach(root, remote)
    s = show(root)
    assert verify(root, "--remote", "b", env=env) == (
        f"intact: {s['size']} transaction(s), root {s['root']}\n"
    )
    # another Delta writer edits a row of the backup's data table
    DeltaTable(remote.table_uri("data"), storage_options=remote.storage_options).update(
        predicate="txn_seq = 3", updates={"size": "999"}
    )
    assert verify(root, "--remote", "b", env=env, code=1) == (
        "tampered: txn 3: content changed: its rows are not the ones it committed\n"
    )
    assert verify(root) == f"intact: {s['size']} transaction(s), root {s['root']}\n"


def test_a_truncated_file_backup_names_the_first_lost_transaction(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    backup = tmp_path / "backup"
    env = _attach(root, Remote(url=f"file://{backup}", options=None))
    last = show(root)["leaves"][-1]  # txn 7: `backup add` wrote /sys/remotes/b
    assert last["txn_seq"] == 7
    v = last["data_version"]
    (backup / "data" / "_delta_log" / f"{v:020d}.json").unlink()
    assert verify(root, "--remote", "b", env=env, code=1) == (
        f"tampered: txn 7: missing: the control table records it committed at data version "
        f"{v}, but the data log ends at txn 6 (the data log was cut short)\n"
    )
    assert verify(root) == f"intact: 7 transaction(s), root {show(root)['root']}\n"


def test_verify_of_an_unknown_remote_is_one_line(tmp_path: Path) -> None:
    root = _pond(tmp_path, writes=1)
    proc = run_pond("tlog", "verify", "--remote", "nope", pond=root, check=1)
    assert proc.stderr.decode() == "error: no remote named nope (see `pond remote list`)\n"
    assert proc.stdout == b""


# -- crashes ------------------------------------------------------------------------------------
FACTORIES = [("10-a", {"message": "A", "write_path": "/out/a.txt"})]
PHASES = [
    "before_data_commit",
    "after_data_commit",
    "after_pending",
    "before_completed",
    "task_before_data_commit",
    "task_after_data_commit",
]


@pytest.mark.parametrize("phase", PHASES)
def test_a_crash_never_leaves_a_tree_verify_calls_tampered(tmp_path: Path, phase: str) -> None:
    root = tmp_path / "pond"
    make_pond(root, FACTORIES)
    host = tmp_path / "x.txt"
    host.write_bytes(b"x\n")
    crashed = run_pond(
        "copy", f"host://{host}", "/x.txt", pond=root, env={"POND_CRASH_AT": phase}, check=None
    )
    assert crashed.returncode == -9
    out = verify(root)
    assert out.startswith("intact: ") and len(out.splitlines()) == 1
    run_pond("recover", pond=root)
    run_pond("copy", f"host://{host}", "/y.txt", pond=root)
    s = show(root)
    assert verify(root) == f"intact: {s['size']} transaction(s), root {s['root']}\n"
    assert [leaf["txn_seq"] for leaf in s["leaves"]] == list(range(1, s["size"] + 1))
    assert s["unrecorded"] == 0
