"""Evaluation: spend, thresholds, forecasts, contributors, instances."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.evaluate import evaluate, evaluate_budget
from daemon.core.model import SeriesKey, SpendPoint
from tests.core.helpers import (
    ACCOUNT,
    DAY0,
    H100,
    L4,
    NOW,
    PODS,
    SERVERLESS,
    STORAGE,
    H,
    acct,
    bud,
    cfg,
    data,
    info,
    pod,
    pt,
    run,
)


def test_highest_crossed_threshold_is_the_one_finding() -> None:
    ev = run(cfg(bud(thresholds=[50, 80, 100])), {ACCOUNT: acct(40.0) + acct(45.0, 5)})
    [status] = ev.statuses
    assert status.spend == 85.0
    assert status.percent == 85.0
    [f] = ev.findings
    assert (f.kind, f.threshold) == ("threshold", 80.0)
    assert f.alert_id == "acc:b:all:2026-11-24T00:00:00Z:threshold:80"


def test_nothing_below_the_lowest_threshold() -> None:
    ev = run(cfg(bud()), {ACCOUNT: acct(79.99)})
    assert ev.findings == []
    assert ev.statuses[0].thresholds == (80.0, 100.0)  # defaults


def test_spend_exactly_at_threshold_fires_even_as_a_float_sum() -> None:
    pts = acct(0.06, 1) + acct(0.84, 2)  # sums to 0.8999999999999999 in floats
    ev = run(cfg(bud(limit=1, thresholds=[90])), {ACCOUNT: pts})
    assert [f.threshold for f in ev.findings] == [90.0]


def test_current_provisional_hour_counts() -> None:
    ev = run(cfg(bud()), {ACCOUNT: acct(50.0, 11) + acct(35.0, 12)})
    assert ev.statuses[0].spend == 85.0
    assert [f.threshold for f in ev.findings] == [80.0]


def test_points_outside_the_window_do_not_count() -> None:
    ev = run(cfg(bud()), {ACCOUNT: acct(500.0, -1) + acct(10.0, 1) + acct(500.0, 24)})
    assert ev.statuses[0].spend == 10.0


def test_other_accounts_series_are_not_read() -> None:
    other = SeriesKey("other", "account")
    ev = run(cfg(bud(accounts=None)), {ACCOUNT: acct(1.0), other: acct(100.0)})
    assert {s.account: s.spend for s in ev.statuses} == {"acc": 1.0, "other": 100.0}


def test_closed_days_held_as_day_buckets_count_in_a_month_window() -> None:
    # the planner stores settled UTC days as one day bucket each
    pts = acct(7.0, -48, hours=24) + acct(5.0, -24, hours=24) + acct(1.0, 3)
    ev = run(cfg(bud(window="month")), {ACCOUNT: pts})
    assert ev.statuses[0].spend == 13.0


def test_day_window_in_berlin_counts_the_hour_before_utc_midnight() -> None:
    ev = run(cfg(bud(), timezone="Europe/Berlin"), {ACCOUNT: acct(30.0, -1) + acct(5.0, -2)})
    [s] = ev.statuses
    assert s.window.start == DAY0 - H
    assert s.spend == 30.0


def test_forecast_from_live_burn_of_running_pods() -> None:
    pods = [pod("p1", 4.0), pod("p2", 1.0), pod("p3", 50.0, running=False)]
    ev = run(cfg(bud(forecast=True)), {ACCOUNT: acct(50.0)}, pods)
    [s] = ev.statuses
    assert s.forecast == pytest.approx(50.0 + 5.0 * 12)
    assert [f.kind for f in ev.findings] == ["forecast"]
    assert ev.findings[0].alert_id.endswith(":forecast")


def test_forecast_off_by_default_gives_no_finding() -> None:
    ev = run(cfg(bud()), {ACCOUNT: acct(50.0)}, [pod("p1", 10.0)])
    assert ev.statuses[0].forecast == pytest.approx(170.0)
    assert ev.findings == []


def test_defaults_forecast_applies() -> None:
    config = cfg(bud(), defaults={"notify": ["ops"], "forecast": True})
    ev = run(config, {ACCOUNT: acct(50.0)}, [pod("p1", 10.0)])
    assert [f.kind for f in ev.findings] == ["forecast"]


def test_no_forecast_finding_once_spend_reaches_limit() -> None:
    ev = run(cfg(bud(forecast=True)), {ACCOUNT: acct(100.0)}, [pod("p1", 10.0)])
    assert [(f.kind, f.threshold) for f in ev.findings] == [("threshold", 100.0)]


def test_threshold_and_forecast_can_both_fire() -> None:
    ev = run(cfg(bud(forecast=True)), {ACCOUNT: acct(85.0)}, [pod("p1", 10.0)])
    assert [f.kind for f in ev.findings] == ["threshold", "forecast"]


def test_forecast_falls_back_to_recent_hourly_rate_without_pods() -> None:
    now = NOW + timedelta(minutes=30)  # 11.5 hours left
    pts = acct(1.0, 9) + acct(4.0, 10) + acct(6.0, 11) + acct(3.0, 12)
    ev = run(cfg(bud(forecast=True)), {ACCOUNT: pts}, None, now)
    [s] = ev.statuses
    assert s.forecast == pytest.approx(14.0 + 5.0 * 11.5)  # (4 + 6) / 2 per hour
    assert ev.skipped == []


def test_forecast_unknown_in_first_hour_without_pods() -> None:
    ev = run(cfg(bud(forecast=True)), {ACCOUNT: acct(99.0)}, None, DAY0 + timedelta(minutes=5))
    assert ev.statuses[0].forecast is None
    assert [f.kind for f in ev.findings] == ["threshold"]


def test_forecast_of_serverless_uses_the_recent_hourly_rate() -> None:
    # serverless has no live burn: the two complete hours before now stand in
    b = bud(forecast=True, match={"endpoint_id": ["ep1"]})
    pts = [pt("ep1", 1.0, 9), pt("ep1", 2.0, 10), pt("ep1", 4.0, 11), pt("ep1", 1.0, 12)]
    pts.append(pt("ep2", 50.0, 11))  # another endpoint: not in scope
    ev = run(cfg(b), {SERVERLESS: pts}, [pod("p1", 100.0)])
    [s] = ev.statuses
    assert s.spend == 8.0
    assert s.forecast == pytest.approx(8.0 + 3.0 * 12)  # (2 + 4) / 2 per hour, pods ignored


def test_forecast_of_the_account_budget_adds_live_pod_burn_and_other_families_rate() -> None:
    pts = (
        acct(3.0, 10, pods=2.0, serverless=1.0)
        + acct(5.0, 11, pods=2.0, serverless=2.0, storage=1.0)
        + acct(1.0, 12, pods=1.0)
    )
    ev = run(
        cfg(bud(forecast=True)), {ACCOUNT: pts}, [pod("p1", 4.0), pod("p2", 9.0, running=False)]
    )
    [s] = ev.statuses
    assert s.spend == 9.0
    # live pods 4.0/h + non-pod families (1 + 3) / 2 = 2.0/h, over 12 hours
    assert s.forecast == pytest.approx(9.0 + (4.0 + 2.0) * 12)
    assert [(c.label, c.spend) for c in s.top_contributors] == [
        ("pods", 5.0),
        ("serverless", 3.0),
        ("storage", 1.0),
    ]
    assert s.pod_ids == ("p1",)


def test_unscoped_budget_counts_serverless_and_storage_but_resources_pods_does_not() -> None:
    pts = acct(10.0, 1, pods=4.0, serverless=5.0, storage=1.0)
    config = cfg(
        bud("all"), bud("pods", resources=["pods"]), bud("ns", resources=["serverless", "storage"])
    )
    got = {s.budget: s.spend for s in run(config, {ACCOUNT: pts}).statuses}
    assert got == {"all": 10.0, "pods": 4.0, "ns": 6.0}


def test_resources_pods_forecast_adds_no_rate_of_other_families() -> None:
    pts = acct(10.0, 10, pods=0.0, serverless=10.0) + acct(10.0, 11, pods=0.0, serverless=10.0)
    ev = run(cfg(bud(resources=["pods"])), {ACCOUNT: pts}, [pod("p1", 1.0)])
    assert ev.statuses[0].forecast == pytest.approx(0.0 + 1.0 * 12)


def test_top_contributors_of_an_aggregate_instance() -> None:
    b = bud(match={"pod_id": [*(f"p{i}" for i in range(1, 8)), "x"]}, except_pods=["x"])
    pts = [pt(f"p{i}", float(i)) for i in range(1, 8)] + [pt("p7", 1.0, 1), pt("x", 99.0)]
    pods = [pod("p7", 1.0)]
    [s] = run(cfg(b), {PODS: pts}, pods).statuses
    assert [(c.label, c.spend) for c in s.top_contributors] == [
        ("name-p7 (p7)", 8.0),
        ("p6", 6.0),
        ("p5", 5.0),
        ("p4", 4.0),
        ("p3", 3.0),
    ]
    assert s.pod_ids == ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
    assert s.spend == 29.0


def test_account_wide_contributors_are_resource_families() -> None:
    # v2 (contract "What a budget counts"): an unscoped budget reads the account
    # series, so its contributors are the resource families, not GPU types
    pts = acct(33.0, 0, pods=30.0, storage=3.0)
    [s] = run(cfg(bud()), {ACCOUNT: pts}, [pod("p1", 3.0), pod("p2", 1.0, running=False)]).statuses
    assert [(c.label, c.spend) for c in s.top_contributors] == [("pods", 30.0), ("storage", 3.0)]
    assert s.pod_ids == ("p1",)


def test_per_pod_instances_each_get_their_own_status_and_alert_id() -> None:
    pts = [pt("p1", 90.0), pt("p2", 10.0)]
    ev = run(cfg(bud(per="pod")), {PODS: pts}, [pod("p1", 1.0), pod("p3", 1.0)])
    got = {s.group.pod_id: (s.spend, s.pod_ids, s.top_contributors) for s in ev.statuses}
    assert got == {"p1": (90.0, ("p1",), ()), "p2": (10.0, ("p2",), ()), "p3": (0.0, ("p3",), ())}
    assert [f.alert_id for f in ev.findings] == ["acc:b:pod=p1:2026-11-24T00:00:00Z:threshold:80"]


def test_budget_accounts_and_pod_name_budget_without_pods_list() -> None:
    # v2 (contract "What a budget counts"): pod names come from the pod registry,
    # so a pod_name budget is evaluated even when GET /pods failed
    config = cfg(bud("named", match={"pod_name": "t-*"}, accounts=None), bud("all", accounts=None))
    d = data({PODS: [pt("p1", 2.0), pt("p2", 3.0)], ACCOUNT: acct(5.0)}, [info("p1", "t-1")])
    ev = evaluate(config, d, {"acc": None, "other": []}, NOW)
    assert ev.skipped == []
    got = {(s.account, s.budget): s.spend for s in ev.statuses}
    assert got == {
        ("acc", "named"): 2.0,
        ("acc", "all"): 5.0,
        ("other", "named"): 0.0,
        ("other", "all"): 0.0,
    }


def test_evaluate_budget_targets_one_budget() -> None:
    config = cfg(bud("a", limit=10), bud("b", limit=1000))
    ev = evaluate_budget(config, config.budgets[0], "acc", data({ACCOUNT: acct(9.0)}), [], now=NOW)
    assert [(s.budget, s.limit) for s in ev.statuses] == [("a", 10.0)]
    assert [f.threshold for f in ev.findings] == [80.0]


def test_rolling_window_status() -> None:
    pts = acct(40.0, 5) + acct(45.0, 7)
    ev = run(cfg(bud(window="6h")), {ACCOUNT: pts})  # 07:00..12:59 counts, 05:00 does not
    [s] = ev.statuses
    assert (s.window.start, s.window.end) == (DAY0 + 7 * H, DAY0 + 13 * H)
    assert s.spend == 45.0
    assert ev.findings == []


def test_pod_level_per_gpu_type_lists_pods_as_contributors() -> None:
    pods = [pod("p1", 1.0), pod("p2", 1.0, gpu=L4), pod("dev", 1.0)]
    pts = [pt("p1", 5.0), pt("p2", 1.0), pt("dev", 50.0)]
    ev = run(cfg(bud(per="gpu_type", except_pods=["dev"])), {PODS: pts}, pods)
    got = {s.group.key: [c.label for c in s.top_contributors] for s in ev.statuses}
    assert got == {f"gpu={H100}": ["name-p1 (p1)"], f"gpu={L4}": ["name-p2 (p2)"]}
    assert {s.group.key: s.pod_ids for s in ev.statuses} == {
        f"gpu={H100}": ("p1",),
        f"gpu={L4}": ("p2",),
    }


def test_registry_attribution_of_pods_runpod_no_longer_lists() -> None:
    # a terminated pod still counts under its GPU type (from the registry); a pod
    # never seen goes to gpu=unknown with no name; the account total counts both
    pts = {
        PODS: [pt("live", 1.0), pt("gone", 2.0), pt("ghost", 4.0)],
        ACCOUNT: acct(7.0, pods=7.0),
    }
    d = data(pts, [info("gone", "old-run", L4)])
    config = cfg(bud("gpu", per="gpu_type"), bud("each", per="pod"), bud("all"))
    ev = run(config, d, [pod("live", 1.0)])
    gpu = {s.group.key: s.spend for s in ev.statuses if s.budget == "gpu"}
    assert gpu == {f"gpu={H100}": 1.0, f"gpu={L4}": 2.0, "gpu=unknown": 4.0}
    each = {
        s.group.pod_id: (s.group.pod_name, s.group.gpu_type)
        for s in ev.statuses
        if s.budget == "each"
    }
    assert each == {
        "live": ("name-live", H100),
        "gone": ("old-run", L4),
        "ghost": (None, "unknown"),
    }
    [whole] = [s for s in ev.statuses if s.budget == "all"]
    assert whole.spend == 7.0


def test_per_endpoint_and_per_volume_instances_carry_names_and_group_keys() -> None:
    names = {
        ("acc", "serverless"): {"ep1": "whisper", "ep2": "llm"},
        ("acc", "storage"): {"vol1": "datasets"},
    }
    d = data(
        {SERVERLESS: [pt("ep1", 85.0), pt("ep3", 1.0)], STORAGE: [pt("vol1", 2.0)]}, names=names
    )
    ev = run(cfg(bud("ep", per="endpoint"), bud("vol", per="volume")), d)
    got = {
        (s.budget, s.group.key): (s.spend, s.group.endpoint_name, s.group.volume_name)
        for s in ev.statuses
    }
    assert got == {
        ("ep", "endpoint=ep1"): (85.0, "whisper", None),
        ("ep", "endpoint=ep2"): (0.0, "llm", None),
        ("ep", "endpoint=ep3"): (1.0, None, None),
        ("vol", "volume=vol1"): (2.0, None, "datasets"),
    }
    assert [f.alert_id for f in ev.findings] == [
        "acc:ep:endpoint=ep1:2026-11-24T00:00:00Z:threshold:80"
    ]


def test_endpoint_name_glob_aggregate_lists_endpoints_as_contributors() -> None:
    names = {("acc", "serverless"): {"ep1": "llm-a", "ep2": "llm-b", "ep3": "whisper"}}
    d = data({SERVERLESS: [pt("ep1", 1.0), pt("ep2", 3.0), pt("ep3", 50.0)]}, names=names)
    [s] = run(cfg(bud(match={"endpoint_name": "llm-*"})), d).statuses
    assert s.spend == 4.0
    assert [c.label for c in s.top_contributors] == ["llm-b (ep2)", "llm-a (ep1)"]
    assert s.pod_ids == ()


amounts = st.floats(min_value=0, max_value=500, allow_nan=False).map(lambda x: round(x, 2))


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(
        st.builds(pt, st.sampled_from(["p1", "p2", "p3"]), amounts, st.integers(-3, 26)),
        max_size=30,
    ),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]),
)
def test_per_pod_statuses_sum_to_the_pods_wide_status(points: list[SpendPoint], zone: str) -> None:
    every = {"pod_id": ["p1", "p2", "p3"]}
    config = cfg(bud("whole", match=every), bud("each", per="pod"), timezone=zone)
    ev = run(config, {PODS: points}, [])
    [whole] = [s for s in ev.statuses if s.budget == "whole"]
    each = [s for s in ev.statuses if s.budget == "each"]
    in_window = [p for p in points if whole.window.start <= p.time < whole.window.end]
    assert whole.spend == pytest.approx(sum(p.amount for p in in_window), abs=1e-6)
    assert sum(s.spend for s in each) == pytest.approx(whole.spend, abs=1e-6)


def test_unscoped_budget_with_except_pods_still_counts_every_resource() -> None:
    # contract "What a budget counts": a budget with no pod, endpoint or volume
    # match counts every resource; except_pods only takes those pods out
    pts = {
        ACCOUNT: acct(10.0, 1, pods=7.0, serverless=3.0),
        PODS: [pt("p1", 5.0, 1), pt("dev", 2.0, 1)],
    }
    [s] = run(cfg(bud(except_pods=["dev"])), pts, [pod("p1"), pod("dev")]).statuses
    assert s.spend == 8.0  # 10 total - 2 of the excluded pod


FAMILIES = ["pods", "serverless", "storage", "clusters", "public_endpoints"]


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.integers(-2, 25), st.lists(amounts, min_size=5, max_size=5)), max_size=12
    )
)
def test_family_budgets_sum_to_the_unscoped_budget(parts: list[tuple[int, list[float]]]) -> None:
    # the account series keeps each bucket's total and its components
    pts: list[SpendPoint] = []
    for hour, values in parts:
        pts += acct(sum(values), hour, **dict(zip(FAMILIES, values, strict=True)))
    config = cfg(bud("all"), *(bud(f, resources=[f]) for f in FAMILIES))
    got = {s.budget: s.spend for s in run(config, {ACCOUNT: pts}).statuses}
    assert sum(got[f] for f in FAMILIES) == pytest.approx(got["all"], abs=1e-6)
