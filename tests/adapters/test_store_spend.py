"""Spend points and coverage segments (hour and day resolution), on SQLite and
PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.adapters.store import SqlStore
from daemon.adapters.store.spend import apply_segment
from daemon.core.model import SeriesKey, SpendPoint
from daemon.core.ports import Coverage
from tests.adapters.test_store_common import ACCOUNT, PODS, T0, Backend, H, backend, store

__all__ = ["backend", "store"]  # fixtures, used by name
D = 24 * H


def day(p: str, t: datetime, amount: float) -> SpendPoint:
    return SpendPoint(t, p, amount, hours=24)


def test_times_come_back_as_aware_utc(store: SqlStore) -> None:
    berlin = datetime(2026, 11, 24, 10, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    store.replace_points(PODS, berlin, berlin + H, 1, [SpendPoint(berlin, "pod-a", 3.0)])
    (p,) = store.points(PODS, T0, T0 + 24 * H)
    assert p.time == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert p.time.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="aware"):
        store.points(PODS, datetime(2026, 11, 24), T0 + H)


def test_replace_points_applies_revisions_including_a_vanished_resource(store: SqlStore) -> None:
    store.replace_points(PODS, T0, T0 + 3 * H, 1, [
        SpendPoint(T0 + 2 * H, "pod-b", 0.5),
        SpendPoint(T0, "pod-b", 2.0),
        SpendPoint(T0, "pod-a", 1.0),
        SpendPoint(T0 + H, "pod-a", 1.0),
        SpendPoint(T0 + H, "pod-b", 2.0),
    ])
    store.replace_points(ACCOUNT, T0, T0 + 3 * H, 1, [SpendPoint(T0 + H, "total", 3.0)])
    assert [(p.time, p.resource) for p in store.points(PODS, T0, T0 + 3 * H)] == [
        (T0, "pod-a"), (T0, "pod-b"), (T0 + H, "pod-a"), (T0 + H, "pod-b"), (T0 + 2 * H, "pod-b"),
    ]
    # RunPod revised the last two hours: pod-b's spend there vanished, pod-a's grew.
    store.replace_points(PODS, T0 + H, T0 + 3 * H, 1, [SpendPoint(T0 + H, "pod-a", 1.75)])
    assert store.points(PODS, T0, T0 + 3 * H) == [
        SpendPoint(T0, "pod-a", 1.0),
        SpendPoint(T0, "pod-b", 2.0),
        SpendPoint(T0 + H, "pod-a", 1.75),
    ]
    # Another family and another account are untouched; the range end is exclusive.
    assert store.points(ACCOUNT, T0, T0 + 3 * H) == [SpendPoint(T0 + H, "total", 3.0)]
    assert store.points(ACCOUNT, T0, T0 + H) == []
    assert store.points(SeriesKey("lab", "pods"), T0, T0 + 3 * H) == []


def test_replace_points_sums_duplicates_and_rejects_bad_points(store: SqlStore) -> None:
    store.replace_points(
        PODS, T0, T0 + H, 1, [SpendPoint(T0, "pod-a", 1.0), SpendPoint(T0, "pod-a", 0.5)]
    )
    assert store.points(PODS, T0, T0 + H) == [SpendPoint(T0, "pod-a", 1.5)]
    with pytest.raises(ValueError, match="outside"):
        store.replace_points(PODS, T0, T0 + H, 1, [SpendPoint(T0 + H, "pod-a", 1.0)])
    with pytest.raises(ValueError, match="hours=24"):
        store.replace_points(PODS, T0, T0 + H, 1, [day("pod-a", T0, 1.0)])
    with pytest.raises(ValueError, match="1 or 24"):
        store.replace_points(PODS, T0, T0 + H, 2, [])
    # The failed calls changed nothing.
    assert store.points(PODS, T0, T0 + 2 * H) == [SpendPoint(T0, "pod-a", 1.5)]
    assert store.coverage(PODS) == [Coverage(T0, T0 + H, 1)]


def test_replace_points_leaves_exactly_the_new_points_over_random_polls(
    store: SqlStore,
) -> None:
    """Polls that re-send settled buckets unchanged, revise some, drop others,
    switch hours to a day: after each, the series holds exactly what a plain
    delete-the-range-and-insert would leave."""
    rng = random.Random(11)
    model: dict[tuple[datetime, str], SpendPoint] = {}
    for poll in range(60):
        if rng.random() < 0.2:
            start, hours = T0 + rng.randrange(3) * D, 24
            end = start + rng.randrange(1, 3) * D
        else:
            start, hours = T0 + rng.randrange(72) * H, 1
            end = start + rng.randrange(1, 6) * H
        step = timedelta(hours=hours)
        pts = []
        for i in range(round((end - start) / step)):
            for r in ("pod-a", "pod-b", "pod-c"):
                held = model.get((start + i * step, r))
                if held is not None and held.hours == hours and rng.random() < 0.9:
                    pts.append(held)  # a settled bucket, sent again unchanged
                elif rng.random() < 0.8:
                    pts.append(SpendPoint(start + i * step, r, rng.choice([0.5, 1.0, 2.0]), hours))
        store.replace_points(PODS, start, end, hours, pts)
        model = {k: p for k, p in model.items() if not start <= p.time < end}
        model.update({(p.time, p.resource): p for p in pts})
        want = sorted(model.values(), key=lambda p: (p.time, p.resource))
        assert store.points(PODS, T0, T0 + 4 * D) == want, f"poll {poll}"


def test_coverage_merges_adjacent_ranges_of_one_resolution(store: SqlStore) -> None:
    store.replace_points(PODS, T0 + 5 * H, T0 + 8 * H, 1, [])
    store.replace_points(PODS, T0 + 8 * H, T0 + 9 * H, 1, [])  # contiguous after
    store.replace_points(PODS, T0 + 2 * H, T0 + 6 * H, 1, [])  # overlapping before
    store.replace_points(PODS, T0 + 6 * H, T0 + 7 * H, 1, [])  # inside
    store.replace_points(PODS, T0 + 20 * H, T0 + 21 * H, 1, [])  # disjoint: a second segment
    assert store.coverage(PODS) == [
        Coverage(T0 + 2 * H, T0 + 9 * H, 1), Coverage(T0 + 20 * H, T0 + 21 * H, 1),
    ]
    assert store.coverage(ACCOUNT) == []


def test_coverage_at_mixed_resolution(store: SqlStore) -> None:
    """Old days held as day buckets, the recent ones by the hour: the planner
    sees which range has which resolution, and points of either kind are
    replaced by a range of the other."""
    d0 = T0 - 5 * D
    store.replace_points(PODS, d0, d0 + 4 * D, 24, [
        day("pod-a", d0 + i * D, 24.0) for i in range(4)
    ])
    store.replace_points(PODS, d0 + 4 * D, T0 + 6 * H, 1, [
        SpendPoint(d0 + 4 * D + i * H, "pod-a", 1.0) for i in range(30)
    ])
    assert store.coverage(PODS) == [
        Coverage(d0, d0 + 4 * D, 24), Coverage(d0 + 4 * D, T0 + 6 * H, 1),
    ]
    # The planner refetches day 3 by the hour: the day point there goes,
    # the day segment is cut in two and the hour segments merge.
    store.replace_points(PODS, d0 + 3 * D, d0 + 4 * D, 1, [
        SpendPoint(d0 + 3 * D + i * H, "pod-a", 0.5) for i in range(24)
    ])
    assert store.coverage(PODS) == [
        Coverage(d0, d0 + 3 * D, 24), Coverage(d0 + 3 * D, T0 + 6 * H, 1),
    ]
    pts = store.points(PODS, d0 + 2 * D, d0 + 4 * D)
    assert [p.hours for p in pts] == [24] + [1] * 24
    assert sum(p.amount for p in pts) == 24.0 + 12.0
    # And a whole-day refetch of day 4 replaces its 24 hour points by one day point.
    store.replace_points(PODS, d0 + 4 * D, d0 + 5 * D, 24, [day("pod-a", d0 + 4 * D, 20.0)])
    assert store.coverage(PODS) == [
        Coverage(d0, d0 + 3 * D, 24),
        Coverage(d0 + 3 * D, d0 + 4 * D, 1),
        Coverage(d0 + 4 * D, d0 + 5 * D, 24),
        Coverage(d0 + 5 * D, T0 + 6 * H, 1),
    ]
    assert store.points(PODS, d0 + 4 * D, d0 + 5 * D) == [day("pod-a", d0 + 4 * D, 20.0)]


def test_apply_segment_cuts_and_merges() -> None:
    assert apply_segment([(0, 10, 24)], (4, 6, 1)) == [(0, 4, 24), (4, 6, 1), (6, 10, 24)]
    assert apply_segment([(0, 4, 1), (6, 9, 1)], (4, 6, 1)) == [(0, 9, 1)]
    assert apply_segment([(0, 4, 1), (4, 8, 24)], (2, 10, 24)) == [(0, 2, 1), (2, 10, 24)]


def test_prune_points_drops_old_points_and_trims_coverage(store: SqlStore) -> None:
    pts = [SpendPoint(T0 + i * H, "pod-a", 1.0) for i in range(6)]
    store.replace_points(PODS, T0, T0 + 6 * H, 1, pts)
    store.replace_points(ACCOUNT, T0, T0 + 2 * H, 1, [SpendPoint(T0, "total", 1.0)])
    assert store.prune_points(T0 + 4 * H) == 5
    assert [p.time for p in store.points(PODS, T0, T0 + 6 * H)] == [T0 + 4 * H, T0 + 5 * H]
    assert store.coverage(PODS) == [Coverage(T0 + 4 * H, T0 + 6 * H, 1)]
    assert store.coverage(ACCOUNT) == []  # all of it was older than the cutoff


def test_150000_points_round_trip(backend: Backend) -> None:
    """The bulk path stores and returns every point (speed: bench/, not here)."""
    store = backend.open()
    hours = 24 * 60
    pts = [
        SpendPoint(T0 + h * H, f"pod-{r:03d}", r / 100) for h in range(hours) for r in range(104)
    ]
    assert len(pts) >= 149_760
    store.replace_points(PODS, T0, T0 + hours * H, 1, pts)
    back = store.points(PODS, T0, T0 + hours * H)
    assert back == pts
