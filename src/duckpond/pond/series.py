"""`Pond` methods for managing series over time: temporal bounds, overlapping versions,
collapsing many versions into one (docs/series.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..query.sources import TimeLike, to_us
from ..steward.handles import PondHandles

if TYPE_CHECKING:
    from ..query.overlaps import OverlapReport
    from ..steward.series import BoundsResult, CollapseReport


class SeriesMethods(PondHandles):
    def set_temporal_bounds(
        self,
        path: str,
        min_time: TimeLike = None,
        max_time: TimeLike = None,
        *,
        args: list[str] | None = None,
        vars: dict[str, str] | None = None,
    ) -> BoundsResult:
        """Limit what the stored series at `path` shows to [min_time, max_time] (inclusive;
        ISO 8601, µs since epoch or a datetime; None = open), recorded as a new version.
        The bounds replace earlier ones and stay in force after later appends; both None
        clears them. Every read applies them: SQL, describe, factories, the site."""
        from ..steward.series import set_bounds

        lo, hi = to_us(min_time), to_us(max_time)
        argv = args or ["python", "set_temporal_bounds", path]
        with self.steward.transaction(argv, vars) as tx:
            return set_bounds(tx, path, lo, hi)

    def detect_overlaps(self, patterns: str | Sequence[str]) -> OverlapReport:
        """Which live versions of the stored series matching `patterns` cover the same
        times, with the shared ranges and exact row counts."""
        from ..query.overlaps import detect

        return detect(self.fs, [patterns] if isinstance(patterns, str) else list(patterns))

    def collapse_versions(self, keep: int, *, args: list[str] | None = None) -> CollapseReport:
        """Fold every stored series with more than `keep` live versions into one new
        version with the same rows (one transaction; none when nothing qualifies). The
        folded versions stay stored and readable by number."""
        from ..steward.series import collapse

        return collapse(self.steward, keep, args or ["python", "collapse_versions", str(keep)])
