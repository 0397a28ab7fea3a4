"""SeriesView and SpendData: per-resource window sums over mixed hour and day buckets."""

from __future__ import annotations

from daemon.core.model import SeriesKey
from daemon.core.spend import SeriesView, SpendData, total
from tests.core.helpers import DAY0, PODS, H, pt


def test_window_sums_per_resource_of_buckets_inside() -> None:
    v = SeriesView([pt("a", 1.0, 0), pt("a", 2.0, 5), pt("b", 4.0, 5), pt("a", 8.0, 24)])
    assert dict(v.window(DAY0, DAY0 + 24 * H)) == {"a": 3.0, "b": 4.0}
    assert v.straddling == 0


def test_day_and_hour_buckets_mix_and_each_hour_counts_once() -> None:
    # day buckets for two settled days, hours for today
    pts = [pt("a", 24.0, -48, 24), pt("a", 12.0, -24, 24), pt("a", 1.0, 0), pt("a", 1.0, 1)]
    v = SeriesView(pts)
    assert dict(v.window(DAY0 - 48 * H, DAY0 + 24 * H)) == {"a": 38.0}
    assert dict(v.window(DAY0 - 24 * H, DAY0 + 24 * H)) == {"a": 14.0}


def test_day_bucket_straddling_the_window_end_is_left_out_and_reported() -> None:
    v = SeriesView([pt("a", 24.0, 0, 24), pt("a", 1.0, 1)])
    assert dict(v.window(DAY0, DAY0 + 12 * H)) == {"a": 1.0}
    assert v.straddling == 1


def test_a_repeated_window_is_served_from_the_memo() -> None:
    v = SeriesView([pt("a", 24.0, 0, 24)])
    w1 = v.window(DAY0, DAY0 + 12 * H)
    assert v.window(DAY0, DAY0 + 12 * H) is w1
    assert v.straddling == 1  # reported once per window, not once per read


def test_day_bucket_straddling_the_window_start_is_left_out_and_reported() -> None:
    # a Berlin day window starts at 23:00Z: yesterday's day bucket starts
    # before it and ends inside it, so it must not count, and it is a gap the
    # planner left, which is what ``straddling`` exists to tell
    v = SeriesView([pt("a", 24.0, -24, 24), pt("a", 1.0, 2)])
    assert dict(v.window(DAY0 - H, DAY0 + 23 * H)) == {"a": 1.0}
    assert v.straddling == 1


def test_hour_reads_hour_buckets_only() -> None:
    v = SeriesView([pt("a", 24.0, 0, 24), pt("a", 1.0, 0), pt("a", 2.0, 0), pt("b", 4.0, 0)])
    assert dict(v.hour(DAY0)) == {"a": 3.0, "b": 4.0}
    assert dict(v.hour(DAY0 + H)) == {}


def test_total_is_exact_over_the_named_resources() -> None:
    assert total({"a": 1.5, "b": 2.0, "c": 5.0}, ["a", "b", "zz"]) == 3.5  # missing is 0
    # fsum, not left to right: a naive sum loses the 1.0 entirely
    assert total({"a": 1e16, "b": 1.0, "c": -1e16}, ["a", "b", "c"]) == 1.0


def test_spend_data_unknown_series_is_empty_and_of_builds_views() -> None:
    d = SpendData.of({PODS: [pt("a", 1.0)]})
    assert dict(d.view(PODS).window(DAY0, DAY0 + H)) == {"a": 1.0}
    assert dict(d.view(SeriesKey("acc", "storage")).window(DAY0, DAY0 + H)) == {}
    assert d.registry == {} and d.names == {}
