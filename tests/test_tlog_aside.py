"""`pond tlog verify` of a long log reads the data log's entries in a second process (the
stdlib-only storage/tlogentries.py, run as a script) while it hashes the rows. That
process's answer must be exactly the one read here, on an intact pond and on every kind of
tampering, and any failure of it (no such interpreter, a crash, garbage on its stdout) must
fall back to reading here, with the same report."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_tlog import _edit, _pond, entry, version_of

from duckpond.storage import tlogcheck, tlogentries

_real_idle_core = tlogentries.idle_core


def _report(root: Path) -> tlogcheck.TlogReport:
    return tlogcheck.check(root / "data", root / "control", str(root))


@pytest.fixture
def here_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every log of any length goes to the second process; the list counts the entries
    this process read itself (the fallback)."""
    monkeypatch.setattr(tlogentries, "ASIDE_MIN_ENTRIES", 0)
    monkeypatch.setattr(tlogentries, "idle_core", lambda: True)  # the tests load the machine
    counted: list[int] = []
    real = tlogentries.read_entries

    def counting(paths: Any, as_written: bool = True) -> Any:
        counted.append(len(paths))
        return real(paths, as_written)

    monkeypatch.setattr(tlogentries, "read_entries", counting)
    yield counted


def _in_process(root: Path, monkeypatch: pytest.MonkeyPatch) -> tlogcheck.TlogReport:
    with monkeypatch.context() as m:
        m.setattr(tlogentries, "ASIDE_MIN_ENTRIES", 10**9)
        return _report(root)


def _delete(root: Path) -> None:
    entry(root, version_of(root, 4)).unlink()


def _swap(root: Path) -> None:
    a, b = entry(root, version_of(root, 3)), entry(root, version_of(root, 4))
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _cut(root: Path) -> None:
    for seq in (5, 6):
        entry(root, version_of(root, seq)).unlink()


def _respell(root: Path) -> None:
    """txn 3's commitInfo as another writer spells it (spaces, last in the entry): the
    second process parses it as JSON."""
    path = entry(root, version_of(root, 3))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[1:], json.dumps(json.loads(lines[0]))]) + "\n")


def _forge_root(root: Path) -> None:
    """txn 4's recorded root replaced by another hash."""
    path = entry(root, version_of(root, 4))
    lines = path.read_text().splitlines()
    info = json.loads(lines[0])
    pond_txn = json.loads(info["commitInfo"]["pond_txn"])
    pond_txn["tlog"]["root"] = "0" * 64
    info["commitInfo"]["pond_txn"] = json.dumps(pond_txn, sort_keys=True)
    path.write_text("\n".join([json.dumps(info, separators=(",", ":")), *lines[1:]]) + "\n")


def _nothing(root: Path) -> None:
    pass


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (_nothing, None),
        (_respell, None),
        (_edit, "txn 3: content changed: its rows are not the ones it committed"),
        (_delete, "txn 4: missing: no data commit holds it"),
        (_swap, "txn 3: order changed"),
        (_cut, "txn 5: missing: the control table records it committed"),
        (_forge_root, "txn 4: the tree head it recorded was changed"),
    ],
)
def test_the_second_process_reads_what_this_one_would(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    here_reads: list[int],
    tamper: Callable[[Path], None],
    problem: str | None,
) -> None:
    root = _pond(tmp_path)
    tamper(root)
    expected = _in_process(root, monkeypatch)
    assert (expected.problem or "").startswith(problem or "")
    assert expected.ok is (problem is None)
    here_reads.clear()
    assert _report(root) == expected
    assert here_reads == []  # every entry came from the second process


def _interpreter(tmp_path: Path, body: str) -> str:
    """A stand-in for the Python interpreter (named like one) that does `body`."""
    path = tmp_path / "bin" / "python-stand-in"
    path.parent.mkdir()
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("exit 3", id="fails"),
        pytest.param("kill -9 $$", id="killed"),
        pytest.param("printf 'not marshal'", id="garbage"),
        pytest.param("printf '\\333\\000\\000\\000\\000'", id="empty-list"),  # marshal: []
    ],
)
def test_a_failing_second_process_is_read_here_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, here_reads: list[int], body: str
) -> None:
    root = _pond(tmp_path)
    _edit(root)
    expected = _in_process(root, monkeypatch)
    here_reads.clear()
    monkeypatch.setattr("sys.executable", _interpreter(tmp_path, body))
    assert _report(root) == expected
    assert expected.problem == "txn 3: content changed: its rows are not the ones it committed"
    assert len(here_reads) == 1 and here_reads[0] > 6  # all of the log, read here


def test_no_interpreter_to_start_is_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, here_reads: list[int]
) -> None:
    root = _pond(tmp_path)
    expected = _in_process(root, monkeypatch)
    here_reads.clear()
    monkeypatch.setattr("sys.executable", str(tmp_path / "python-gone"))
    assert _report(root) == expected and expected.ok
    assert len(here_reads) == 1


def test_the_runs_sent_name_every_version() -> None:
    versions = [0, 1, 2, 5, 7, 8, 20]
    runs = tlogentries._runs(versions)
    assert runs == [(0, 2), (5, 5), (7, 8), (20, 20)]
    assert [v for a, b in runs for v in range(a, b + 1)] == versions


def test_show_reads_here(tmp_path: Path, here_reads: list[int]) -> None:
    """`pond tlog show` has nothing to do meanwhile: no second process for it."""
    root = _pond(tmp_path)
    assert tlogcheck.show(root / "data").size == 6
    assert len(here_reads) == 1


def test_a_busy_machine_reads_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, here_reads: list[int]
) -> None:
    """No core to spare: a second process would only compete with this one."""
    root = _pond(tmp_path)
    monkeypatch.setattr(tlogentries, "runnable", lambda: os.cpu_count() or 1)
    monkeypatch.setattr(tlogentries, "idle_core", _real_idle_core)
    assert _report(root).ok
    assert len(here_reads) == 1


def test_an_idle_core_is_judged_by_what_runs_now(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = os.cpu_count() or 1
    monkeypatch.setattr(tlogentries, "runnable", lambda: cores - 1)
    assert _real_idle_core() is True
    monkeypatch.setattr(tlogentries, "runnable", lambda: cores)
    assert _real_idle_core() is False
    # without /proc/loadavg's count: the 1-minute load average
    monkeypatch.setattr(tlogentries, "runnable", lambda: None)
    monkeypatch.setattr("os.getloadavg", lambda: (cores - 1.0, 0.0, 0.0))
    assert _real_idle_core() is True
    monkeypatch.setattr("os.getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert _real_idle_core() is False


def test_runnable_counts_this_process() -> None:
    running = tlogentries.runnable()
    assert running is None or running >= 1
