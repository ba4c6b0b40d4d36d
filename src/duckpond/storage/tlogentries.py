"""Reading the data log's entries for the tamper-evident log (storage/tlog.py): a commit's
`pond_txn`, or its seq, id and record as the text the pond wrote.

Standard library only, and no import of the package: `pond tlog verify` runs this file
as a script in a second process (`read_entries_aside`), which reads the 10,000 entries of
a long-lived pond on the other core while the verifying process reads and hashes the
rows. Started bare (`python -I -S FILE`) it costs ~10 ms; importing the package would load
pyarrow (~0.15 s) for nothing.
"""

from __future__ import annotations

import functools
import json
import marshal
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

# The key inside `pond_txn` that holds a commit's leaf and the tree head after it.
TLOG_KEY = "tlog"
_POND_TXN = '"pond_txn":"'  # its value is a JSON string (the record, encoded again)
# What is read of a log entry at first: the pond's commitInfo line fits (the file hashes of
# a commit of many partitions may not: then the entry is read whole).
ENTRY_HEAD_BYTES = 16 * 1024
_DECODER = json.JSONDecoder()


def entry_pond_txn(path: Path | str) -> tuple[bool, dict[str, Any] | None]:
    """(whether the log entry exists, its `pond_txn` or None) without parsing its actions:
    the pond writes commitInfo first, compactly, so only the `pond_txn` string is decoded
    (a whole-line parse was most of reading 10,000 entries); another writer's entry is
    parsed whole."""
    exists, pond_txn, _ = _read_entry(path, None)
    return exists, pond_txn


def read_entries(paths: Sequence[Path | str], as_written: bool = True) -> list[Entry]:
    """(whether the log entry exists, its `pond_txn` or None, its record as written) of
    each path: with `as_written`, an entry of the pond's own spelling gives the last, no
    JSON decoded; any other its `pond_txn` parsed, as `entry_pond_txn` gives it."""
    match = _patterns()[0].match if as_written else None
    return [_read_entry(path, match) for path in paths]


def _read_entry(
    path: Path | str, match: Callable[[str, int], re.Match[str] | None] | None
) -> Entry:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None, None
    try:
        head = os.read(fd, ENTRY_HEAD_BYTES)
        end = head.find(b"\n")
        if end < 0 or not head.startswith(_POND_HEAD):  # a long or foreign entry
            return True, _rest_of_entry(fd, head), None
    finally:
        os.close(fd)
    line = head[:end]  # the pond's own: one line read
    if match is not None:
        at = line.find(_POND_TXN_B)
        if at >= 0 and line.isascii():  # the pond's writer escapes all else
            text = line.decode("ascii")
            m = match(text, at + len(_POND_TXN_B))
            if m is not None and text[m.end() : m.end() + 1] == '"':  # the string's end
                frontier, leaf, root, size, txn_id, txn_seq = m.groups()
                return True, None, (int(txn_seq), txn_id, int(size), leaf, root, frontier)
    return True, _pond_txn(line), None


def _rest_of_entry(fd: int, head: bytes) -> dict[str, Any] | None:
    """The `pond_txn` of a long or foreign entry whose first bytes were `head`."""
    chunks = [head]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    for line in b"".join(chunks).splitlines():
        if b'"commitInfo"' in line:
            return _pond_txn(line)
    return None


_POND_HEAD = b'{"commitInfo":{'


def _pond_txn(line: bytes) -> dict[str, Any] | None:
    """The `pond_txn` of a commitInfo line, None when it has none or it does not parse."""
    if b"pond_txn" not in line:
        return None
    try:
        text = line.decode()
        at = text.find(_POND_TXN)
        if at >= 0 and text.startswith('{"commitInfo":{'):
            raw, _ = _DECODER.raw_decode(text, at + len(_POND_TXN) - 1)  # the string's value
        else:
            raw = json.loads(text)["commitInfo"]["pond_txn"]
        value = json.loads(raw)
        return value if type(value) is dict else dict(value)
    except (ValueError, KeyError, TypeError):
        return None


