"""Balance and guards end to end (contract "Balance", "Guards: idle and
long-running pods"): the simulator on v2 (idle needs the GPU utilisation only
v2 reports: an idle guard with api.version v1 is a config error) and GraphQL,
a SQLite file, the recording receiver. Uptime runs on both versions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.simulator import FakeClock, Simulator
from tests.pipeline.conftest import (
    T0,
    Daemon,
    H,
    M,
    day_budget,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver
from tests.support.simulator import running_simulator


def run(d: Daemon, start: datetime, end: datetime, step: timedelta = 5 * M,
        before: Any = None) -> dict[datetime, list[str]]:
    """A cycle at every ``step`` from ``start`` to ``end`` inclusive; the ids
    decided at each time. ``before(t)`` runs before the cycle at ``t``."""
    out: dict[datetime, list[str]] = {}
    t = start
    while t <= end:
        d.clock.set(t)
        if before is not None:
            before(t)
        result = d.cycle()
        assert result.delivery.ok, result.delivery.failed
        out[t] = [a.id for a in result.alerts]
        t += step
    return out


def kinds(rx: Receiver, kind: str) -> list[dict[str, Any]]:
    return [p for p in payloads(rx) if p["kind"] == kind]


# ---------------------------------------------------------------------------- balance

# 10 $/h from midnight; the balance starts at 60 USD at midnight.
DRAINING: dict[str, Any] = {
    "pods": [
        {"id": "pod-grow", "name": "train-grow", "gpu_type": "NVIDIA A100 80GB PCIe",
         "cost_per_hr": 10.0, "running": [["2026-11-24T00:00:00Z", None]], "util": 90},
    ],
    "balance": {"start": 60.0},
}


def test_balance_fires_once_per_crossing_and_again_after_a_top_up(
    rx: Receiver, tmp_path: Path
) -> None:
    config = make_config(rx, [day_budget(limit=1000)], balance={"below_usd": [50, 25]})
    with running_simulator(DRAINING, clock=FakeClock(T0)) as sim:
        d = Daemon(sim, config, sqlite_url(tmp_path))
        try:
            first = run(d, T0 + 30 * M, T0 + 4 * H, 30 * M)  # 55 .. 20 USD
            sim.top_up(100)  # 120 USD at 04:00Z: both levels armed again
            d.restart()  # the arming lives in the state, not in memory
            second = run(d, T0 + 4 * H + 30 * M, T0 + 12 * H, 30 * M)  # 115 .. 40 USD
        finally:
            d.close()
    fired = {t: ids for t, ids in {**first, **second}.items() if ids}
    # below 50 at 01:30Z (45 USD), below 25 at 04:00Z (20 USD); after the top-up
    # 120 USD falls under 50 again at 11:30Z (45 USD)
    assert sorted(fired) == [T0 + 1 * H + 30 * M, T0 + 4 * H, T0 + 11 * H + 30 * M]
    levels = [(p["level"]["type"], p["level"]["value"]) for p in kinds(rx, "balance")]
    assert levels == [("below_usd", 50), ("below_usd", 25), ("below_usd", 50)]
    assert [round(p["balance_usd"], 2) for p in kinds(rx, "balance")] == [45.0, 20.0, 45.0]
    ids = [p["id"] for p in kinds(rx, "balance")]
    assert len(set(ids)) == 3 and all(i.startswith("default:balance:below_usd:") for i in ids)


# ---------------------------------------------------------------------------- idle

DEV: dict[str, Any] = {
    "pods": [
        {"id": f"pod-{n}", "name": f"dev-{n}", "gpu_type": "NVIDIA L4", "cost_per_hr": 1.0,
         "running": [["2026-11-24T00:00:00Z", None]], "util": util, "locked": n == "locked"}
        for n, util in (("idle", 0), ("idle2", 1), ("busy", 90), ("locked", 0), ("kept", 0))
    ]
}
IDLE_GUARD: dict[str, Any] = {
    "name": "idle-dev", "idle": {"gpu_util_below": 5, "for": "30m"},
    "match": {"pod_name": "dev-*"}, "except_pods": ["pod-kept"],
}


def idle_daemon(sim: Simulator, rx: Receiver, tmp_path: Path, **guard: Any) -> Daemon:
    config = make_config(rx, [day_budget(limit=1000)], guards=[{**IDLE_GUARD, **guard}],
                         health={"after": "1h"}, enforcement={"max_stops_per_cycle": 1})
    return Daemon(sim, config, sqlite_url(tmp_path))


def idle_id(pod: str, since: datetime) -> str:
    return f"default:idle-dev:pod={pod}:2026-11-24T00:00:00Z:idle:{since:%Y-%m-%dT%H:%M:%SZ}"


def test_idle_fires_once_after_for_and_again_after_a_busy_sample(
    rx: Receiver, tmp_path: Path
) -> None:
    with running_simulator(DEV, clock=FakeClock(T0 + 1 * H)) as sim:
        d = idle_daemon(sim, rx, tmp_path)

        def busy_once(t: datetime) -> None:
            if t == T0 + 2 * H:
                sim.set_gpu_util("pod-idle", 80)  # one busy sample ...
            if t == T0 + 2 * H + 5 * M:
                sim.set_gpu_util("pod-idle", 0)  # ... then idle again

        try:
            fired = run(d, T0 + 1 * H, T0 + 3 * H, before=busy_once)
        finally:
            d.close()
    first, again = T0 + 1 * H, T0 + 2 * H + 5 * M
    assert {t: ids for t, ids in fired.items() if ids} == {
        # not on the first sample nor before `for` has passed (01:25Z)
        T0 + 1 * H + 30 * M: [idle_id("pod-idle", first), idle_id("pod-idle2", first),
                              idle_id("pod-locked", first)],
        T0 + 2 * H + 35 * M: [idle_id("pod-idle", again)],  # re-armed by the busy sample
    }
    idle = kinds(rx, "idle")
    assert {p["pod_id"] for p in idle} == {"pod-idle", "pod-idle2", "pod-locked"}  # never busy/kept
    assert idle[0]["gpu_util"] == 0 and idle[0]["idle_since"] == "2026-11-24T01:00:00Z"


def test_a_gap_in_samples_starts_the_idle_stretch_over(rx: Receiver, tmp_path: Path) -> None:
    with running_simulator(DEV, clock=FakeClock(T0 + 1 * H)) as sim:
        d = idle_daemon(sim, rx, tmp_path, match={"pod_name": "dev-idle"})

        def outage(t: datetime) -> None:
            if t == T0 + 1 * H + 10 * M:  # GET /pods fails 01:10Z .. 01:25Z: four polls
                sim.fail("/v2/pods", status=503, times=10_000, method="GET")
            if t == T0 + 1 * H + 30 * M:
                sim.clear_faults()

        try:
            fired = run(d, T0 + 1 * H, T0 + 2 * H + 5 * M, before=outage)
        finally:
            d.close()
    # 01:00Z and 01:30Z are `for` apart, but nothing is known in between: the
    # stretch starts again at 01:30Z and is idle for 30 minutes at 02:00Z
    assert {t: ids for t, ids in fired.items() if ids} == {
        T0 + 2 * H: [idle_id("pod-idle", T0 + 1 * H + 30 * M)]}


def test_an_idle_guard_that_stops_goes_through_the_enforcement_checks(
    rx: Receiver, tmp_path: Path
) -> None:
    with running_simulator(DEV, clock=FakeClock(T0 + 1 * H)) as sim:
        d = idle_daemon(sim, rx, tmp_path, stop={"dry_run": False})
        try:
            run(d, T0 + 1 * H, T0 + 1 * H + 25 * M)  # samples 5 minutes apart
            d.clock.set(T0 + 1 * H + 30 * M)
            result = d.cycle()
            audit = d.store.audit()
            capped_status = {p: sim.pod(p).desired_status for p in ("pod-idle", "pod-idle2")}
            d.clock.set(T0 + 1 * H + 35 * M)
            later = d.cycle()  # a fresh cap: the pod held back goes now
        finally:
            d.close()
    assert sorted(capped_status.values()) == ["EXITED", "RUNNING"]
    assert sim.pod("pod-idle").desired_status == sim.pod("pod-idle2").desired_status == "EXITED"
    assert any(line.startswith("stopped pod") for line in later.enforcement_log)
    outcomes = {(p["pod_id"], p["action"], p.get("reason")) for p in kinds(rx, "enforcement")
                if p["fired_at"] == "2026-11-24T01:30:00Z"}
    stopped = {pod for pod, action, _ in outcomes if action == "stopped"}
    assert len(stopped) == 1 and stopped < {"pod-idle", "pod-idle2"}  # the cap: one per cycle
    (capped,) = {"pod-idle", "pod-idle2"} - stopped
    assert outcomes == {
        (next(iter(stopped)), "stopped", ""),
        (capped, "refused", "cap_reached"),
        ("pod-locked", "refused", "locked"),
    }, outcomes
    assert sim.pod("pod-locked").desired_status == "RUNNING"
    assert sim.pod("pod-kept").desired_status == "RUNNING"  # never watched
    posts = [r.path for r in sim.requests if r.method == "POST"]
    assert posts == [f"/v2/pods/{next(iter(stopped))}/action", f"/v2/pods/{capped}/action"]
    assert {r["event"] for r in audit} == {"stop", "enforce.refused"}
    assert any(r["event"] == "stop" and r["result"] == "stopped" for r in audit)
    assert result.enforcement_log


# ---------------------------------------------------------------------------- uptime


def test_uptime_fires_once_per_run(rx: Receiver, tmp_path: Path, version: str) -> None:
    # shared by both versions: the run start is v2's startedAt, v1's lastStartedAt
    guard = {"name": "ttl", "uptime_over": "2h", "match": {"pod_name": "dev-busy"}}
    config = make_config(rx, [day_budget(limit=1000)], guards=[guard], version=version)
    with running_simulator(DEV, clock=FakeClock(T0 + 1 * H)) as sim:
        d = Daemon(sim, config, sqlite_url(tmp_path))

        def restart_pod(t: datetime) -> None:
            if t == T0 + 3 * H:
                sim.stop_pod("pod-busy")
                sim.start_pod("pod-busy")  # a new run from 03:00Z

        try:
            fired = run(d, T0 + 1 * H, T0 + 5 * H + 30 * M, 30 * M, before=restart_pod)
        finally:
            d.close()
    # "longer than 2h": not at exactly 2 h, at the first poll after
    assert {t: ids for t, ids in fired.items() if ids} == {
        T0 + 2 * H + 30 * M: ["default:ttl:pod=pod-busy:2026-11-24T00:00:00Z:uptime"],
        T0 + 5 * H + 30 * M: ["default:ttl:pod=pod-busy:2026-11-24T03:00:00Z:uptime"],
    }
    assert [p["uptime_hours"] for p in kinds(rx, "uptime")] == [2.5, 2.5]


def test_runway_fires_once_for_the_most_urgent_level(rx: Receiver, tmp_path: Path) -> None:
    # 10 $/h: 60 USD is 6 h of runway at midnight, 4 h at 02:00Z, 1 h at 05:00Z
    config = make_config(rx, [day_budget(limit=1000)], balance={"runway_below": ["4h", "2h"]})
    with running_simulator(DRAINING, clock=FakeClock(T0)) as sim:
        d = Daemon(sim, config, sqlite_url(tmp_path))
        try:
            d.clock.set(T0 + 30 * M)
            assert d.cycle().alerts == []  # 5.5 h
            d.clock.set(T0 + 4 * H + 30 * M)  # 1.5 h: both levels crossed at once
            (alert,) = d.cycle().alerts
            for minutes in (35, 40, 45):
                d.clock.set(T0 + 4 * H + minutes * M)
                assert d.cycle().alerts == []
        finally:
            d.close()
    (p,) = kinds(rx, "balance")
    assert p["id"] == alert.id
    assert p["level"] == {"type": "runway_below", "value": "2h"}
    assert p["runway_hours"] == 1.5 and p["spend_per_hr_usd"] == 10.0


def test_a_dry_run_announces_idle_and_balance_without_using_them_up(
    rx: Receiver, tmp_path: Path
) -> None:
    guard = {**IDLE_GUARD, "match": {"pod_name": "dev-idle"}}
    config = make_config(rx, [day_budget(limit=1000)], guards=[guard],
                         balance={"below_usd": [100]}, notify=("hook",))
    with running_simulator(DEV, clock=FakeClock(T0 + 1 * H)) as sim:
        sim.top_up(-960)  # 40 USD left: under 100 from the start
        d = Daemon(sim, config, sqlite_url(tmp_path))
        try:
            for minutes in range(0, 30, 5):
                d.clock.set(T0 + 1 * H + minutes * M)
                d.cycle(dry_run=True)  # nothing stored: the balance stays armed
            book = d.store.get_meta("guards:default:idle")
            assert book in (None, "")
            for minutes in range(0, 30, 5):  # real samples from 01:00Z
                d.clock.set(T0 + 1 * H + minutes * M)
                d.cycle()
            assert kinds(rx, "balance") and not kinds(rx, "idle")
            book = d.store.get_meta("guards:default:idle")
            d.clock.set(T0 + 1 * H + 30 * M)
            dry = d.cycle(dry_run=True)
            assert [a.kind for a in dry.alerts] == ["idle"]  # what would go out
            assert d.store.get_meta("guards:default:idle") == book  # not advanced
            assert [a.kind for a in d.cycle().alerts] == ["idle"]  # still due for real
        finally:
            d.close()
    assert [p["kind"] for p in payloads(rx)] == ["balance", "idle"]
