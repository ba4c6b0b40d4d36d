"""`pond tlog verify` reads a commit's seq, id and record as the text the pond wrote (one
regex, no JSON decoded: storage/tlogentries.py `read_entries`) and falls back to parsing it
whenever that text is spelled otherwise. Each record here is rewritten in the pond's own
compact commitInfo line (so the fast path sees it) or as another writer would, and the
report must be exactly the one the parsing path gives: checked through the CLI, and against
the check run with the fast path turned off."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_tlog import _pond, entry, show, verify, version_of

from duckpond.storage import tlogcheck, tlogentries


def _rewrite(
    root: Path,
    seq: int,
    text: Callable[[dict[str, Any]], str],
    line: Callable[[dict[str, Any]], str] = lambda info: json.dumps(info, separators=(",", ":")),
) -> None:
    """Rewrite txn `seq`'s commitInfo: its `pond_txn` as `text` spells it, the line as
    `line` does (by default the pond's compact spelling, first in the entry)."""
    path = entry(root, version_of(root, seq))
    lines = path.read_text().splitlines()
    info = json.loads(lines[0])
    info["commitInfo"]["pond_txn"] = text(json.loads(info["commitInfo"]["pond_txn"]))
    path.write_text("\n".join([line(info), *lines[1:]]) + "\n")


def _reports(root: Path) -> tuple[Any, Any]:
    """(the report as verify gives it, the report with every record parsed as JSON)."""
    fast = tlogcheck.check(root / "data", root / "control", str(root))
    slow = tlogcheck._check(root / "data", root / "control", str(root), as_written=False)
    return fast, slow


def _sorted(pond_txn: dict[str, Any]) -> str:
    return json.dumps(pond_txn, sort_keys=True)  # the pond's writer (datatable.commit)


def test_the_pond_writes_what_the_fast_path_reads(tmp_path: Path) -> None:
    """Every commit of a pond (init, writes) is read without decoding JSON, with the
    values JSON gives."""
    root = _pond(tmp_path, writes=3)
    log = root / "data" / "_delta_log"
    read = 0
    for path in sorted(log.glob("*.json")):
        exists, pond_txn = tlogentries.entry_pond_txn(path)
        if pond_txn is None:
            continue
        rec = pond_txn["tlog"]
        assert tlogentries.read_entries([path])[0] == (
            True,
            None,
            (
                pond_txn["txn_seq"],
                pond_txn["txn_id"],
                rec["size"],
                rec["leaf"],
                rec["root"],
                ", ".join(f'\\"{h}\\"' for h in rec["frontier"]),
            ),
        )
        read += 1
    assert read == 4


def _escaped_first(pond_txn: dict[str, Any]) -> str:
    """txn_id's first character as a \\u escape: the same id, spelled otherwise."""
    tid = pond_txn["txn_id"]
    return _sorted(pond_txn).replace(f'"{tid}"', f'"\\u{ord(tid[0]):04x}{tid[1:]}"')


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda p: json.dumps(dict(reversed(list(p.items())))), id="reordered-keys"),
        pytest.param(lambda p: json.dumps(p, sort_keys=True, indent=1), id="extra-spaces"),
        pytest.param(
            lambda p: json.dumps(p, sort_keys=True, separators=(",", ":")), id="no-spaces"
        ),
        pytest.param(_escaped_first, id="escaped-txn_id"),
        pytest.param(
            lambda p: _sorted(p).replace(p["tlog"]["leaf"], p["tlog"]["leaf"].upper()),
            id="capital-hex",
        ),
    ],
)
def test_a_record_spelled_otherwise_in_the_ponds_line_is_the_same(
    tmp_path: Path, respell: Callable[[dict[str, Any]], str]
) -> None:
    root = _pond(tmp_path)
    head = show(root)["root"]
    _rewrite(root, 3, respell)
    _rewrite(root, 6, respell)  # the newest: the head verify reports
    assert verify(root) == f"intact: 6 transaction(s), root {head}\n"
    fast, slow = _reports(root)
    assert fast == slow


