"""Pure enforcement decisions: one test per rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.config.models import Config
from daemon.core.enforce import (
    EnforcementPlan,
    Refusal,
    describe_plan,
    fits,
    horizon_hours,
    plan_enforcement,
)
from daemon.core.model import Group, InstanceStatus, Pod, PodStatus, Window
from tests.core.helpers import pod as make_pod

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = Window("day", datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), False)


def cfg(*budgets: dict[str, Any], cap: int = 5) -> Config:
    return Config.model_validate(
        {
            "version": 1,
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "budgets": list(budgets),
            "enforcement": {"max_stops_per_cycle": cap},
        }
    )


def budget(name: str = "b", **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "window": "day", "limit": 100.0}
    out.update(kw)
    return out


def pod(
    pid: str,
    cost: float = 1.0,
    status: PodStatus = PodStatus.RUNNING,
    name: str | None = None,
    **kw: bool,
) -> Pod:
    """A live CPU pod (GPU type plays no part in enforcement); ``kw``: locked, can_stop."""
    return make_pod(pid, cost, None, name=name, status=status, **kw)


def per_pod(pid: str, spend: float, budget_name: str = "b", limit: float = 100.0) -> InstanceStatus:
    return InstanceStatus(
        account="acc",
        budget=budget_name,
        group=Group(pod_id=pid, pod_name=f"name-{pid}"),
        window=DAY,
        spend=spend,
        limit=limit,
        forecast=None,
        thresholds=(80.0, 100.0),
        forecast_enabled=False,
        pod_ids=(pid,),
    )


def aggregate(
    pod_ids: Sequence[str],
    spend: float,
    limit: float = 100.0,
    window: Window = DAY,
    name: str = "b",
) -> InstanceStatus:
    return InstanceStatus(
        account="acc",
        budget=name,
        group=Group(),
        window=window,
        spend=spend,
        limit=limit,
        forecast=None,
        thresholds=(80.0, 100.0),
        forecast_enabled=False,
        pod_ids=tuple(pod_ids),
    )


def plan(
    config: Config,
    statuses: Sequence[InstanceStatus],
    pods: Mapping[str, Sequence[Pod] | None],
    *,
    fresh: bool = True,
) -> EnforcementPlan:
    return plan_enforcement(config, statuses, pods, fresh, NOW)


def reasons(p: EnforcementPlan) -> list[tuple[str | None, str]]:
    return [(r.pod_id, r.reason) for r in p.refusals]


# --------------------------------------------------------------------------- trigger


def test_budget_without_enforce_stops_nothing() -> None:
    p = plan(cfg(budget(per="pod")), [per_pod("p1", 500)], {"acc": [pod("p1")]})
    assert p.empty


def test_below_at_stops_nothing_and_at_or_above_stops() -> None:
    c = cfg(budget(per="pod", enforce={"at": 120, "dry_run": False}))
    assert plan(c, [per_pod("p1", 119.9)], {"acc": [pod("p1")]}).empty
    p = plan(c, [per_pod("p1", 120.0)], {"acc": [pod("p1")]})
    assert [(a.pod_id, a.dry_run) for a in p.actions] == [("p1", False)]
    assert p.actions[0].instance_key == per_pod("p1", 120.0).instance_key
    assert p.actions[0].pod_name == "name-p1"


def test_dry_run_is_the_default() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100}))
    p = plan(c, [per_pod("p1", 150)], {"acc": [pod("p1")]})
    assert [(a.pod_id, a.dry_run) for a in p.actions] == [("p1", True)]
    assert p.stops == ()
    assert p.dry_runs == p.actions


def test_only_the_enforcing_budget_acts() -> None:
    c = cfg(
        budget("watch", per="pod"),
        budget("stop", per="pod", enforce={"at": 100, "dry_run": False}),
    )
    statuses = [per_pod("p1", 500, "watch"), per_pod("p2", 500, "stop")]
    p = plan(c, statuses, {"acc": [pod("p1"), pod("p2")]})
    assert [a.pod_id for a in p.actions] == ["p2"]


# --------------------------------------------------------------------------- refusals


def test_stale_data_blocks_every_stop() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    p = plan(c, [per_pod("p1", 500)], {"acc": [pod("p1")]}, fresh=False)
    assert p.actions == ()
    assert reasons(p) == [(None, "stale_data")]


def test_pods_unavailable_blocks_that_account() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    p = plan(c, [per_pod("p1", 500)], {"acc": None})
    assert p.actions == ()
    assert reasons(p) == [(None, "pods_unavailable")]
    # an account missing from the mapping counts as unavailable too
    assert reasons(plan(c, [per_pod("p1", 500)], {})) == [(None, "pods_unavailable")]


def test_protected_pod_is_never_stopped() -> None:
    c = cfg(budget(per="pod", except_pods=["p1"], enforce={"at": 100, "dry_run": False}))
    p = plan(c, [per_pod("p1", 500)], {"acc": [pod("p1")]})
    assert p.actions == ()
    assert reasons(p) == [("p1", "protected")]


def test_protected_by_name() -> None:
    c = cfg(budget(per="pod", except_pods=["keep-me"], enforce={"at": 100, "dry_run": False}))
    p = plan(c, [per_pod("p1", 500)], {"acc": [pod("p1", name="keep-me")]})
    assert reasons(p) == [("p1", "protected")]


@pytest.mark.parametrize("listed", [True, False])
def test_not_running_pod_is_never_stopped(listed: bool) -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    pods = [pod("p1", status=PodStatus.EXITED)] if listed else [pod("other")]
    p = plan(c, [per_pod("p1", 500)], {"acc": pods})
    assert p.actions == ()
    assert reasons(p) == [("p1", "not_running")]


@pytest.mark.parametrize(
    ("flags", "reason"),
    [({"locked": True}, "locked"), ({"can_stop": False}, "not_stoppable")],
)
def test_locked_or_unstoppable_pod_is_refused(flags: dict[str, bool], reason: str) -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    p = plan(c, [per_pod("p1", 500)], {"acc": [pod("p1", **flags)]})
    assert p.actions == ()
    assert reasons(p) == [("p1", reason)]
    assert not p.cap_reached


def test_locked_refusal_is_described() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    lines = describe_plan(plan(c, [per_pod("p1", 500)], {"acc": [pod("p1", locked=True)]}))
    assert any("pod p1" in line and "locked" in line for line in lines)


# --------------------------------------------------------------------------- aggregate


def test_aggregate_over_limit_stops_everything_burning_highest_first() -> None:
    c = cfg(budget(enforce={"at": 100, "dry_run": False}))
    pods = [pod("a", 1.0), pod("b", 4.0), pod("c", 2.0), pod("d", 3.0, PodStatus.EXITED)]
    pods.append(pod("x", 9.0))
    # "x" runs but is not in scope; "d" is in scope but not running
    p = plan(c, [aggregate(["a", "b", "c", "d"], spend=130)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["b", "c", "a"]
    assert [a.burn_per_hr for a in p.actions] == [4.0, 2.0, 1.0]
    assert p.refusals == ()


def test_aggregate_under_limit_stops_highest_burn_until_it_fits() -> None:
    # 12h left in the day. spend 90 of 100: 10 USD of room, i.e. < 0.8333 USD/h.
    c = cfg(budget(enforce={"at": 90, "dry_run": False}))
    pods = [pod("big", 5.0), pod("mid", 0.5), pod("small", 0.3)]
    p = plan(c, [aggregate(["big", "mid", "small"], spend=90)], {"acc": pods})
    # stop big (5.0): 0.8 USD/h left x 12 h = 9.6 -> 99.6 <= 100: fits
    assert [a.pod_id for a in p.actions] == ["big"]


def test_aggregate_keeps_stopping_until_it_fits() -> None:
    c = cfg(budget(enforce={"at": 90, "dry_run": False}))
    pods = [pod("a", 0.5), pod("b", 0.4), pod("c", 0.3)]
    # room 10 over 12 h: need burn <= 0.833; 1.2 -> stop a (0.7) -> fits
    p = plan(c, [aggregate(["a", "b", "c"], 90)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["a"]
    # room 4 over 12 h: need burn <= 0.333; stop a, b -> 0.3 fits
    p = plan(c, [aggregate(["a", "b", "c"], 96)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["a", "b"]


def test_locked_pod_keeps_burning_so_the_next_pod_is_stopped_instead() -> None:
    # 12 h left, spend 90 of 100: burn must drop to <= 0.833 USD/h. The locked
    # pod (2.0) cannot be stopped and its burn still counts, so stopping the
    # others cannot make it fit: every stoppable pod goes, highest first.
    c = cfg(budget(enforce={"at": 90, "dry_run": False}))
    pods = [pod("big", 2.0, locked=True), pod("mid", 1.0), pod("small", 0.5)]
    p = plan(c, [aggregate(["big", "mid", "small"], 90)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["mid", "small"]
    assert reasons(p) == [("big", "locked")]


def test_unstoppable_biggest_pod_is_skipped_and_the_next_makes_room() -> None:
    # 0.5 x 12 = 6 -> 96 fits once "mid" (1.0) is stopped; "big" has no stop action
    c = cfg(budget(enforce={"at": 90, "dry_run": False}))
    pods = [pod("big", 0.3, can_stop=False), pod("mid", 1.0), pod("small", 0.2)]
    p = plan(c, [aggregate(["big", "mid", "small"], 90)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["mid"]
    assert reasons(p) == []  # fits before the unstoppable pod's turn comes
    pods = [pod("big", 3.0, can_stop=False), pod("mid", 0.6), pod("small", 0.2)]
    p = plan(c, [aggregate(["big", "mid", "small"], 90)], {"acc": pods})
    assert reasons(p) == [("big", "not_stoppable")]
    assert [a.pod_id for a in p.actions] == ["mid", "small"]


def test_aggregate_that_already_fits_stops_nothing() -> None:
    c = cfg(budget(enforce={"at": 50, "dry_run": False}))
    p = plan(c, [aggregate(["a"], 60)], {"acc": [pod("a", 0.1)]})  # 60 + 1.2 <= 100
    assert p.empty


def test_aggregate_protected_pod_is_reported_and_outside_the_budget() -> None:
    # except_pods are outside the budget (evaluate leaves them out of spend and
    # burn); if one is listed in scope anyway it is refused and its burn ignored
    c = cfg(budget(except_pods=["keep"], enforce={"at": 90, "dry_run": False}))
    pods = [pod("keep", 2.0), pod("a", 0.5), pod("b", 0.3)]
    p = plan(c, [aggregate(["keep", "a", "b"], 95)], {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["a"]  # 0.3 x 12 h = 3.6 -> 98.6 fits
    assert reasons(p) == [("keep", "protected")]


def test_rolling_window_projects_over_its_whole_length() -> None:
    rolling = Window("6h", NOW - timedelta(hours=5), NOW + timedelta(hours=1), True)
    st = aggregate(["a", "b"], spend=90, window=rolling)
    assert horizon_hours(st, NOW) == 6.0
    c = cfg(budget(window="6h", enforce={"at": 90, "dry_run": False}))
    # room 10 over 6 h: burn must be <= 1.667; 3.0 -> stop a (2.0) -> 1.0 fits
    p = plan(c, [st], {"acc": [pod("a", 2.0), pod("b", 1.0)]})
    assert [a.pod_id for a in p.actions] == ["a"]


def test_fits() -> None:
    assert fits(90, 0.5, 10, 100)
    assert not fits(90, 1.1, 10, 100)
    assert not fits(100, 0.01, 10, 100)  # at the limit: nothing may keep burning
    assert fits(120, 0.0, 10, 100)
    assert horizon_hours(aggregate([], 0), NOW) == 12.0


# --------------------------------------------------------------------------- cap and overlap


def test_cap_holds_and_is_flagged() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}), cap=5)
    pods = [pod(f"p{i}", float(i)) for i in range(6)]
    statuses = [per_pod(f"p{i}", 500) for i in range(6)]
    p = plan(c, statuses, {"acc": pods})
    assert [a.pod_id for a in p.actions] == ["p5", "p4", "p3", "p2", "p1"]  # highest burn first
    assert reasons(p) == [("p0", "cap_reached")]
    assert p.cap_reached and p.cap == 5


def test_dry_runs_do_not_count_against_the_cap() -> None:
    c = cfg(
        budget("dry", per="pod", enforce={"at": 100}),
        budget("real", per="pod", enforce={"at": 100, "dry_run": False}),
        cap=1,
    )
    statuses = [per_pod("d1", 500, "dry"), per_pod("d2", 500, "dry"), per_pod("r1", 500, "real")]
    p = plan(c, statuses, {"acc": [pod("d1", 9), pod("d2", 8), pod("r1", 1)]})
    assert sorted((a.pod_id, a.dry_run) for a in p.actions) == [
        ("d1", True),
        ("d2", True),
        ("r1", False),
    ]
    assert not p.cap_reached


def test_cap_zero_refuses_every_real_stop() -> None:
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}), cap=0)
    p = plan(c, [per_pod("p1", 500)], {"acc": [pod("p1")]})
    assert p.actions == () and reasons(p) == [("p1", "cap_reached")] and p.cap_reached


def test_a_pod_wanted_twice_is_stopped_once_real_wins() -> None:
    c = cfg(
        budget("dry", enforce={"at": 100}),
        budget("real", per="pod", enforce={"at": 100, "dry_run": False}),
    )
    statuses = [aggregate(["p1"], 500, name="dry"), per_pod("p1", 500, "real")]
    p = plan(c, statuses, {"acc": [pod("p1")]})
    assert [(a.pod_id, a.budget, a.dry_run) for a in p.actions] == [("p1", "real", False)]


# --------------------------------------------------------------------------- describe


def test_describe_plan_lists_each_decision() -> None:
    c = cfg(
        budget("dry", per="pod", enforce={"at": 100}),
        budget("real", per="pod", except_pods=["p3"], enforce={"at": 100, "dry_run": False}),
        cap=1,
    )
    statuses = [
        per_pod("p1", 500, "dry"),
        per_pod("p2", 500, "real"),
        per_pod("p3", 500, "real"),
        per_pod("p4", 500, "real"),
        per_pod("p5", 500, "real"),
    ]
    pods = [pod("p1"), pod("p2", 2.0), pod("p3"), pod("p4"), pod("p5", status=PodStatus.EXITED)]
    p = plan(c, statuses, {"acc": pods})
    lines = describe_plan(p)
    assert any(line.startswith("would stop pod p1") for line in lines)
    assert any(line.startswith("stop pod p2") for line in lines)
    assert any("pod p3" in line and "protected" in line for line in lines)
    assert any("pod p4" in line and "cap_reached" in line for line in lines)
    assert not any("pod p5" in line for line in lines)
    assert lines[-2:] == [
        "1 pod(s) over budget are not running (nothing to stop)",
        "cap reached: at most 1 stops per cycle",
    ]
    assert describe_plan(EnforcementPlan()) == []


def test_refusal_carries_the_status() -> None:
    st = per_pod("p1", 500)
    c = cfg(budget(per="pod", enforce={"at": 100, "dry_run": False}))
    (r,) = plan(c, [st], {"acc": None}).refusals
    assert isinstance(r, Refusal) and r.status == st and r.instance_key == st.instance_key
