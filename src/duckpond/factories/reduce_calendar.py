"""temporal-reduce's buckets: fixed durations on the epoch, or calendar units in a zone.

A resolution is a number and a unit. `ms`, `s`, `m`, `h` (and `d` without a `timezone`) are
fixed widths aligned on the Unix epoch, as always. `w` (ISO weeks, starting Monday), `mo`
(months; 1, 2, 3, 4, 6 or 12) and `y` (years; 1, 2, 5 or 10) are calendar buckets, and with a
`timezone` (an IANA name) `d` is too: a bucket starts at local midnight, so a local day is
23 or 25 hours across a DST change. Bucket starts are instants (µs, UTC) either way.

Calendar buckets are found by listing the bucket starts over the data's range (one per
local day at most: thousands for years of data) and a binary search per row, so DST rules
come from zoneinfo alone and every path (sealed, recomputed, dynamic) buckets the same way.
Counting follows DuckDB's `time_bucket`: weeks from a Monday, months from January, years
from a multiple of the width, so `1w`, `1mo`, `3mo` and `1y` match `time_bucket`/`date_trunc`
in the same zone. Where a DST change repeats local midnight, a day starts at the first
one (no row is earlier than its bucket's start); DuckDB labels that bucket by the second.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import FactoryError
from .live import parse_duration

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import numpy as np

DAY_US = 86_400_000_000
_CALENDAR = re.compile(r"^\s*(\d+)\s*(d|w|mo|y)\s*$")
MONTHS = (1, 2, 3, 4, 6, 12)  # month widths that tile a year from January
YEARS = (1, 2, 5, 10)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MONDAY = dt.date(1969, 12, 29)  # the ISO week holding the epoch starts here
# nominal widths: how a calendar resolution sorts among fixed ones (the site's tiers)
_NOMINAL_DAYS = {"d": 1, "w": 7, "mo": 30, "y": 365}


def zone(name: Any, what: str) -> ZoneInfo:
    """The IANA zone `name`, or a FactoryError naming `what`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise FactoryError(f"{what} must be an IANA time zone name (like America/New_York)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FactoryError(
            f"{what} {name!r} is not a known IANA time zone (like America/New_York or UTC)"
        ) from None


