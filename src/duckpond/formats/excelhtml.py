"""`excelhtml`: the "Excel HTML" export of instrument software (HydroVu / In-Situ): an HTML
document holding `<table id="isi-report">`.

The header is the first row whose class contains `dataHeader` (or that has an
`isi-data-table` attribute); data rows are those with the class `data` (or an `isi-data-row`
attribute). Columns are the header cells' texts. `Date Time` becomes timestamp[us, UTC] when
every value is a time (a time without an offset is UTC), else text; every other column is
Float64, an empty or non-numeric cell NULL. Missing trailing cells are NULL, extra ones
ignored.
"""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pyarrow as pa

from ..errors import FormatError
from .base import Options, Parsed, not_format

TIME_COLUMN = "Date Time"
_TABLE_ID = "isi-report"


class _Rows(HTMLParser):
    """Collects the rows of the isi-report table: (kind, line, cell texts)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # table nesting inside the report table; 0 = outside it
        self.found = False
        self.rows: list[tuple[str, int, list[str]]] = []
        self.kind: str | None = None
        self.cells: list[str] = []
        self.cell: list[str] | None = None
        self.line = 0  # where the current row starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            if self.depth:
                self.depth += 1
            elif a.get("id") == _TABLE_ID and not self.found:
                self.found, self.depth = True, 1
            return
        if self.depth != 1:
            return
        if tag == "tr":
            self._end_row()
            classes = (a.get("class") or "").split()
            if "isi-data-table" in a or any("dataHeader" in c for c in classes):
                self.kind = "header"
            elif "isi-data-row" in a or "data" in classes:
                self.kind = "data"
            else:
                self.kind = "other"
            self.line = self.getpos()[0]
        elif tag in ("td", "th") and self.kind is not None:
            self._end_cell()
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
            if self.depth == 0:
                self._end_row()
        elif self.depth == 1 and tag in ("td", "th"):
            self._end_cell()
        elif self.depth == 1 and tag == "tr":
            self._end_row()

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def _end_cell(self) -> None:
        if self.cell is not None:
            self.cells.append("".join(self.cell).strip())
            self.cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self.kind is not None:
            self.rows.append((self.kind, self.line, self.cells))
        self.kind, self.cells = None, []


def read(data: bytes, options: Options, what: str) -> Parsed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise not_format("excelhtml", what, line, "not UTF-8 text") from None
    parser = _Rows()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError) as e:  # html.parser's own complaints
        raise not_format("excelhtml", what, parser.getpos()[0], str(e)) from None
    if not parser.found:
        raise not_format("excelhtml", what, 1, f'no <table id="{_TABLE_ID}">')
    header = next((r for r in parser.rows if r[0] == "header"), None)
    if header is None:
        raise not_format("excelhtml", what, 1, "no dataHeader row in the report table")
    names = header[2]
    if not names:
        raise not_format("excelhtml", what, header[1], "the header row has no columns")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FormatError(f"{what} has two columns named {name!r}")
        seen.add(name)
    data_rows = [r[2] for r in parser.rows if r[0] == "data"]
    columns = {}
    for j, name in enumerate(names):
        cells = [row[j] if j < len(row) else "" for row in data_rows]
        columns[name] = _time(cells) if name == TIME_COLUMN else _floats(cells)
    return Parsed(pa.table(columns))


def _floats(cells: list[str]) -> pa.Array:
    out: list[float | None] = []
    for cell in cells:
        try:
            out.append(float(cell) if cell else None)
        except ValueError:
            out.append(None)
    return pa.array(out, pa.float64())


def _time(cells: list[str]) -> pa.Array:
    out: list[dt.datetime | None] = []
    for cell in cells:
        if not cell:
            out.append(None)
            continue
        try:
            t = dt.datetime.fromisoformat(cell.replace("Z", "+00:00"))
        except ValueError:
            return pa.array([c or None for c in cells], pa.string())
        out.append(t if t.tzinfo else t.replace(tzinfo=dt.UTC))
    return pa.array(out, pa.timestamp("us", "UTC"))
