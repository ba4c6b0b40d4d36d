"""What a read of a series sees: its live versions and the time bounds it is limited to.

Two kinds of series version change what a read shows without changing any stored row, so
every reader (SQL sources, factories' inputs, the site, `describe`) asks this module:

- A *bounds record* (`pond set-temporal-bounds`): a version holding no rows whose extended
  attributes carry `temporal_bounds` = {"min": µs | None, "max": µs | None}. The newest
  record is the series' bounds, also after later appends (DuckPond lost them on the next
  append); a record with both None clears them.
- A *collapsed* version (`pond maintain --collapse-versions N`): one version holding the
  rows of every live version before it, marked `collapsed_through` = the version it
  folds up to, carrying the bounds in force so they outlive the versions it folds.
  Reads skip the versions it folds; they stay stored (readable with `--version`).

- A *selection* version (`pond revert` of an append, nodes.is_series_selection): no rows,
  the list of data versions the series keeps.

A reader of the input's versions sees each as an ordinary new version (a new version
number and txn_seq), distinguishable from an append by these two attribute keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .nodes import SERIES_KEEP_KEY, SERIES_SELECT_KEY, SERIES_SELECT_MARK, NodeRow


class Versioned(Protocol):
    """What the rules read of a version: a NodeRow, or the index's (version, attributes)."""

    @property
    def version(self) -> int: ...
    @property
    def extended_attributes(self) -> dict[str, Any]: ...


V = TypeVar("V", bound=Versioned)

BOUNDS_KEY = "temporal_bounds"
COLLAPSED_KEY = "collapsed_through"

Bounds = tuple[int | None, int | None]


def is_bounds_record(row: Versioned) -> bool:
    """A version written only to set bounds (its Parquet has no rows). A collapsed version
    carries the bounds forward too, but it holds data."""
    attrs = row.extended_attributes
    return BOUNDS_KEY in attrs and COLLAPSED_KEY not in attrs


def bounds_of(row: Versioned) -> Bounds:
    raw: Any = row.extended_attributes.get(BOUNDS_KEY) or {}
    lo, hi = raw.get("min"), raw.get("max")
    return (int(lo) if lo is not None else None, int(hi) if hi is not None else None)


def collapsed_through(rows: Sequence[Versioned]) -> int:
    """The highest version folded into a later one (0: none)."""
    return max((int(r.extended_attributes.get(COLLAPSED_KEY, 0)) for r in rows), default=0)


@dataclass(frozen=True)
class SeriesView:
    """The versions a read of a series opens (oldest first) and its bounds (µs UTC,
    inclusive; None = open)."""

    rows: list[NodeRow]
    bounds: Bounds

    @property
    def bounded(self) -> bool:
        return self.bounds != (None, None)

    def window(self, start: int | None, end: int | None) -> Bounds:
        """A read's window [start, end] narrowed to the bounds."""
        return narrow(self.bounds, start, end)


def live_rows(rows: Sequence[V]) -> list[V]:
    """The versions whose rows a read shows, oldest first, folding the history in order:
    an append adds itself; a collapsed version replaces the versions it folds; a revert's
    selection version (nodes.is_series_selection) keeps exactly the data versions it
    lists (it may bring back one an earlier revert dropped); bounds records hold no rows."""
    live: list[V] = []
    data: list[V] = []  # every data version so far, for a selection to pick from
    for r in rows:
        attrs = r.extended_attributes
        if attrs.get(SERIES_SELECT_KEY) == SERIES_SELECT_MARK:
            keep = set(attrs.get(SERIES_KEEP_KEY) or [])
            live = [d for d in data if d.version in keep]
            continue
        if is_bounds_record(r):
            continue
        if COLLAPSED_KEY in attrs:
            through = int(attrs[COLLAPSED_KEY])
            live = [d for d in live if d.version > through]
        live.append(r)
        data.append(r)
    return live


def bounds(rows: Sequence[Versioned]) -> Bounds:
    """The series' bounds: the newest version that records any (None, None: unbounded)."""
    for r in reversed(rows):
        if BOUNDS_KEY in r.extended_attributes:
            return bounds_of(r)
    return (None, None)


def narrow(shown: Bounds, start: int | None, end: int | None) -> Bounds:
    """A read's window [start, end] narrowed to the bounds `shown`."""
    lo, hi = shown
    if lo is not None:
        start = lo if start is None else max(start, lo)
    if hi is not None:
        end = hi if end is None else min(end, hi)
    return start, end


def view(rows: Sequence[NodeRow]) -> SeriesView:
    """The view of a series from all its stored versions, oldest first."""
    return SeriesView(rows=live_rows(rows), bounds=bounds(rows))
