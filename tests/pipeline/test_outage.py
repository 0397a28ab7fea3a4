"""Bad data from RunPod: an outage is told once (the health notice), not as
a stream of refusals; an absurd amount is refused and costs no threshold.

Scenario GROWING (see conftest): one pod at 10 $/h from midnight UTC.
"""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    DAY,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    hook_ids,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver


def test_an_outage_is_told_by_the_health_notice_not_by_stale_data_refusals(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    budget = day_budget("pod-daily", per="pod", thresholds=[100], enforce={"at": 50})
    config = make_config(rx, [budget], health={"after": "10m"}, version=version)
    d = Daemon(growing, config, sqlite_url(tmp_path))
    pod_key = f"default:pod-daily:pod=pod-grow:{DAY}"
    try:
        d.clock.set(T0 + 5 * H + 30 * M)  # 55 USD: over enforce.at (a dry run by default)
        assert [a.id for a in d.cycle().alerts] == [f"{pod_key}:enforce:pod-grow:would_stop"]

        growing.fail(d.path("/billing"), status=503, times=1_000_000)
        outage = T0 + 5 * H + 35 * M
        per_poll = []
        for minutes in (0, 5, 10, 15):
            d.clock.set(outage + minutes * M)
            result = d.cycle()
            assert result.fetch_errors
            # the plan refuses on stale data (audited), but that is not news
            assert any("stale_data" in line for line in result.enforcement_log) or minutes
            per_poll.append([a.id for a in result.alerts])
    finally:
        d.close()
    assert per_poll == [[], [], [f"default:health:unusable:{outage:%Y-%m-%dT%H:%M:%SZ}"], []]
    assert not [i for i in hook_ids(rx) if "stale_data" in i]
    assert [p["kind"] for p in payloads(rx)] == ["enforcement", "health"]


def test_an_absurd_amount_is_refused_and_the_real_alert_still_fires(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    d = Daemon(growing, make_config(rx, [day_budget()], version=version), sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 4 * H)
        assert d.cycle().alerts == []  # 40 USD

        # one answer with 1e308 USD in a record: every threshold would "cross"
        growing.fail(d.path("/billing"), kind="bad_record", record="huge_amount", times=1)
        d.clock.set(T0 + 5 * H + 30 * M)
        with capture_logs() as logs:
            result = d.cycle()
        (err,) = result.fetch_errors.values()
        assert err.reason == "bad_record"
        assert result.alerts == [] and rx.requests == []
        failed = [x for x in logs if x["event"] == "billing.fetch_failed"]
        assert len(failed) == 1 and "Traceback" not in failed[0]["error"]
        assert all(s.spend < 1000 for s in result.evaluation.statuses)

        d.clock.set(T0 + 5 * H + 35 * M)
        result = d.cycle()
        assert result.billing_ok
    finally:
        d.close()
    # the 50 % alert of the day, with the real spend: nothing was used up
    assert hook_ids(rx) == [f"default:daily:all:{DAY}:threshold:50"]
    assert round(payloads(rx)[0]["spend_usd"], 2) == 55.83


def test_a_pods_outage_is_told_by_the_health_notice_not_by_refusals(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    budget = day_budget("pod-daily", per="pod", thresholds=[100],
                        enforce={"at": 50, "dry_run": False})
    config = make_config(rx, [budget], health={"after": "10m"}, version=version)
    d = Daemon(growing, config, sqlite_url(tmp_path))
    outage = T0 + 5 * H + 30 * M  # 55 USD: over enforce.at, but GET /pods fails
    growing.fail(d.path("/pods"), status=503, times=1_000_000, method="GET")
    try:
        per_poll = []
        for minutes in (0, 5, 10, 15):
            d.clock.set(outage + minutes * M)
            result = d.cycle()
            assert result.billing_ok and result.pod_errors
            per_poll.append([a.id for a in result.alerts])
    finally:
        d.close()
    # the stop is refused (pods_unavailable, audited) but only the outage is news
    assert per_poll == [[], [], [f"default:health:pods:unusable:{outage:%Y-%m-%dT%H:%M:%SZ}"], []]
    assert growing.pod("pod-grow").desired_status == "RUNNING"


def test_a_pods_outage_is_not_called_over_while_billing_fails(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    # GET /pods is not tried when billing failed: that is no recovery of it
    config = make_config(rx, [day_budget()], health={"after": "10m"}, version=version)
    d = Daemon(growing, config, sqlite_url(tmp_path))
    start = T0 + 1 * H
    since = f"{start:%Y-%m-%dT%H:%M:%SZ}"
    growing.fail(d.path("/pods"), status=503, times=1_000_000, method="GET")
    try:
        decided = []
        for minutes in (0, 5, 11, 15, 20, 25, 35):
            if minutes == 20:
                growing.fail(d.path("/billing"), status=503, times=1_000_000)
            d.clock.set(start + minutes * M)
            decided += [a.id for a in d.cycle().alerts]
        growing.clear_faults()
        d.clock.set(start + 40 * M)
        decided += [a.id for a in d.cycle().alerts]
    finally:
        d.close()
    billing = f"{start + 20 * M:%Y-%m-%dT%H:%M:%SZ}"
    assert decided[:2] == [
        f"default:health:pods:unusable:{since}",
        f"default:health:unusable:{billing}",  # billing, 10 minutes into its outage
    ]
    # the pods outage ends only once GET /pods answers again (the last cycle)
    assert sorted(decided[2:]) == sorted([
        f"default:health:pods:recovered:{since}", f"default:health:recovered:{billing}"])


def test_one_accounts_billing_outage_does_not_block_the_others_enforcement(
    rx: Receiver, tmp_path: Path, version: str
) -> None:
    from daemon.pipeline.cycle import run_cycle
    from daemon.simulator import FakeClock
    from tests.pipeline.conftest import GROWING
    from tests.support.simulator import fast_api, running_simulator

    clock = FakeClock(T0 + 5 * H + 30 * M)  # 55 USD on each account's pod
    budget = day_budget("pod-daily", per="pod", thresholds=[100],
                        enforce={"at": 50, "dry_run": False})
    config = make_config(rx, [budget], version=version, health={"after": "1h"},
                         accounts=[{"name": "good"}, {"name": "bad"}])
    other = {"pods": [dict(GROWING["pods"][0], id="pod-bad", name="train-bad")]}
    with running_simulator(GROWING, clock=clock) as good, \
            running_simulator(other, clock=clock) as bad:
        d = Daemon(good, config, sqlite_url(tmp_path))
        bad_api = fast_api(bad, version, max_attempts=2)
        try:
            bad.fail(d.path("/billing"), status=503, times=1_000_000)
            deps = d.deps
            deps.apis = {"good": d.api, "bad": bad_api}
            deps.enforcer = None  # rebuilt over both accounts' pods
            result = run_cycle(deps)
            assert set(result.fetch_errors) == {"bad"}
        finally:
            bad_api.close()
            d.close()
        # the good account's data is fresh: its pod is stopped; the bad one's is not
        assert good.pod("pod-grow").desired_status == "EXITED"
        assert bad.pod("pod-bad").desired_status == "RUNNING"
    assert [(p["account"], p["action"]) for p in payloads(rx) if p["kind"] == "enforcement"] == [
        ("good", "stopped")]