# -- the pond's own records, read as the text it wrote ----------------------------------------
# A data commit's seq, id and record as the pond's writer spells them (datatable.commit:
# `json.dumps(pond_txn, sort_keys=True)`, inside the commitInfo line that deltacommit writes
# compactly), matched whole by one regex instead of decoded twice as JSON (the decoding was
# the most of reading 10,000 entries). The grammar is strict: every string, number and key
# is whole JSON tokens with no escape that could spell a key otherwise, so a match means
# json.loads would give the same seq, id and record; anything else (another writer's
# spelling, extra spaces, an escape in txn_id, a foreign key layout, a damaged record) does
# not match and is parsed as JSON, as before. One part is left loose in the commitInfo
# line: the frontier list's items (a third of the regex's time, hex checked character by
# character), taken as the text up to the list's `]`; a verify compares that text with the
# frontier it rebuilt, and `frontier_items` reads one that differs, or says that the
# commit's `pond_txn` is not JSON at all (then the parsed path must decide).
Written = tuple[int, str, int, str, str, str]
"""(txn_seq, txn_id, size, leaf hex, root hex, frontier) as written; the frontier is the
text of its list's items as they stand inside the commitInfo line (`\\"hex\\", \\"hex\\"`)."""
Entry = tuple[bool, dict[str, Any] | None, Written | None]
"""What `read_entries` gives of one path: whether it exists, its `pond_txn` (parsed), its
record as written (then no `pond_txn`)."""


def _grammar(q: str, esc: str, frontier: str | None = None) -> re.Pattern[str]:
    """The pond's `pond_txn` text where a JSON quote is spelled `q` and a JSON string's
    escape sequence `esc` (once escaped: the archive; twice: inside commitInfo); the
    frontier's items as `frontier` says (else strictly: quoted hex, comma-separated)."""
    plain = r"[ !#-\[\]-~]"  # printable ASCII but `"` and `\`
    string = rf"{q}(?:{plain}|{esc})*+{q}"
    key = rf"{q}(?!(?:{TLOG_KEY}|txn_id|txn_seq){q})[A-Za-z0-9_]++{q}"  # never one of ours
    num = r"-?(?:0|[1-9][0-9]*+)"
    scalar = rf"(?:{string}|{num}|null|true|false)"
    value = (
        rf"(?:{scalar}|\[(?:{scalar}(?:, {scalar})*+)?\]"
        rf"|\{{(?:{string}: {scalar}(?:, {string}: {scalar})*+)?\}})"
    )
    return re.compile(
        rf"\{{(?:{key}: {value}, )*+"
        rf"{q}{TLOG_KEY}{q}: \{{{q}frontier{q}: \[({frontier or _hex_items(q)})\], "
        rf"{q}leaf{q}: {q}([0-9a-f]{{64}}){q}, {q}root{q}: {q}([0-9a-f]{{64}}){q}, "
        rf"{q}size{q}: ([1-9][0-9]*+)\}}, "
        rf"{q}txn_id{q}: {q}({plain}*+){q}, {q}txn_seq{q}: ({num})"
        rf"(?:, {key}: {value})*+\}}"
    )


def _hex_items(q: str) -> str:
    hexq = rf"{q}[0-9a-f]{{64}}{q}"
    return rf"(?:{hexq}(?:, {hexq})*+)?"