@dataclass(frozen=True)
class Resolution:
    """One reduction width: `starts` maps event times to their buckets' starts."""

    text: str
    unit: str  # "fixed", or a calendar unit: d, w, mo, y
    count: int  # calendar units per bucket (1 for fixed)
    width: int  # µs: exact for fixed, nominal for calendar units
    tz: ZoneInfo | None

    @property
    def calendar(self) -> bool:
        return self.unit != "fixed"

    def starts(self, us: np.ndarray) -> np.ndarray:
        """The start (µs UTC) of each value's bucket; `us` is int64 µs UTC."""
        import numpy as np

        if not self.calendar:
            return us // self.width * self.width
        if us.size == 0:
            return us.copy()
        bounds = np.array(self._bounds(int(us.min()), int(us.max())), dtype=np.int64)
        return bounds[np.searchsorted(bounds, us, side="right") - 1]

    def floor(self, us: int) -> int:
        """The start of the bucket holding `us`."""
        if not self.calendar:
            return us // self.width * self.width
        return max(b for b in self._bounds(us, us) if b <= us)

    def next_start(self, start: int) -> int:
        """The start of the bucket after the one starting at `start` (its end, exclusive)."""
        if not self.calendar:
            return start + self.width
        return min(b for b in self._bounds(start, start + 1) if b > start)

    def _bounds(self, lo: int, hi: int) -> list[int]:
        """Bucket starts from one at or before `lo` to one after `hi`, ascending."""
        try:
            return self._bounds_of(lo, hi)
        except (OverflowError, ValueError):  # beyond years 1 to 9999
            bad = lo if not _in_calendar(lo) else hi
            raise FactoryError(
                f"time {bad} µs since the epoch is outside the calendar (years 2 to 9998) "
                f"a {self.text} bucket can hold"
            ) from None

    def _bounds_of(self, lo: int, hi: int) -> list[int]:
        first = self._floor_date(self._local_date(lo) - dt.timedelta(days=1))
        last = self._local_date(hi) + dt.timedelta(days=1)
        out = []
        d = first
        while True:
            out.append(self._instant(d))
            if d > last:
                return out
            d = self._add(d)

    def _local_date(self, us: int) -> dt.date:
        t = _EPOCH + dt.timedelta(microseconds=us)
        return (t.astimezone(self.tz) if self.tz is not None else t).date()

    def _instant(self, d: dt.date) -> int:
        """Local midnight starting `d`, in µs UTC: for a midnight a DST change skips or
        repeats, the first instant of the day (zoneinfo's fold=0)."""
        t = dt.datetime(d.year, d.month, d.day, tzinfo=self.tz or dt.UTC)
        delta = t - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000

    def _floor_date(self, d: dt.date) -> dt.date:
        n = self.count
        if self.unit == "d":
            return dt.date.fromordinal(d.toordinal() - (d - _EPOCH.date()).days % n)
        if self.unit == "w":
            return dt.date.fromordinal(d.toordinal() - (d - _MONDAY).days % (7 * n))
        if self.unit == "mo":
            return dt.date(d.year, (d.month - 1) // n * n + 1, 1)
        return dt.date(d.year - d.year % n, 1, 1)

    def _add(self, d: dt.date) -> dt.date:
        n = self.count
        if self.unit == "d":
            return d + dt.timedelta(days=n)
        if self.unit == "w":
            return d + dt.timedelta(weeks=n)
        if self.unit == "mo":
            months = d.month - 1 + n
            return dt.date(d.year + months // 12, months % 12 + 1, 1)
        return dt.date(d.year + n, 1, 1)


def _in_calendar(us: int) -> bool:
    try:
        _EPOCH + dt.timedelta(microseconds=us)
    except OverflowError:
        return False
    return True


def parse(text: Any, timezone: str | None, what: str) -> Resolution:
    """A resolution (`15m`, `1h`, `1d`, `1w`, `1mo`, `3mo`, `1y`) in `timezone` (None: UTC)."""
    tz = None if timezone is None else zone(timezone, "timezone")
    m = _CALENDAR.match(text) if isinstance(text, str) else None
    if m is None:  # a fixed duration (or an error saying what is accepted)
        if isinstance(text, str) and re.match(r"^\s*\d+\.\d+\s*(mo|y)\s*$", text):
            raise FactoryError(f"{what} {text!r}: months and years are whole numbers (1mo, 3mo)")
        try:
            width = parse_duration(text, what)
        except FactoryError:
            raise FactoryError(
                f"{what} {text!r} is not a resolution (use a number and ms, s, m, h, d, w, "
                "mo or y: 15m, 1h, 1d, 1w, 1mo, 1y)"
            ) from None
        return Resolution(text, "fixed", 1, width, None)
    count, unit = int(m.group(1)), m.group(2)
    if count <= 0:
        raise FactoryError(f"{what} {text!r} must be positive")
    if unit == "mo" and count not in MONTHS:
        raise FactoryError(
            f"{what} {text!r}: a month resolution must divide a year "
            f"({', '.join(f'{n}mo' for n in MONTHS)})"
        )
    if unit == "y" and count not in YEARS:
        raise FactoryError(
            f"{what} {text!r}: a year resolution is {', '.join(f'{n}y' for n in YEARS)}"
        )
    width = count * _NOMINAL_DAYS[unit] * DAY_US
    if unit == "d" and tz is None:  # UTC days are fixed widths on the epoch, as before
        return Resolution(text, "fixed", 1, width, None)
    return Resolution(text, unit, count, width, tz)
