"""What every format reader shares: options, the result of a read, malformed-line reports.

A reader turns the (already decompressed) bytes of one file into an Arrow table. Lines it
cannot read are skipped and counted in a `Skipped` report, never silently lost; input that is
not the format at all (no line of it reads) is a FormatError naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import FormatError, PondUsageError, clip

if TYPE_CHECKING:
    import pyarrow as pa

# A line longer than this is skipped as malformed rather than parsed: a hostile or broken
# file (no newlines, a runaway writer) must not make one json.loads hold gigabytes.
MAX_LINE_BYTES = 16 << 20
# A reason shown in a message is cut to this many characters.
_REASON_CHARS = 120


@dataclass
class Skipped:
    """Malformed lines skipped while reading one file."""

    count: int = 0
    first_line: int = 0
    first_reason: str = ""

    def add(self, line: int, reason: str) -> None:
        if self.count == 0:
            self.first_line, self.first_reason = line, one_line(reason)
        self.count += 1

    def message(self, what: str) -> str:
        noun = "line" if self.count == 1 else "lines"
        return (
            f"skipped {self.count} malformed {noun} in {what} "
            f"(first at line {self.first_line}: {self.first_reason})"
        )


@dataclass
class Parsed:
    """A reader's result: the table and what it had to skip."""

    table: pa.Table
    skipped: Skipped = field(default_factory=Skipped)


Options = Mapping[str, str]
Reader = Callable[[bytes, Options, str], Parsed]


@dataclass(frozen=True)
class Format:
    """A registered format.

    - `read(data, options, what)`: bytes -> Parsed (`what` names the file in messages).
    - `options`: the URL query options it takes (anything else is an error).
    - `time_column`: the column a series stored from it is indexed by (None: detected from
      the schema, as for a CSV).
    """

    name: str
    read: Reader
    description: str
    options: frozenset[str] = frozenset()
    time_column: str | None = None


def one_line(text: object, limit: int = _REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def not_format(fmt: str, what: str, line: int, reason: str) -> FormatError:
    return FormatError(f"{what} is not {fmt}: line {line}: {one_line(reason)}")


def no_good_lines(fmt: str, what: str, skipped: Skipped) -> FormatError:
    """The error for a file none of whose lines is the format."""
    return not_format(fmt, what, skipped.first_line, skipped.first_reason)


def lines(data: bytes, strip_nul: bool = True) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, stripped line) for each non-blank line."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.replace(b"\0", b"") if strip_nul and b"\0" in raw else raw
        line = line.strip()
        if line:
            yield number, line


def check_options(fmt: Format, options: Options) -> None:
    for key in options:
        if key not in fmt.options:
            known = ", ".join(sorted(fmt.options)) or "none"
            raise PondUsageError(
                f"unknown option {clip(key)!r} for format {fmt.name} (options: {known})"
            )
