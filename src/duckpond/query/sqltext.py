"""SQL text the query layer writes itself: names and strings quoted as DuckDB reads them
(no engine import: modules that only build SQL text stay light)."""

from __future__ import annotations


def quote(name: str) -> str:
    """An identifier: `"name"`, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string literal: `'text'`, inner single quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
