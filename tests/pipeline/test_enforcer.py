"""Enforcement end to end: the RunPod simulator over loopback, a real SQLite file.

Statuses come from the real evaluator fed with the simulator's billing (through
the pipeline's fetch stage); the plan from ``plan_enforcement``; the ``Enforcer``
stops pods through the v1 or v2 adapter (each test runs on both).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.adapters.store import SqlStore, open_store
from daemon.config.models import Config
from daemon.core.enforce import EnforcementPlan, plan_enforcement
from daemon.core.evaluate import evaluate
from daemon.core.model import InstanceStatus, Pod
from daemon.core.ports import RunPodApi
from daemon.core.windows import window_at
from daemon.pipeline.enforcer import (
    MAX_ATTEMPTS,
    EnforcementResult,
    Enforcer,
    attempt_key,
    audit_line,
    describe_results,
)
from daemon.pipeline.fetch import fetch_billing, fetch_pods, load_spend, needed_windows
from daemon.simulator import FakeClock, Simulator
from tests.pipeline.conftest import VERSIONS
from tests.support.simulator import FULL_SCENARIO, PINNED_NOW, fast_api, running_simulator

ACC = "default"
RUNAWAY = "pod-h100-runaway"  # 5.98 $/h, running since yesterday 22:30Z
TRAIN = "pod-a100-train"  # 1.64 $/h, running since 08:00Z today
LOCKED = "pod-l4-locked"  # FULL_SCENARIO: locked, 0.43 $/h, running since 13:00Z
#: the stop call on the wire (contract "RunPod API versions": v2 stops through the
#: action endpoint with {"action": "stop"}, v1 through /pods/{podId}/stop)
STOP_PATH = {"v1": "/v1/pods/{}/stop", "v2": "/v2/pods/{}/action"}

# At PINNED_NOW (14:05:12Z) today's spend: runaway ~84.2 USD, train ~10.0 USD.


def make_config(*budgets: dict[str, Any], cap: int = 5, version: str = "v2") -> Config:
    return Config.model_validate(
        {
            "version": 1,
            "api": {"version": version},
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "budgets": list(budgets),
            "enforcement": {"max_stops_per_cycle": cap},
        }
    )


def per_pod(limit: float = 50.0, dry_run: bool = False, **kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "name": "any-pod-daily",
        "per": "pod",
        "window": "day",
        "limit": limit,
        "enforce": {"at": 100, "dry_run": dry_run},
    }
    b.update(kw)
    return b


class Env:
    """One simulated account, its adapter (v1 or v2), a SQLite store and an enforcer.

    Statuses come from the pipeline's own fetch stage (billing into the store,
    pods into the registry) and the real evaluator."""

    def __init__(self, sim: Simulator, store: SqlStore, config: Config) -> None:
        self.sim = sim
        self.clock: FakeClock = sim.clock  # type: ignore[assignment]
        self.version = config.api.version
        self.api: RunPodApi = fast_api(sim, self.version)
        self.store = store
        self.config = config
        self.events: list[tuple[str, str]] = []
        self.enforcer = Enforcer(
            self.api, store, on_event=lambda a, r: self.events.append((a, r))
        )

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def statuses(self) -> list[InstanceStatus]:
        now = self.now
        apis = {ACC: self.api}
        needed = needed_windows(self.config, now)
        fetched = fetch_billing(self.config, apis, self.store, needed, now)
        assert not fetched.errors, fetched.errors
        pods = fetch_pods(self.config, apis, self.store, now).pods
        data = load_spend(self.config, self.store, needed, now)
        return evaluate(self.config, data, pods, now).statuses

    def plan(self, *, fresh: bool = True, pods: list[Pod] | str | None = "live") -> EnforcementPlan:
        live = self.api.list_pods() if pods == "live" else pods
        assert not isinstance(live, str)
        return plan_enforcement(self.config, self.statuses(), {ACC: live}, fresh, self.now)

    def execute(self, plan: EnforcementPlan) -> list[EnforcementResult]:
        """Execute and, as every pipeline cycle does, record the announcements
        (an unrecorded stop is announced late by the next execute)."""
        results = self.enforcer.execute(plan, self.config, self.now)
        self.store.enqueue(self.enforcer.alerts(results, self.config, self.now), self.now)
        return results

    def cycle(self, **kw: Any) -> tuple[list[EnforcementResult], list[Any]]:
        """plan + execute + alerts + enqueue, as the pipeline does."""
        results = self.execute(self.plan(**kw))
        return results, self.enforcer.alerts(results, self.config, self.now)

    def status_of(self, pod_id: str) -> str:
        return self.sim.pod(pod_id).desired_status

    def stop_path(self, pod_id: str) -> str:
        return STOP_PATH[self.version].format(pod_id)

    def stop_calls(self, pod_id: str | None = None) -> int:
        prefix, _, suffix = STOP_PATH[self.version].partition("{}")
        return sum(
            1
            for r in self.sim.requests
            if r.method == "POST"
            and r.path.startswith(prefix)
            and r.path.endswith(suffix)
            and (pod_id is None or r.path == self.stop_path(pod_id))
        )

    def spend_today(self, pod_id: str) -> float:
        start = window_at("day", self.now, self.config.zone).start
        end = window_at("hour", self.now, self.config.zone).end
        recs = self.api.billing("pods", bucket="hour", start=start, end=end)
        return round(sum(r.amount for r in recs if r.resource == pod_id), 6)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture(params=VERSIONS)
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """SMALL_SCENARIO at PINNED_NOW; ``sim.version`` is the API the test speaks."""
    with running_simulator() as s:
        s.version = request.param  # type: ignore[attr-defined]
        yield s


def env(sim: Simulator, store: SqlStore, *budgets: dict[str, Any], cap: int = 5) -> Env:
    version = getattr(sim, "version", "v2")
    return Env(sim, store, make_config(*budgets, cap=cap, version=version))


def only(results: list[EnforcementResult], **kw: Any) -> list[EnforcementResult]:
    return [r for r in results if all(getattr(r, k) == v for k, v in kw.items())]


# --------------------------------------------------------------------------- stops


def test_runaway_pod_is_stopped_and_stops_accruing(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod(limit=50.0))
    with capture_logs() as logs:
        results, alerts = e.cycle()

    assert [(r.action, r.pod_id) for r in results] == [("stopped", RUNAWAY)]
    assert e.status_of(RUNAWAY) == "EXITED"
    assert e.status_of(TRAIN) == "RUNNING"  # 10 USD of 50: not due
    assert e.stop_calls() == 1
    assert e.events == [("stopped", "none")]  # a metric label is never empty
    ev = [x for x in logs if x["event"] == "enforce.stopped"]
    assert len(ev) == 1 and ev[0]["pod_id"] == RUNAWAY and ev[0]["budget"] == "any-pod-daily"
    assert ev[0]["account"] == ACC

    (alert,) = alerts
    key = results[0].instance_key
    assert alert.id == f"{key}:enforce:{RUNAWAY}:stopped"
    assert alert.kind == "enforcement" and alert.notifiers == ("ops",)
    p = alert.payload
    for k in ("id", "kind", "account", "budget", "group", "window", "spend_usd", "limit_usd"):
        assert k in p
    assert p["kind"] == "enforcement" and p["id"] == alert.id and p["fired_at"]
    assert (p["action"], p["pod_id"], p["pod_name"], p["dry_run"]) == (
        "stopped",
        RUNAWAY,
        "train-sweep",
        False,
    )
    assert p["percent"] > 100

    rows = [r for r in store.audit() if r["event"] == "stop"]
    assert [(r["instance_id"], r["pod_id"], r["result"]) for r in rows] == [
        (key, RUNAWAY, "stopped")
    ]
    assert "stopped" in audit_line(rows[0])

    before = e.spend_today(RUNAWAY)
    e.clock.advance(timedelta(hours=2))
    assert e.spend_today(RUNAWAY) == before  # flat: it no longer accrues
    assert e.spend_today(TRAIN) > 10.0 + 3.0  # the other pod still burns


def test_aggregate_stops_highest_burn_until_it_fits(sim: Simulator, store: SqlStore) -> None:
    # account-wide: ~94.2 of 150 (62.8% >= 60). Burn 7.62 $/h x ~9.9 h left
    # overshoots; without the runaway, 1.64 $/h x 9.9 h ~ 16.3 -> ~110.5 fits.
    b = {"name": "all", "window": "day", "limit": 150, "enforce": {"at": 60, "dry_run": False}}
    e = env(sim, store, b)
    results, alerts = e.cycle()
    assert [(r.action, r.pod_id) for r in results] == [("stopped", RUNAWAY)]
    assert e.status_of(RUNAWAY) == "EXITED" and e.status_of(TRAIN) == "RUNNING"
    assert [a.payload["group"]["pod_id"] for a in alerts] == [None]  # the instance is `all`


def test_protected_pod_is_not_stopped(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod(limit=5.0, except_pods=[RUNAWAY]))
    results, _ = e.cycle()
    assert [(r.action, r.pod_id) for r in results] == [("stopped", TRAIN)]
    assert e.status_of(RUNAWAY) == "RUNNING"
    assert e.stop_calls(RUNAWAY) == 0


def test_protected_pod_in_an_aggregate_scope_is_refused_and_told(
    sim: Simulator, store: SqlStore
) -> None:
    # evaluate leaves except_pods (ids and names) out of scope; a status that
    # lists one anyway (an evaluation from before the config was edited) must
    # still never be stopped: the plan protects by id and by name
    e = env(sim, store, per_pod(limit=5.0))
    statuses = [s for s in e.statuses() if s.group.pod_id == RUNAWAY]
    assert statuses
    e.config = make_config(per_pod(limit=5.0, except_pods=["train-sweep"]), version=e.version)
    assert not [s for s in e.statuses() if s.group.pod_id == RUNAWAY]
    plan = plan_enforcement(e.config, statuses, {ACC: e.api.list_pods()}, True, e.now)
    results = e.execute(plan)
    assert [(r.action, r.reason, r.pod_id) for r in results] == [("refused", "protected", RUNAWAY)]
    assert e.status_of(RUNAWAY) == "RUNNING" and e.stop_calls() == 0
    (alert,) = e.enforcer.alerts(results, e.config, e.now)
    assert alert.id.endswith(f":enforce:{RUNAWAY}:refused:protected")
    assert alert.payload["reason"] == "protected"
    assert [r["event"] for r in store.audit()] == ["enforce.refused"]


def test_dry_run_stops_nothing_but_says_would_stop(sim: Simulator, store: SqlStore) -> None:
    b = per_pod(limit=50.0)
    del b["enforce"]["dry_run"]  # the default is a dry run
    e = env(sim, store, b)
    results, alerts = e.cycle()
    assert [(r.action, r.pod_id, r.dry_run) for r in results] == [("would_stop", RUNAWAY, True)]
    assert e.status_of(RUNAWAY) == "RUNNING" and e.stop_calls() == 0
    assert [a.id.rsplit(":", 1)[-1] for a in alerts] == ["would_stop"]
    assert alerts[0].payload["dry_run"] is True
    assert [r["event"] for r in store.audit()] == ["enforce.would_stop"]
    assert e.events == [("would_stop", "dry_run")]

    before = e.spend_today(RUNAWAY)
    e.clock.advance(timedelta(minutes=30))
    assert e.spend_today(RUNAWAY) == pytest.approx(before + 5.98 / 2, abs=0.01)

    # next cycle: the same dry run again is not re-announced, re-audited or re-counted
    results, alerts = e.cycle()
    assert [(r.action, r.repeat) for r in results] == [("would_stop", True)]
    assert alerts == []
    assert len(store.audit()) == 1 and e.events == [("would_stop", "dry_run")]


# --------------------------------------------------------------------------- failures


def test_stop_500_is_retried_by_the_client_then_stopped(sim: Simulator, store: SqlStore) -> None:
    sim.fail(STOP_PATH[sim.version].format(RUNAWAY), status=500, times=1)
    e = env(sim, store, per_pod())
    results, _ = e.cycle()
    assert [(r.action, r.pod_id) for r in results] == [("stopped", RUNAWAY)]
    assert e.stop_calls(RUNAWAY) == 2
    assert e.status_of(RUNAWAY) == "EXITED"


def test_stop_always_failing_is_reported_then_retried_next_cycle(
    sim: Simulator, store: SqlStore
) -> None:
    sim.fail(STOP_PATH[sim.version].format(RUNAWAY), status=500, times=1000)
    e = env(sim, store, per_pod())
    with capture_logs() as logs:
        results, alerts = e.cycle()
    (r,) = results
    assert (r.action, r.reason, r.attempt) == ("failed", "server", 1)
    assert r.error and "500" in r.error
    assert e.stop_calls(RUNAWAY) > 1  # the client retried before giving up
    assert e.status_of(RUNAWAY) == "RUNNING"
    events = [x["event"] for x in logs if x["event"].startswith("enforce.")]
    assert events == ["enforce.stop_failed"]
    assert [a.id.rsplit(":", 1)[-1] for a in alerts] == ["failed"]
    assert e.events == [("failed", "server")]
    (row,) = [x for x in store.audit() if x["event"] == "stop"]
    assert row["result"] == "failed" and "500" in row["detail"]["error"]

    # next cycle the pod still runs: one more attempt, under its own intent
    sim.clear_faults()
    e.clock.advance(timedelta(minutes=5))
    results, _ = e.cycle()
    assert [(r.action, r.attempt) for r in results] == [("stopped", 2)]
    assert e.status_of(RUNAWAY) == "EXITED"
    rows = {(x["instance_id"], x["result"]) for x in store.audit() if x["event"] == "stop"}
    key = results[0].instance_key
    assert rows == {(key, "failed"), (attempt_key(key, 2), "stopped")}


def test_failed_stops_give_up_after_max_attempts(sim: Simulator, store: SqlStore) -> None:
    sim.fail(STOP_PATH[sim.version].format(RUNAWAY), status=503, times=100_000)
    e = env(sim, store, per_pod())
    e.enforcer.api = fast_api(sim, e.version, deadline=0.2, max_attempts=2)  # keep it quick
    for n in range(1, MAX_ATTEMPTS + 1):
        results, _ = e.cycle()
        assert [(r.action, r.attempt) for r in results] == [("failed", n)]
    calls = e.stop_calls()
    results, alerts = e.cycle()
    assert [(r.action, r.reason) for r in results] == [("refused", "retries_exhausted")]
    assert e.stop_calls() == calls and e.status_of(RUNAWAY) == "RUNNING"
    assert [a.id.rsplit(":", 1)[-1] for a in alerts] == ["retries_exhausted"]


def test_stale_data_blocks_stops(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod())
    results, alerts = e.cycle(fresh=False)
    assert [(r.action, r.reason, r.pod_id) for r in results] == [("refused", "stale_data", None)]
    assert e.stop_calls() == 0 and e.status_of(RUNAWAY) == "RUNNING"
    assert [a.id.split(":enforce:")[1] for a in alerts] == ["-:refused:stale_data"]


def test_unavailable_pod_list_blocks_stops(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod())
    results, _ = e.cycle(pods=None)
    assert [(r.action, r.reason) for r in results] == [("refused", "pods_unavailable")]
    assert e.stop_calls() == 0


def test_recheck_failure_refuses_the_stop(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod())
    plan = e.plan()
    sim.fail(f"/{e.version}/pods", status=403, method="GET")  # the re-read right before the stop
    results = e.execute(plan)
    assert [(r.action, r.reason) for r in results] == [("refused", "pods_unavailable")]
    assert e.stop_calls() == 0 and e.status_of(RUNAWAY) == "RUNNING"


def test_pod_stopped_meanwhile_is_not_stopped_again(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod())
    plan = e.plan()
    sim.stop_pod(RUNAWAY)  # someone stopped it between the plan and the stop
    results = e.execute(plan)
    assert [(r.action, r.reason) for r in results] == [("refused", "not_running")]
    assert e.stop_calls() == 0
    assert e.enforcer.alerts(results, e.config, e.now) == []  # the normal state: quiet
    assert describe_results(results) == []
    assert store.audit() == [] and e.events == []


# --------------------------------------------------------------------------- cap


SIX = {
    "pods": [
        {
            "id": f"pod-{i}",
            "name": f"runaway-{i}",
            "gpu_type": "NVIDIA H100 80GB HBM3",
            "gpu_count": 1,
            "cost_per_hr": float(i),
            "running": [["2026-11-24T00:00:00Z", None]],
        }
        for i in range(1, 7)
    ]
}


def test_cap_holds(store: SqlStore) -> None:
    with running_simulator(SIX) as sim:
        e = env(sim, store, per_pod(limit=1.0), cap=5)
        plan = e.plan()
        assert plan.cap_reached
        results = e.execute(plan)
        alerts = e.enforcer.alerts(results, e.config, e.now)
        assert sorted(r.pod_id or "" for r in only(results, action="stopped")) == [
            f"pod-{i}" for i in range(2, 7)
        ]
        assert [(r.pod_id, r.reason) for r in only(results, action="refused")] == [
            ("pod-1", "cap_reached")
        ]
        assert e.stop_calls() == 5
        assert [p.id for p in sim.scenario.pods if p.desired_status == "RUNNING"] == ["pod-1"]
        assert any(a.id.endswith(":enforce:pod-1:refused:cap_reached") for a in alerts)
        # next cycle the cap is fresh: the last one goes
        e.clock.advance(timedelta(minutes=5))
        results, _ = e.cycle()
        assert [(r.action, r.pod_id) for r in only(results, action="stopped")] == [
            ("stopped", "pod-1")
        ]
        # the five stopped before are simply not running any more: quiet, not counted
        assert {r.reason for r in only(results, action="refused")} == {"not_running"}
        assert e.events.count(("refused", "not_running")) == 0


# --------------------------------------------------------------------------- never twice


def test_second_execute_of_the_same_plan_does_not_stop_again(
    sim: Simulator, store: SqlStore
) -> None:
    e = env(sim, store, per_pod())
    plan = e.plan()
    assert [r.action for r in e.execute(plan)] == ["stopped"]
    sim.start_pod(RUNAWAY)  # someone starts it again: the intent still holds
    results = e.execute(plan)
    assert [(r.action, r.reason) for r in results] == [("refused", "already_stopped")]
    assert e.stop_calls() == 1 and e.status_of(RUNAWAY) == "RUNNING"


def test_crash_between_intent_and_result_does_not_stop_blindly(
    sim: Simulator, store: SqlStore
) -> None:
    e = env(sim, store, per_pod())
    plan = e.plan()
    (action,) = plan.actions
    # a previous run wrote its intent and died before the result
    assert store.record_intent(action.instance_key, RUNAWAY, PINNED_NOW, {"attempt": 1})
    with capture_logs() as logs:
        results = e.execute(plan)
    assert [(r.action, r.reason) for r in results] == [("refused", "unknown_after_crash")]
    assert e.stop_calls() == 0 and e.status_of(RUNAWAY) == "RUNNING"
    assert [x["log_level"] for x in logs if x["event"] == "enforce.refused"] == ["warning"]
    (alert,) = e.enforcer.alerts(results, e.config, e.now)
    assert alert.id.endswith(f":enforce:{RUNAWAY}:refused:unknown_after_crash")
    (row,) = [x for x in store.audit() if x["event"] == "stop"]
    assert row["result"] is None
    assert "intent only" in audit_line(row)


def test_describe_lines(sim: Simulator, store: SqlStore) -> None:
    e = env(sim, store, per_pod(dry_run=True))
    plan = e.plan()
    assert [line.split(" [")[0] for line in e.enforcer.describe(plan)] == [
        f"would stop pod {RUNAWAY} (train-sweep, $5.98/h)"
    ]
    (r,) = e.execute(plan)
    assert r.describe().startswith(f"would stop pod {RUNAWAY} (train-sweep)")


def test_a_stop_is_queued_with_its_result_so_a_crash_cannot_lose_its_announcement(
    sim: Simulator, store: SqlStore
) -> None:
    e = env(sim, store, per_pod())
    # the cycle that stopped the pod dies right after the executor returns
    first = e.enforcer.execute(e.plan(), e.config, e.now)
    assert [r.action for r in first] == ["stopped"]
    ledger = {x.id for x in store.ledger(ACC, e.now - timedelta(days=1))}
    assert first[0].alert_id in ledger  # queued with the result, in one transaction
    assert store.pending_count() == 1
    e.clock.advance(timedelta(minutes=5))
    results, _ = e.cycle()
    assert [r.reason for r in results] == ["not_running"]  # nothing to announce again
    assert e.stop_calls() == 1


def test_a_stop_recorded_without_its_announcement_is_announced_once_later(
    sim: Simulator, store: SqlStore
) -> None:
    # a result row without its alert (written before results and announcements
    # shared a transaction): the next cycle announces the stop, once
    e = env(sim, store, per_pod())
    [action] = e.plan().actions
    store.record_intent(action.instance_key, action.pod_id, e.now, {"account": ACC})
    sim.stop_pod(action.pod_id)
    store.record_result(action.instance_key, action.pod_id, e.now, "stopped", {"attempt": 1})
    e.clock.advance(timedelta(minutes=5))
    results, alerts = e.cycle()
    assert [(r.action, r.late) for r in results] == [("stopped", True)]
    assert [a.id.rsplit(":", 2)[-2:] for a in alerts] == [[RUNAWAY, "stopped"]]
    assert e.stop_calls() == 0  # announced, never stopped by us again
    e.clock.advance(timedelta(minutes=5))
    results, alerts = e.cycle()
    assert alerts == [] and [r.reason for r in results] == ["not_running"]


# --------------------------------------------------------------------------- v2 only


@pytest.fixture
def sim_v2() -> Iterator[Simulator]:
    """FULL_SCENARIO (a locked pod among others) on v2."""
    with running_simulator(FULL_SCENARIO) as s:
        s.version = "v2"  # type: ignore[attr-defined]
        yield s


def test_v2_stops_through_the_action_endpoint(sim_v2: Simulator, store: SqlStore) -> None:
    # contract "RunPod API versions": v2 stops a pod with POST /pods/{id}/action
    e = env(sim_v2, store, per_pod(limit=50.0, match={"pod_id": [RUNAWAY]}))
    results, _ = e.cycle()
    assert [(r.action, r.pod_id) for r in results] == [("stopped", RUNAWAY)]
    posts = [r.path for r in sim_v2.requests if r.method == "POST"]
    assert posts == [f"/v2/pods/{RUNAWAY}/action"]
    assert e.status_of(RUNAWAY) == "EXITED"


def test_a_locked_pod_is_refused_locked_and_told_once(
    sim_v2: Simulator, store: SqlStore
) -> None:
    # contract: a locked pod is never stopped; the refusal is audited and
    # notified once per (budget instance, pod, reason), not on every cycle
    e = env(sim_v2, store, per_pod(limit=1.0, match={"pod_id": [LOCKED]}))
    results, alerts = e.cycle()
    assert [(r.action, r.reason, r.pod_id) for r in results] == [("refused", "locked", LOCKED)]
    assert [a.id.split(":enforce:")[1] for a in alerts] == [f"{LOCKED}:refused:locked"]
    assert e.stop_calls() == 0 and e.status_of(LOCKED) == "RUNNING"
    assert [(r["event"], r["detail"]["reason"]) for r in store.audit()] == [
        ("enforce.refused", "locked")]
    for _ in range(2):
        e.clock.advance(timedelta(minutes=5))
        results, alerts = e.cycle()
        assert [(r.reason, r.repeat) for r in results] == [("locked", True)]
        assert alerts == []
    assert e.stop_calls() == 0 and len(store.audit()) == 1


def test_a_409_conflict_is_not_retried(sim_v2: Simulator, store: SqlStore) -> None:
    # v2 answers 409 when the action is not valid for the pod now: retrying
    # cannot help, so the adapter does not and the enforcer does not next cycle
    sim_v2.fail(f"/v2/pods/{RUNAWAY}/action", status=409, times=100)
    e = env(sim_v2, store, per_pod(limit=50.0, match={"pod_id": [RUNAWAY]}))
    results, alerts = e.cycle()
    assert [(r.action, r.reason) for r in results] == [("refused", "not_stoppable")]
    assert e.stop_calls(RUNAWAY) == 1
    assert [a.id.rsplit(":", 2)[-2:] for a in alerts] == [["refused", "not_stoppable"]]
    assert e.status_of(RUNAWAY) == "RUNNING"
    e.clock.advance(timedelta(minutes=5))
    results, alerts = e.cycle()
    # the same refusal, already told: not "already_stopped" (it never was) nor news
    assert [(r.action, r.reason, r.repeat) for r in results] == [
        ("refused", "not_stoppable", True)]
    assert alerts == []
    assert e.stop_calls(RUNAWAY) == 1  # never asked again in this window
