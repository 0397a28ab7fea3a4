"""Fetch planning: fewest requests, settle period, gaps, backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.models import Config
from daemon.core.model import FetchRequest, SeriesKey
from daemon.core.plan import month_start, needed_start, plan_fetch
from daemon.core.ports import Coverage

H = timedelta(hours=1)
NOW = datetime(2026, 11, 24, 14, 7, tzinfo=UTC)
CUR = datetime(2026, 11, 24, 14, tzinfo=UTC)  # current hour bucket
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
GPU = SeriesKey("acc", "gpuTypeId")
POD = SeriesKey("acc", "podId")


def cfg(*budgets: dict[str, Any], **top: Any) -> Config:
    return Config.model_validate(
        {
            "version": 1,
            "accounts": [{"name": "acc"}, {"name": "other"}],
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "budgets": list(budgets),
            **top,
        }
    )


def test_first_poll_fetches_the_whole_month_in_one_request_per_series() -> None:
    reqs = plan_fetch({GPU: MONTH, POD: MONTH}, {GPU: None}, NOW)
    assert reqs == [FetchRequest(GPU, MONTH, CUR + H), FetchRequest(POD, MONTH, CUR + H)]


def test_steady_state_refetches_settle_hours_and_current_hour_only() -> None:
    cov = Coverage(MONTH, CUR + H)  # the previous poll fetched the current hour
    reqs = plan_fetch({GPU: MONTH}, {GPU: cov}, NOW)
    assert reqs == [FetchRequest(GPU, CUR - 2 * H, CUR + H)]  # 3 hours


def test_first_poll_of_a_new_hour_is_also_three_hours() -> None:
    cov = Coverage(MONTH, CUR)  # last poll was in the previous hour
    assert plan_fetch({GPU: MONTH}, {GPU: cov}, NOW) == [FetchRequest(GPU, CUR - 2 * H, CUR + H)]


def test_restart_after_ten_hours_down_is_one_request_over_the_gap() -> None:
    cov = Coverage(MONTH, CUR - 10 * H)
    assert plan_fetch({GPU: MONTH}, {GPU: cov}, NOW) == [FetchRequest(GPU, CUR - 12 * H, CUR + H)]


def test_new_longer_window_backfills_before_the_stored_range() -> None:
    day = datetime(2026, 11, 24, tzinfo=UTC)
    cov = Coverage(day, CUR + H)  # so far only a day budget used the series
    reqs = plan_fetch({GPU: MONTH}, {GPU: cov}, NOW)
    assert reqs == [FetchRequest(GPU, MONTH, day), FetchRequest(GPU, CUR - 2 * H, CUR + H)]


def test_backfill_that_would_adjoin_the_forward_request_is_merged() -> None:
    cov = Coverage(CUR - 2 * H, CUR + H)
    assert plan_fetch({GPU: MONTH}, {GPU: cov}, NOW) == [FetchRequest(GPU, MONTH, CUR + H)]


def test_short_window_never_fetches_before_it_needs() -> None:
    cov = Coverage(MONTH, CUR + H)
    assert plan_fetch({GPU: CUR}, {GPU: cov}, NOW) == [FetchRequest(GPU, CUR, CUR + H)]


def test_needed_start_per_series_is_the_earliest_window_start() -> None:
    config = cfg(
        {"name": "day", "window": "day", "limit": 1},
        {"name": "month", "window": "month", "limit": 1, "accounts": ["acc"]},
        {"name": "pods", "window": "6h", "limit": 1, "per": "pod"},
        {
            "name": "h100",
            "window": "week",
            "limit": 1,
            "per": "pod",
            "match": {"gpu_type": ["NVIDIA H100 80GB HBM3"]},
            "accounts": ["other"],
        },
    )
    got = needed_start(config, ["acc", "other"], NOW)
    assert got == {
        GPU: MONTH,
        SeriesKey("other", "gpuTypeId"): datetime(2026, 11, 24, tzinfo=UTC),
        POD: CUR - 5 * H,
        SeriesKey("other", "podId"): CUR - 5 * H,
        SeriesKey("other", "podId", "NVIDIA H100 80GB HBM3"): datetime(2026, 11, 23, tzinfo=UTC),
    }
    assert set(needed_start(config, ["other"], NOW)) == {k for k in got if k.account == "other"}


def test_needed_start_in_kolkata_is_floored_to_the_hour() -> None:
    config = cfg({"name": "day", "window": "day", "limit": 1}, timezone="Asia/Kolkata")
    got = needed_start(config, ["acc"], NOW)
    assert got == {GPU: datetime(2026, 11, 23, 18, tzinfo=UTC)}  # local midnight is 18:30Z
    assert month_start(NOW, config.zone) == datetime(2026, 10, 31, 18, tzinfo=UTC)


# --------------------------------------------------------------------------- properties

hours = st.integers(min_value=0, max_value=24 * 40)


@settings(max_examples=300, deadline=None)
@given(need=hours, cov=st.none() | st.tuples(hours, hours), minute=st.integers(0, 59))
def test_plan_leaves_no_hole_and_refreshes_the_unsettled_hours(
    need: int, cov: tuple[int, int] | None, minute: int
) -> None:
    base = datetime(2026, 10, 1, tzinfo=UTC)
    now = base + timedelta(hours=24 * 40, minutes=minute)
    current = now.replace(minute=0)
    needed = {GPU: base + need * H}
    coverage = None
    if cov is not None:
        a, b = sorted(cov)
        coverage = Coverage(base + a * H, base + b * H)
    reqs = plan_fetch(needed, {GPU: coverage}, now)
    assert 1 <= len(reqs) <= 2
    fetched: set[datetime] = set()
    for r in reqs:
        assert r.start < r.end
        n = int((r.end - r.start) / H)
        fetched |= {r.start + i * H for i in range(n)}
    held = set()
    if coverage is not None:
        n = int((coverage.end - coverage.start) / H)
        held = {coverage.start + i * H for i in range(n)}
    must = {min(needed[GPU], current) + i * H for i in range(int((current - needed[GPU]) / H) + 1)}
    # every needed hour is stored or fetched, and the unsettled ones are fetched
    assert must <= fetched | held
    assert {current - 2 * H, current - H, current} & must <= fetched
    # nothing older than needed is fetched
    assert min(fetched) >= min(needed[GPU], current)
