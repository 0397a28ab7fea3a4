"""Dedupe: each threshold at most once per instance, forecasts once, rolling windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.models import Config
from daemon.core.dedupe import decide, entry_for, ledger_since
from daemon.core.evaluate import crossed, findings_for
from daemon.core.model import Finding, Group, InstanceStatus, Window
from daemon.core.ports import LedgerEntry
from daemon.core.windows import window_at

DAY0 = datetime(2026, 11, 24, tzinfo=UTC)
NOW = DAY0 + timedelta(hours=12)
DAY = Window("day", DAY0, DAY0 + timedelta(days=1), False)
UTCZ = ZoneInfo("UTC")


def status(
    spend: float,
    window: Window = DAY,
    group: Group | None = None,
    thresholds: tuple[float, ...] = (50.0, 80.0, 100.0),
    forecast: float | None = None,
) -> InstanceStatus:
    return InstanceStatus(
        account="acc",
        budget="b",
        group=group or Group(),
        window=window,
        spend=spend,
        limit=100.0,
        forecast=forecast,
        thresholds=thresholds,
        forecast_enabled=True,
    )


def thr(spend: float, **kw: Any) -> Finding:
    s = status(spend, **kw)
    return Finding("threshold", s, max(crossed(s)))


def fc(spend: float = 10.0, **kw: Any) -> Finding:
    return Finding("forecast", status(spend, forecast=200.0, **kw), None)


def test_first_finding_is_new_and_same_id_is_not() -> None:
    f = thr(85.0)
    assert decide([f], [], NOW) == [f]
    assert decide([f], [entry_for(f, NOW)], NOW + timedelta(minutes=5)) == []


def test_higher_threshold_fires_after_lower() -> None:
    ledger = [entry_for(thr(85.0), NOW)]
    assert [f.threshold for f in decide([thr(101.0)], ledger, NOW)] == [100.0]


def test_lower_threshold_never_fires_after_higher() -> None:
    ledger = [entry_for(thr(101.0), NOW)]
    assert decide([thr(85.0)], ledger, NOW + timedelta(hours=1)) == []  # spend revised down
    assert decide([thr(55.0)], ledger, NOW + timedelta(hours=1)) == []


def test_other_instances_are_independent() -> None:
    ledger = [entry_for(thr(101.0), NOW)]
    other_group = thr(101.0, group=Group(pod_id="p1"))
    next_day = Window("day", DAY.end, DAY.end + timedelta(days=1), False)
    tomorrow = thr(101.0, window=next_day)
    assert decide([other_group, tomorrow], ledger, NOW) == [other_group, tomorrow]


def test_forecast_at_most_once_per_instance() -> None:
    f = fc()
    ledger = [entry_for(f, NOW)]
    assert decide([fc(spend=30.0)], ledger, NOW + timedelta(hours=2)) == []
    # a threshold entry does not suppress a forecast, nor the other way round
    assert decide([f], [entry_for(thr(85.0), NOW)], NOW) == [f]
    assert len(decide([thr(85.0)], ledger, NOW)) == 1


def test_duplicates_within_one_batch_fire_once() -> None:
    assert len(decide([thr(85.0), thr(85.0), fc(), fc()], [], NOW)) == 2


def rolling_at(now: datetime) -> Window:
    return window_at("24h", now, UTCZ)


def test_rolling_fires_each_threshold_once_per_window_length() -> None:
    t0 = NOW
    first = thr(85.0, window=rolling_at(t0))
    ledger = [entry_for(first, t0)]
    later = t0 + timedelta(hours=5)
    assert decide([thr(85.0, window=rolling_at(later))], ledger, later) == []
    assert decide([thr(55.0, window=rolling_at(later))], ledger, later) == []
    much_later = t0 + timedelta(hours=24, minutes=5)
    again = thr(85.0, window=rolling_at(much_later))
    assert decide([again], ledger, much_later) == [again]
    assert again.alert_id != first.alert_id


def test_rolling_forecast_once_per_window_length() -> None:
    ledger = [entry_for(fc(window=rolling_at(NOW)), NOW)]
    later = NOW + timedelta(hours=23)
    assert decide([fc(window=rolling_at(later))], ledger, later) == []
    after = NOW + timedelta(hours=25)
    assert len(decide([fc(window=rolling_at(after))], ledger, after)) == 1


def test_ledger_since_reaches_the_earliest_window_start() -> None:
    config = Config.model_validate(
        {
            "version": 1,
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "budgets": [
                {"name": "d", "window": "day", "limit": 1},
                {"name": "m", "window": "month", "limit": 1},
                {"name": "r", "window": "31d", "limit": 1},
            ],
        }
    )
    since = ledger_since(config, NOW)
    assert since <= NOW - timedelta(days=31)
    assert since >= NOW - timedelta(days=32)


def test_entry_for_matches_store_fields() -> None:
    f = thr(85.0, group=Group(gpu_type="NVIDIA L4"))
    e = entry_for(f, NOW)
    assert e == LedgerEntry(
        id="acc:b:gpu=NVIDIA L4:2026-11-24T00:00:00Z:threshold:80",
        kind="threshold",
        account="acc",
        budget="b",
        group_key="gpu=NVIDIA L4",
        threshold="80",
        window_start=DAY0,
        created_at=NOW,
    )


# --------------------------------------------------------------------------- properties

spends = st.floats(min_value=0, max_value=200, allow_nan=False)


def poll_all(
    spend_seq: list[float], windows: list[Window], step: timedelta
) -> tuple[list[LedgerEntry], list[tuple[float | None, list[LedgerEntry]]]]:
    """Feed decide with one poll per spend value, growing the ledger by what it returns.

    Returns the ledger and, per poll, (highest threshold crossed, ledger after it)."""
    ledger: list[LedgerEntry] = []
    trace: list[tuple[float | None, list[LedgerEntry]]] = []
    for i, spend in enumerate(spend_seq):
        now = NOW + i * step
        s = status(spend, window=windows[i])
        fresh = decide(findings_for(s), ledger, now)
        ledger.extend(entry_for(f, now) for f in fresh)
        hit = crossed(s)
        trace.append((max(hit) if hit else None, list(ledger)))
    return ledger, trace


@settings(max_examples=300, deadline=None)
@given(seq=st.lists(spends, min_size=1, max_size=30))
def test_any_polls_fire_each_threshold_at_most_once_and_highest_always(seq: list[float]) -> None:
    ledger, trace = poll_all(seq, [DAY] * len(seq), timedelta(minutes=5))
    keys = [(e.group_key, e.window_start, e.kind, e.threshold) for e in ledger]
    assert len(keys) == len(set(keys))
    assert len({e.id for e in ledger}) == len(ledger)
    for highest, after in trace:
        if highest is not None:
            assert any(e.kind == "threshold" and float(e.threshold) >= highest for e in after)
    # thresholds fire in increasing order
    fired = [float(e.threshold) for e in ledger if e.kind == "threshold"]
    assert fired == sorted(fired)


@settings(max_examples=300, deadline=None)
@given(seq=st.lists(spends, min_size=1, max_size=30))
def test_non_decreasing_spend_fires_exactly_the_highest_crossed_at_each_rise(
    seq: list[float],
) -> None:
    seq = sorted(seq)
    ledger, trace = poll_all(seq, [DAY] * len(seq), timedelta(minutes=5))
    fired = [float(e.threshold) for e in ledger if e.kind == "threshold"]
    # each fired threshold is the highest crossed at the poll that fired it
    highs = [h for h, _ in trace]
    expected = sorted({h for h in highs if h is not None})
    assert fired == expected


@settings(max_examples=200, deadline=None)
@given(seq=st.lists(spends, min_size=1, max_size=40), step_min=st.integers(5, 180))
def test_rolling_never_repeats_a_threshold_within_window_length(
    seq: list[float], step_min: int
) -> None:
    step = timedelta(minutes=step_min)
    windows = [rolling_at(NOW + i * step) for i in range(len(seq))]
    ledger, trace = poll_all(seq, windows, step)
    length = timedelta(hours=24)
    by_threshold: dict[str, list[datetime]] = {}
    for e in ledger:
        by_threshold.setdefault(e.threshold, []).append(e.created_at)
    for times in by_threshold.values():
        assert all(b - a >= length for a, b in itertools.pairwise(times))
    for i, (highest, after) in enumerate(trace):
        now = NOW + i * step
        if highest is not None:  # fired within the current window length
            assert any(
                e.kind == "threshold"
                and float(e.threshold) >= highest
                and e.created_at > now - length
                for e in after
            )