def test_a_foreign_writers_entry_is_the_same(tmp_path: Path) -> None:
    """Another Delta writer's layout: commitInfo spelled with spaces and last in the
    entry."""
    root = _pond(tmp_path)
    head = show(root)["root"]
    path = entry(root, version_of(root, 4))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[1:], json.dumps(json.loads(lines[0]))]) + "\n")
    assert verify(root) == f"intact: 6 transaction(s), root {head}\n"
    fast, slow = _reports(root)
    assert fast == slow


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("leaf", "00" * 32, "content changed: its rows are not the ones it committed"),
        ("root", "00" * 32, "the tree head it recorded was changed"),
        ("frontier", ["00" * 32, "11" * 32], "the tree head it recorded was changed"),
        ("frontier", [], "the tree head it recorded was changed"),
        ("size", 4, "order changed: it was leaf 4 of the log, it is leaf 3 now"),
        ("size", "three", "its record in the data log is unreadable"),
    ],
)
def test_a_hand_edited_record_in_the_ponds_spelling_is_caught(
    tmp_path: Path, key: str, value: object, problem: str
) -> None:
    """The record edited but left in the pond's own spelling: read by the fast path,
    which finds it differs and gives the parsing path's answer."""
    root = _pond(tmp_path)

    def edit(pond_txn: dict[str, Any]) -> str:
        pond_txn["tlog"][key] = value
        return _sorted(pond_txn)

    _rewrite(root, 3, edit)
    assert verify(root, code=1) == f"tampered: txn 3: {problem}\n"
    fast, slow = _reports(root)
    assert fast == slow


def test_an_escaped_quote_in_txn_id_is_a_replaced_transaction(tmp_path: Path) -> None:
    root = _pond(tmp_path)
    tid = next(leaf["txn_id"] for leaf in show(root)["leaves"] if leaf["txn_seq"] == 3)

    def edit(pond_txn: dict[str, Any]) -> str:
        pond_txn["txn_id"] = 'x"' + tid
        return _sorted(pond_txn)

    _rewrite(root, 3, edit)
    assert verify(root, code=1) == (
        f'tampered: txn 3: replaced: its data commit has txn_id x"{tid}, the control table '
        f"recorded {tid}\n"
    )
    fast, slow = _reports(root)
    assert fast == slow


def test_a_record_that_is_not_json_is_no_transaction(tmp_path: Path) -> None:
    """An invalid escape in args: the parsing path cannot read the commit's `pond_txn`
    at all, so txn 3 has no data commit; the fast path must not read it either."""
    root = _pond(tmp_path)
    _rewrite(root, 3, lambda p: _sorted(p).replace('"pond"', '"p\\qond"', 1))
    assert verify(root, code=1) == (
        "tampered: txn 3: missing: no data commit holds it (the data log goes from txn 2 to "
        "txn 4)\n"
    )
    fast, slow = _reports(root)
    assert fast == slow


def test_a_second_record_key_spelled_with_an_escape_is_the_one_json_reads(tmp_path: Path) -> None:
    """JSON keeps the last of two equal keys: a forged record after the real one, its key
    spelled `t\\u006cog`, is the record (a regex reading the first would miss it)."""
    root = _pond(tmp_path)

    def forge(pond_txn: dict[str, Any]) -> str:
        forged = json.dumps({**pond_txn["tlog"], "leaf": "00" * 32})
        return _sorted(pond_txn)[:-1] + f', "t\\u006cog": {forged}}}'

    _rewrite(root, 3, forge)
    assert verify(root, code=1) == (
        "tampered: txn 3: content changed: its rows are not the ones it committed\n"
    )
    fast, slow = _reports(root)
    assert fast == slow


def _frontier_respelled(pond_txn: dict[str, Any], first: str) -> str:
    """The record's first frontier hash with its first character spelled `first`."""
    h = pond_txn["tlog"]["frontier"][0]
    return _sorted(pond_txn).replace(f'["{h}"', f'["{first}{h[1:]}"', 1)


def test_a_frontier_spelled_with_escapes_means_the_same(tmp_path: Path) -> None:
    """The frontier's text is read loosely (up to its list's end) and decoded as JSON
    when it is not the pond's spelling: a \\u escape of the same digit is the same."""
    root = _pond(tmp_path)
    before = show(root)
    _rewrite(
        root, 3, lambda p: _frontier_respelled(p, f"\\u{ord(p['tlog']['frontier'][0][0]):04x}")
    )
    assert verify(root) == f"intact: 6 transaction(s), root {before['root']}\n"
    assert show(root) == before
    fast, slow = _reports(root)
    assert fast == slow


def test_a_frontier_that_is_not_json_makes_no_transaction(tmp_path: Path) -> None:
    """An invalid escape inside the loosely read frontier: the commit's `pond_txn` is not
    JSON, so txn 3 has no data commit, as the parsing path says (verify and show read the
    whole log again as JSON when a record's text cannot decide)."""
    root = _pond(tmp_path)
    _rewrite(root, 3, lambda p: _frontier_respelled(p, "\\q"))
    assert verify(root, code=1) == (
        "tampered: txn 3: missing: no data commit holds it (the data log goes from txn 2 to "
        "txn 4)\n"
    )
    assert [leaf["txn_seq"] for leaf in show(root)["leaves"]] == [1, 2, 4, 5, 6]
    found, _ = tlogcheck.commits(root / "data")  # read as written: txn 3 is undecided
    with pytest.raises(tlogentries.NotJson):
        [c.recorded for c in found]
    fast, slow = _reports(root)
    assert fast == slow
