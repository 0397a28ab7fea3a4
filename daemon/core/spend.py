"""Stored spend, indexed for evaluation: sums per resource over a window.

A budget instance needs, for each resource in its scope, the spend inside its
window and over the last complete hours. Many budgets share a window (every
``day`` budget of an account reads the same day), so :class:`SeriesView`
computes each (window) sum once per series and hands out the per-resource
totals; an instance then costs O(resources in scope), not O(points).

A point counts toward ``[start, end)`` when the whole bucket lies inside it.
The planner stores hour buckets wherever a window edge cuts a UTC day, so a
bucket that straddles an edge is a planning gap, not spend to guess at: it is
left out and reported through :attr:`SeriesView.straddling`.

Pure: plain data in and out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from daemon.core.model import PodInfo, SeriesKey, SpendPoint

HOUR = timedelta(hours=1)


class SeriesView:
    """The points of one series with memoised per-resource window sums."""

    __slots__ = ("_hours", "_points", "_sums", "straddling")

    def __init__(self, points: Iterable[SpendPoint]) -> None:
        self._points: tuple[SpendPoint, ...] = tuple(points)
        self._sums: dict[tuple[datetime, datetime], dict[str, float]] = {}
        self._hours: dict[datetime, dict[str, float]] | None = None
        self.straddling = 0

    @property
    def points(self) -> tuple[SpendPoint, ...]:
        return self._points

    def window(self, start: datetime, end: datetime) -> Mapping[str, float]:
        """Spend per resource of the buckets inside ``[start, end)``."""
        key = (start, end)
        cached = self._sums.get(key)
        if cached is not None:
            return cached
        parts: dict[str, list[float]] = {}
        for p in self._points:
            t = p.time
            if t >= end:
                continue
            if t < start:
                if p.hours != 1 and t + timedelta(hours=p.hours) > start:
                    self.straddling += 1
                continue
            if p.hours != 1 and t + timedelta(hours=p.hours) > end:
                self.straddling += 1
                continue
            parts.setdefault(p.resource, []).append(p.amount)
        sums = {r: math.fsum(v) for r, v in parts.items()}
        self._sums[key] = sums
        return sums

    def hour(self, t: datetime) -> Mapping[str, float]:
        """Spend per resource in the hour bucket starting at ``t`` (hour points only)."""
        if self._hours is None:
            by: dict[datetime, dict[str, float]] = {}
            for p in self._points:
                if p.hours == 1:
                    slot = by.setdefault(p.time, {})
                    slot[p.resource] = slot.get(p.resource, 0.0) + p.amount
            self._hours = by
        return self._hours.get(t, {})


@dataclass
class SpendData:
    """What evaluation reads besides the live pods: stored spend per series,
    the pod registry and the names of endpoints and volumes, per account."""

    series: dict[SeriesKey, SeriesView] = field(default_factory=dict)
    registry: Mapping[str, Mapping[str, PodInfo]] = field(default_factory=dict)
    names: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)

    def view(self, key: SeriesKey) -> SeriesView:
        """The series' view; an unknown series is empty (no spend)."""
        v = self.series.get(key)
        if v is None:
            v = self.series[key] = SeriesView(())
        return v

    @classmethod
    def of(
        cls,
        points: Mapping[SeriesKey, Sequence[SpendPoint]],
        registry: Mapping[str, Mapping[str, PodInfo]] | None = None,
        names: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    ) -> SpendData:
        return cls(
            {k: SeriesView(v) for k, v in points.items()}, registry or {}, names or {}
        )


def total(sums: Mapping[str, float], resources: Iterable[str]) -> float:
    """The exact sum of ``sums`` over ``resources`` (missing ones count 0)."""
    if type(resources) is tuple and len(resources) == 1:  # a per-pod instance: no fsum
        return sums.get(resources[0], 0.0) + 0.0  # + 0.0: as fsum, -0.0 becomes 0.0
    return math.fsum(sums.get(r, 0.0) for r in resources)
