"""Evaluation: spend, thresholds, forecasts, contributors, skipped budgets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.models import Config
from daemon.core.evaluate import Evaluation, evaluate, evaluate_budget
from daemon.core.model import Pod, PodStatus, SeriesKey, SpendPoint

DAY0 = datetime(2026, 11, 24, tzinfo=UTC)
NOW = DAY0 + timedelta(hours=12)  # 12:00Z, 12 hours left in the UTC day
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"
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


def bud(name: str = "b", **kw: Any) -> dict[str, Any]:
    return {"name": name, "window": "day", "limit": 100.0, "accounts": ["acc"], **kw}


def pt(group: str, amount: float, hour: int = 0) -> SpendPoint:
    return SpendPoint(DAY0 + timedelta(hours=hour), group, amount)


def pod(pid: str, cost: float, gpu: str | None = H100, running: bool = True) -> Pod:
    status = PodStatus.RUNNING if running else PodStatus.EXITED
    return Pod(pid, f"name-{pid}", status, cost, gpu, 1)


def run(
    config: Config,
    points: Mapping[SeriesKey, Sequence[SpendPoint]],
    pods: Sequence[Pod] | None = (),
    now: datetime = NOW,
) -> Evaluation:
    return evaluate(config, points, {"acc": pods, "other": ()}, now)


def test_highest_crossed_threshold_is_the_one_finding() -> None:
    ev = run(cfg(bud(thresholds=[50, 80, 100])), {GPU: [pt(H100, 40.0), pt(H100, 45.0, 5)]})
    [status] = ev.statuses
    assert status.spend == 85.0
    assert status.percent == 85.0
    [f] = ev.findings
    assert (f.kind, f.threshold) == ("threshold", 80.0)
    assert f.alert_id == "acc:b:all:2026-11-24T00:00:00Z:threshold:80"


def test_nothing_below_the_lowest_threshold() -> None:
    ev = run(cfg(bud()), {GPU: [pt(H100, 79.99)]})
    assert ev.findings == []
    assert ev.statuses[0].thresholds == (80.0, 100.0)  # defaults


def test_spend_exactly_at_threshold_fires_even_as_a_float_sum() -> None:
    pts = [pt(H100, 0.06, 1), pt(H100, 0.84, 2)]  # sums to 0.8999999999999999 in floats
    ev = run(cfg(bud(limit=1, thresholds=[90])), {GPU: pts})
    assert [f.threshold for f in ev.findings] == [90.0]


def test_current_provisional_hour_counts() -> None:
    ev = run(cfg(bud()), {GPU: [pt(H100, 50.0, 11), pt(H100, 35.0, 12)]})
    assert ev.statuses[0].spend == 85.0
    assert [f.threshold for f in ev.findings] == [80.0]


def test_points_outside_the_window_do_not_count() -> None:
    ev = run(cfg(bud()), {GPU: [pt(H100, 500.0, -1), pt(H100, 10.0, 1), pt(H100, 500.0, 24)]})
    assert ev.statuses[0].spend == 10.0


def test_day_window_in_berlin_counts_the_hour_before_utc_midnight() -> None:
    ev = run(cfg(bud(), timezone="Europe/Berlin"), {GPU: [pt(H100, 30.0, -1), pt(H100, 5.0, -2)]})
    [s] = ev.statuses
    assert s.window.start == DAY0 - timedelta(hours=1)
    assert s.spend == 30.0


def test_forecast_from_live_burn_of_running_pods() -> None:
    pods = [pod("p1", 4.0), pod("p2", 1.0), pod("p3", 50.0, running=False)]
    ev = run(cfg(bud(forecast=True)), {GPU: [pt(H100, 50.0)]}, pods)
    [s] = ev.statuses
    assert s.forecast == pytest.approx(50.0 + 5.0 * 12)
    assert [f.kind for f in ev.findings] == ["forecast"]
    assert ev.findings[0].alert_id.endswith(":forecast")


def test_forecast_off_by_default_gives_no_finding() -> None:
    ev = run(cfg(bud()), {GPU: [pt(H100, 50.0)]}, [pod("p1", 10.0)])
    assert ev.statuses[0].forecast == pytest.approx(170.0)
    assert ev.findings == []


def test_defaults_forecast_applies() -> None:
    config = cfg(bud(), defaults={"notify": ["ops"], "forecast": True})
    ev = run(config, {GPU: [pt(H100, 50.0)]}, [pod("p1", 10.0)])
    assert [f.kind for f in ev.findings] == ["forecast"]


def test_no_forecast_finding_once_spend_reaches_limit() -> None:
    ev = run(cfg(bud(forecast=True)), {GPU: [pt(H100, 100.0)]}, [pod("p1", 10.0)])
    assert [(f.kind, f.threshold) for f in ev.findings] == [("threshold", 100.0)]


def test_threshold_and_forecast_can_both_fire() -> None:
    ev = run(cfg(bud(forecast=True)), {GPU: [pt(H100, 85.0)]}, [pod("p1", 10.0)])
    assert [f.kind for f in ev.findings] == ["threshold", "forecast"]


def test_forecast_falls_back_to_recent_hourly_rate_without_pods() -> None:
    now = NOW + timedelta(minutes=30)  # 11.5 hours left
    pts = [pt(H100, 1.0, 9), pt(H100, 4.0, 10), pt(H100, 6.0, 11), pt(H100, 3.0, 12)]
    ev = run(cfg(bud(forecast=True)), {GPU: pts}, None, now)
    [s] = ev.statuses
    assert s.forecast == pytest.approx(14.0 + 5.0 * 11.5)  # (4 + 6) / 2 per hour
    assert ev.skipped == []


def test_forecast_unknown_in_first_hour_without_pods() -> None:
    ev = run(cfg(bud(forecast=True)), {GPU: [pt(H100, 99.0, 0)]}, None, DAY0 + timedelta(minutes=5))
    assert ev.statuses[0].forecast is None
    assert [f.kind for f in ev.findings] == ["threshold"]


def test_top_contributors_of_an_aggregate_instance() -> None:
    b = bud(except_pods=["x"])
    pts = [pt(f"p{i}", float(i)) for i in range(1, 8)] + [pt("p7", 1.0, 1), pt("x", 99.0)]
    pods = [pod("p7", 1.0)]
    [s] = run(cfg(b), {POD: pts}, pods).statuses
    assert [(c.label, c.spend) for c in s.top_contributors] == [
        ("name-p7 (p7)", 8.0),
        ("p6", 6.0),
        ("p5", 5.0),
        ("p4", 4.0),
        ("p3", 3.0),
    ]
    assert s.pod_ids == ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
    assert s.spend == 29.0


def test_gpu_aggregate_lists_gpu_types_and_running_pods() -> None:
    pts = [pt(H100, 30.0), pt(L4, 2.0), pt("NVIDIA  L4", 1.0, 1)]
    [s] = run(cfg(bud()), {GPU: pts}, [pod("p1", 3.0), pod("p2", 1.0, running=False)]).statuses
    assert [(c.label, c.spend) for c in s.top_contributors] == [(H100, 30.0), ("NVIDIA  L4", 3.0)]
    assert s.pod_ids == ("p1",)


def test_per_pod_instances_each_get_their_own_status_and_alert_id() -> None:
    pts = [pt("p1", 90.0), pt("p2", 10.0)]
    ev = run(cfg(bud(per="pod")), {POD: pts}, [pod("p1", 1.0), pod("p3", 1.0)])
    got = {s.group.pod_id: (s.spend, s.pod_ids, s.top_contributors) for s in ev.statuses}
    assert got == {"p1": (90.0, ("p1",), ()), "p2": (10.0, ("p2",), ()), "p3": (0.0, ("p3",), ())}
    assert [f.alert_id for f in ev.findings] == ["acc:b:pod=p1:2026-11-24T00:00:00Z:threshold:80"]


def test_budget_accounts_and_skips() -> None:
    config = cfg(bud("named", match={"pod_name": "t-*"}, accounts=None), bud("all", accounts=None))
    ev = evaluate(config, {GPU: [pt(H100, 1.0)]}, {"acc": None, "other": []}, NOW)
    assert [(s.account, s.budget) for s in ev.skipped] == [("acc", "named")]
    assert "GET /pods" in ev.skipped[0].reason
    assert sorted((s.account, s.budget) for s in ev.statuses) == [
        ("acc", "all"),
        ("other", "all"),
        ("other", "named"),
    ]
    account, name, _ = ev.skipped[0]  # a plain tuple for callers that unpack it
    assert (account, name) == ("acc", "named")


def test_evaluate_budget_targets_one_budget() -> None:
    config = cfg(bud("a", limit=10), bud("b", limit=1000))
    ev = evaluate_budget(config, config.budgets[0], "acc", {GPU: [pt(H100, 9.0)]}, [], now=NOW)
    assert [(s.budget, s.limit) for s in ev.statuses] == [("a", 10.0)]
    assert [f.threshold for f in ev.findings] == [80.0]


def test_rolling_window_status() -> None:
    pts = [pt(H100, 40.0, 5), pt(H100, 45.0, 7)]
    ev = run(cfg(bud(window="6h")), {GPU: pts})  # 07:00..12:59 counts, 05:00 does not
    [s] = ev.statuses
    assert (s.window.start, s.window.end) == (DAY0 + timedelta(hours=7), DAY0 + timedelta(hours=13))
    assert s.spend == 45.0
    assert ev.findings == []


def test_pod_level_per_gpu_type_lists_pods_as_contributors() -> None:
    pods = [pod("p1", 1.0), pod("p2", 1.0, gpu=L4), pod("dev", 1.0)]
    pts = [pt("p1", 5.0), pt("p2", 1.0), pt("dev", 50.0)]
    ev = run(cfg(bud(per="gpu_type", except_pods=["dev"])), {POD: pts}, pods)
    got = {s.group.key: [c.label for c in s.top_contributors] for s in ev.statuses}
    assert got == {f"gpu={H100}": ["name-p1 (p1)"], f"gpu={L4}": ["name-p2 (p2)"]}
    assert {s.group.key: s.pod_ids for s in ev.statuses} == {
        f"gpu={H100}": ("p1",),
        f"gpu={L4}": ("p2",),
    }


amounts = st.floats(min_value=0, max_value=500, allow_nan=False).map(lambda x: round(x, 2))


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(
        st.builds(pt, st.sampled_from(["p1", "p2", "p3"]), amounts, st.integers(-3, 26)),
        max_size=30,
    ),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]),
)
def test_per_pod_statuses_sum_to_the_account_wide_status(
    points: list[SpendPoint], zone: str
) -> None:
    config = cfg(bud("whole", except_pods=["nobody"]), bud("each", per="pod"), timezone=zone)
    ev = run(config, {POD: points}, [])
    [whole] = [s for s in ev.statuses if s.budget == "whole"]
    each = [s for s in ev.statuses if s.budget == "each"]
    in_window = [p for p in points if whole.window.start <= p.time < whole.window.end]
    assert whole.spend == pytest.approx(sum(p.amount for p in in_window), abs=1e-6)
    assert sum(s.spend for s in each) == pytest.approx(whole.spend, abs=1e-6)
