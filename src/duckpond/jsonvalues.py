"""The JSON values the library's result types print, and the checked conversions their
`from_dict` constructors share (`results` and `reports`; neither imports the other's
internals)."""

from __future__ import annotations

from typing import Any

# A JSON value as the pond prints it.
JSON = Any


def as_int(value: object) -> int:
    if isinstance(value, int):
        return value
    raise TypeError(f"expected an integer, got {value!r}")


def opt_int(value: object) -> int | None:
    return None if value is None else as_int(value)


def opt_str(value: object) -> str | None:
    return None if value is None else str(value)