# A JSON string's escape sequence (a backslash and one of "\\/bfnrt, or u and 4 hex digits)
# as the archive spells it, and as it stands inside the commitInfo line (escaped again: its
# backslash doubled, an escaped quote or backslash escaped once more).
_ESC_ONCE = r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'
_ESC_TWICE = r'\\\\(?:\\["\\]|[/bfnrt]|u[0-9a-fA-F]{4})'


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(a commitInfo line's pond_txn, an archived one, a frontier's strict items), compiled
    when first needed (~9 ms: not at import, which every write's process pays)."""
    return (
        _grammar(r'\\"', _ESC_TWICE, frontier=r"[^\]]*+"),  # frontier: up to the list's end
        _grammar('"', _ESC_ONCE),
        re.compile(_hex_items(r'\\"')),
    )


class NotJson(Exception):
    """A commit read as the pond wrote it whose loose frontier text is not JSON: its
    whole `pond_txn` is not, so the commit must be read as JSON decides (not at all)."""


def frontier_items(text: str) -> list[str]:
    """The frontier list a `Written` frontier text holds, as JSON would decode it."""
    if _patterns()[2].fullmatch(text):  # the pond's spelling
        return text.replace('\\"', "").split(", ") if text else []
    try:  # the list's text, unescaped once (the commitInfo string), then decoded
        items = json.loads("[" + json.loads('"' + text + '"') + "]")
    except ValueError:
        raise NotJson(text) from None
    return list(items)


def _written(m: re.Match[str] | None, quote: str) -> Written | None:
    if m is None:
        return None
    frontier, leaf, root, size, txn_id, txn_seq = m.groups()
    if quote != '\\"':  # the archive's spelling (strict hex items): as in commitInfo
        frontier = frontier.replace(quote, '\\"')
    return int(txn_seq), txn_id, int(size), leaf, root, frontier


def written_archived(raw: str) -> Written | None:
    """The same for an archived `pond_txn` (the text itself, escaped once)."""
    return _written(_patterns()[1].fullmatch(raw), '"')


_POND_TXN_B = _POND_TXN.encode()

# Fewer entries than this are read in this process: starting another costs more.
ASIDE_MIN_ENTRIES = 2_000


class Aside:
    """Entries being read by a second process; `result()` gives what `read_entries`
    would (read here instead when that process fails: its answer is never trusted
    half-way)."""

    def __init__(self, log_dir: str, versions: list[int], as_written: bool, start: bool) -> None:
        self.paths = _paths(log_dir, versions)
        self.as_written = as_written
        self.proc: subprocess.Popen[bytes] | None = None
        if not start:
            return
        import subprocess  # here: every write imports this module, none starts a process

        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert self.proc.stdin is not None
            # the versions as runs (a log's are one, unless some entries were removed): a
            # few bytes, so this write never waits for the process to start and read it
            self.proc.stdin.write(marshal.dumps((log_dir, _runs(versions), as_written)))
            self.proc.stdin.close()
        except OSError:  # no interpreter to start, a full process table: read here
            self.close()

    def result(self) -> list[Entry]:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                assert proc.stdout is not None
                out = proc.stdout.read()
                if proc.wait() == 0:
                    entries: list[Entry] = marshal.loads(out)
                    if type(entries) is list and len(entries) == len(self.paths):
                        return entries
            except (OSError, ValueError, EOFError, TypeError):
                pass
            finally:
                _end(proc)
        return read_entries(self.paths, self.as_written)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _end(proc)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def read_entries_aside(
    log_dir: str, versions: list[int], as_written: bool = True, start: bool = True
) -> Aside:
    """`read_entries` of the entries `versions` of the log in `log_dir`, started in a
    second process when `start` says so, there are many and a second core to read them on
    (else read when the result is asked for)."""
    start = (
        start
        and len(versions) >= ASIDE_MIN_ENTRIES
        # a Python interpreter to run this file (not, say, the server embedding the library)
        and os.path.basename(sys.executable).startswith("python")
        and idle_core()
    )
    return Aside(log_dir, versions, as_written, start)


def idle_core() -> bool:
    """Whether a core is free for a second process now: fewer processes running or ready
    to run than cores, this one included (Linux's /proc/loadavg; else the 1-minute load
    average, as `make -l` judges, which lags). On a busy machine the second process only
    competes with this one, and its start and hand-over (~0.1 s of CPU for 10,000 entries)
    make the whole slower than reading here: measured 2.28x against 2.03x the rows' read
    with one core kept busy (bench/RESULTS.md, 24a)."""
    cores = os.cpu_count() or 1
    running = runnable()
    if running is not None:
        return running < cores
    try:
        return os.getloadavg()[0] + 1 <= cores
    except OSError:  # no load average on this system
        return False


def runnable() -> int | None:
    """The processes (threads) running or ready to run now, this one included: the fourth
    field of /proc/loadavg (`running/total`); None where there is none."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _paths(log_dir: str, versions: list[int]) -> list[str]:
    return [f"{log_dir}/{v:020d}.json" for v in versions]


def _runs(versions: list[int]) -> list[tuple[int, int]]:
    """Sorted versions as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for v in versions:
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _serve() -> None:
    """The second process: (log_dir, version runs, as_written) on stdin, the entries'
    `read_entries` on stdout."""
    log_dir, runs, as_written = marshal.loads(sys.stdin.buffer.read())
    versions = [v for first, last in runs for v in range(first, last + 1)]
    sys.stdout.buffer.write(marshal.dumps(read_entries(_paths(log_dir, versions), as_written)))


if __name__ == "__main__":
    _serve()
