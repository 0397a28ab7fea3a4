"""``check``-like cycles end to end: simulator over loopback (FakeClock), a real
SQLite file, notifiers built from the config, the recording receiver.

Scenario GROWING (see conftest): one pod at 10 $/h from 2026-11-24T00:00Z, so a
100 USD day budget reaches 50 % at 05:00Z, 80 % at 08:00Z and 100 % at 10:00Z.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.core.model import SeriesKey
from daemon.core.ports import ApiError, StoreError
from daemon.pipeline.cycle import run_cycle
from daemon.pipeline.enforcer import AccountRouter
from daemon.simulator import FakeClock, Simulator
from tests.pipeline.conftest import (
    DAY,
    GROWING,
    HOOK,
    SLACK,
    T0,
    Daemon,
    H,
    M,
    assert_no_duplicates,
    day_budget,
    hook_ids,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver
from tests.support.simulator import fast_api, running_simulator

GROWING_COPY = copy.deepcopy(GROWING)


def tid(t: int, budget: str = "daily", group: str = "all", start: str = DAY) -> str:
    return f"default:{budget}:{group}:{start}:threshold:{t}"


def step_cycles(d: Daemon, start: datetime, end: datetime, step: timedelta) -> list[str]:
    """Run a cycle at every ``step`` from ``start`` to ``end`` inclusive; the ids decided."""
    decided: list[str] = []
    t = start
    while t <= end:
        d.clock.set(t)
        result = d.cycle()
        assert result.billing_ok, result.fetch_errors
        assert result.delivery.ok, result.delivery.failed
        decided += [a.id for a in result.alerts]
        t += step
    return decided


@pytest.fixture
def daemon(growing: Simulator, rx: Receiver, tmp_path: Path, version: str) -> Any:
    d = Daemon(growing, make_config(rx, [day_budget()], version=version), sqlite_url(tmp_path))
    yield d
    d.close()


# --------------------------------------------------------------------------- thresholds


def test_each_threshold_fires_exactly_once_as_spend_grows(daemon: Daemon, rx: Receiver) -> None:
    decided = step_cycles(daemon, T0 + 10 * M, T0 + 14 * H, 10 * M)

    assert decided == [tid(50), tid(80), tid(100)]
    assert hook_ids(rx) == [tid(50), tid(80), tid(100)]
    assert len(rx.requests_to(SLACK)) == 3  # one Slack message per alert too
    fired = {p["threshold_percent"]: p["fired_at"] for p in payloads(rx)}
    # each fired at the first poll at or after its crossing
    assert fired == {50: "2026-11-24T05:00:00Z", 80: "2026-11-24T08:00:00Z",
                     100: "2026-11-24T10:00:00Z"}


def test_several_thresholds_crossed_between_polls_give_one_alert_for_the_highest(
    daemon: Daemon, rx: Receiver
) -> None:
    daemon.clock.set(T0 + 1 * H)
    assert daemon.cycle().alerts == []
    daemon.clock.set(T0 + 9 * H)  # 90 USD: 50 % and 80 % crossed since the last poll
    assert [a.id for a in daemon.cycle().alerts] == [tid(80)]
    step_cycles(daemon, T0 + 9 * H + 30 * M, T0 + 12 * H, 30 * M)

    assert hook_ids(rx) == [tid(80), tid(100)]
    assert [p["threshold_percent"] for p in payloads(rx)] == [80, 100]
    assert len(rx.requests_to(SLACK)) == 2


def test_restart_on_the_same_state_file_sends_nothing_again(
    daemon: Daemon, rx: Receiver
) -> None:
    step_cycles(daemon, T0 + 30 * M, T0 + 5 * H + 30 * M, 30 * M)
    assert hook_ids(rx) == [tid(50)]

    daemon.restart()  # new store object on the same file, new notifier objects
    daemon.clock.set(T0 + 5 * H + 30 * M)
    assert daemon.cycle().alerts == []  # the same instant again
    step_cycles(daemon, T0 + 6 * H, T0 + 8 * H + 30 * M, 30 * M)
    assert hook_ids(rx) == [tid(50), tid(80)]

    daemon.restart()
    daemon.clock.set(T0 + 9 * H)
    assert daemon.cycle().alerts == []
    step_cycles(daemon, T0 + 9 * H + 30 * M, T0 + 11 * H, 30 * M)
    assert hook_ids(rx) == [tid(50), tid(80), tid(100)]
    assert_no_duplicates([r.json["text"] for r in rx.requests_to(SLACK)])


# --------------------------------------------------------------------------- dry run


def test_dry_run_reports_but_sends_and_records_nothing(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    enforce = {"at": 80, "dry_run": False}  # a real stop, were it not a dry run
    config = make_config(
        rx, [day_budget(), day_budget("pod-daily", per="pod", enforce=enforce)],
        health={"after": "10m"}, version=version,
    )
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 9 * H)
        dry = d.cycle(dry_run=True)
        would = sorted(a.id for a in dry.alerts)
        assert would == sorted([tid(80), tid(80, "pod-daily", "pod=pod-grow")])
        assert dry.billing_ok and dry.requests > 0
        assert {s.budget: round(s.spend, 2) for s in dry.evaluation.statuses} == {
            "daily": 90.0, "pod-daily": 90.0}
        assert dry.delivery.delivered == [] and dry.delivery.failed == []

        assert rx.requests == []
        s = d.store
        for family in ("account", "pods"):
            key = SeriesKey("default", family)  # type: ignore[arg-type]
            assert s.points(key, T0 - 40 * 24 * H, T0 + 48 * H) == []
            assert s.coverage(key) == []
        assert s.pod_registry("default") == {}
        assert s.ledger("default", T0 - 40 * 24 * H) == []
        assert s.delivery_states() == []
        assert s.pending_count() == 0
        # enforcement is described, not done nor recorded
        assert dry.enforcement_log
        assert growing.pod("pod-grow").desired_status == "RUNNING"
        assert not [r for r in growing.requests if r.method == "POST"]
        assert s.audit() == []

        # a dry run during an outage does not start the health clock either
        growing.fail(d.path("/billing"), status=500, times=1000)
        assert d.cycle(dry_run=True).fetch_errors.keys() == {"default"}
        assert s.get_meta("health:default:since") in (None, "")
        growing.clear_faults()

        # the real cycle sends exactly what the dry run announced (and stops the pod)
        real = d.cycle()
        assert sorted(a.id for a in real.alerts if a.kind == "threshold") == would
        assert sorted(hook_ids(rx, "threshold")) == would
        assert growing.pod("pod-grow").desired_status == "EXITED"
    finally:
        d.close()


# --------------------------------------------------------------------------- payload

CONTRACT_KEYS = [
    "id", "kind", "account", "budget", "group", "window", "spend_usd", "limit_usd",
    "percent", "threshold_percent", "forecast_usd", "fired_at",
]
# the contract's group object, with the keys "What a budget counts" adds
GROUP_KEYS = ["pod_id", "pod_name", "gpu_type", "endpoint_id", "endpoint_name", "volume_id",
              "volume_name"]
NO_GROUP = dict.fromkeys(GROUP_KEYS)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _check_contract_types(p: dict[str, Any]) -> None:
    assert isinstance(p["id"], str) and p["id"]
    assert p["kind"] == "threshold"
    assert isinstance(p["account"], str) and isinstance(p["budget"], str)
    assert list(p["group"]) == GROUP_KEYS
    assert all(v is None or isinstance(v, str) for v in p["group"].values())
    assert list(p["window"]) == ["size", "start", "end"]
    assert p["window"]["size"] in ("hour", "day", "week", "month") or re.match(
        r"^\d+[hd]$", p["window"]["size"]
    )
    assert ISO_Z.match(p["window"]["start"]) and ISO_Z.match(p["window"]["end"])
    for k in ("spend_usd", "limit_usd", "percent"):
        assert type(p[k]) is float, (k, p[k])
    assert type(p["threshold_percent"]) in (int, float)
    assert not isinstance(p["threshold_percent"], bool)
    assert p["forecast_usd"] is None or type(p["forecast_usd"]) is float
    assert ISO_Z.match(p["fired_at"])


def test_payload_has_the_contract_keys_and_types_and_webhook_id_header(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    config = make_config(
        rx, [day_budget("pod-daily", per="pod", thresholds=[50]), day_budget(thresholds=[50])],
        version=version,
    )
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 5 * H + 30 * M + 7 * timedelta(seconds=1))
        d.cycle()
    finally:
        d.close()
    reqs = rx.requests_to(HOOK)
    assert len(reqs) == 2
    by_budget = {r.json["budget"]: r for r in reqs}
    for r in reqs:
        assert r.method == "POST"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["webhook-id"] == r.json["id"]
        _check_contract_types(r.json)

    per_pod = by_budget["pod-daily"].json
    assert list(per_pod) == CONTRACT_KEYS  # exactly the contract's keys, in order
    assert per_pod == {
        "id": tid(50, "pod-daily", "pod=pod-grow"),
        "kind": "threshold",
        "account": "default",
        "budget": "pod-daily",
        "group": {**NO_GROUP, "pod_id": "pod-grow", "pod_name": "train-grow",
                  "gpu_type": "NVIDIA A100 80GB PCIe"},
        "window": {"size": "day", "start": DAY, "end": "2026-11-25T00:00:00Z"},
        "spend_usd": 55.02,
        "limit_usd": 100.0,
        "percent": 55.02,
        "threshold_percent": 50,
        "forecast_usd": 240.0,
        "fired_at": "2026-11-24T05:30:07Z",
    }
    aggregate = by_budget["daily"].json
    # an aggregate instance may add top_contributors after the contract's keys, nothing else
    assert list(aggregate)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert set(aggregate) - set(CONTRACT_KEYS) <= {"top_contributors"}
    assert aggregate["group"] == NO_GROUP


# --------------------------------------------------------------------------- billing errors

FAULTS = [
    pytest.param({"status": 401}, id="401"),
    pytest.param({"status": 500}, id="500-persisting"),
    pytest.param({"kind": "garbage"}, id="garbage-json"),
    pytest.param({"kind": "bad_record", "record": "nan_amount"}, id="nan-amount"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_billing_api_errors_are_reported_and_the_next_good_cycle_catches_up(
    daemon: Daemon, rx: Receiver, fault: dict[str, Any]
) -> None:
    sim = daemon.sim
    daemon.clock.set(T0 + 4 * H)  # 40 USD: nothing due
    assert daemon.cycle().alerts == []

    sim.fail(daemon.path("/billing"), times=10_000, **fault)
    # A transient fault waits for health.after; a permanent one (a rejected key)
    # is told at once, since waiting cannot fix it (daemon.core.health).
    permanent = fault.get("status") == 401
    outage = T0 + 5 * H + 30 * M
    unusable = f"default:health:unusable:{_z(outage)}"
    for minutes in (0, 3):  # 55 USD by now: 50 % is due, but billing is unusable
        daemon.clock.set(outage + minutes * M)
        result = daemon.cycle()
        assert set(result.fetch_errors) == {"default"}
        assert not result.billing_ok
        assert [a.id for a in result.alerts] == ([unusable] if permanent and not minutes else [])
    assert hook_ids(rx) == ([unusable] if permanent else [])

    sim.clear_faults()
    daemon.clock.set(T0 + 5 * H + 35 * M)
    result = daemon.cycle()
    assert result.billing_ok
    recovered = [f"default:health:recovered:{_z(outage)}"] if permanent else []
    assert sorted(a.id for a in result.alerts) == sorted([tid(50), *recovered])
    # and no health notice for a short transient outage
    assert hook_ids(rx, "threshold") == [tid(50)]
    assert hook_ids(rx, "health") == ([unusable, *recovered] if permanent else [])
    (alert,) = [p for p in payloads(rx) if p["kind"] == "threshold"]
    assert round(alert["spend_usd"], 2) == 55.83


# --------------------------------------------------------------------------- health


def test_health_notice_once_after_the_grace_period_and_once_on_recovery(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    config = make_config(rx, [day_budget()], health={"after": "10m"}, version=version)
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 1 * H)
        assert d.cycle().billing_ok

        growing.fail(d.path("/billing"), status=500, times=1_000_000)
        outage = T0 + 1 * H + 5 * M  # first failing poll
        for minutes in (0, 3, 5):
            d.clock.set(outage + minutes * M)
            assert d.cycle().fetch_errors
        assert hook_ids(rx) == []  # failing for 5 minutes: no notice

        d.restart()  # restart while the outage is still under the grace period
        d.clock.set(outage + 9 * M)
        d.cycle()
        assert hook_ids(rx) == []

        d.clock.set(outage + 11 * M)
        result = d.cycle()
        assert [a.kind for a in result.alerts] == ["health"]
        unusable = f"default:health:unusable:{_z(outage)}"
        assert hook_ids(rx) == [unusable]

        for minutes in (15, 20, 40):  # staying down
            d.clock.set(outage + minutes * M)
            assert d.cycle().alerts == []
        d.restart()  # restart during the announced outage
        for minutes in (45, 60):
            d.clock.set(outage + minutes * M)
            assert d.cycle().alerts == []
        assert hook_ids(rx) == [unusable]

        growing.clear_faults()
        d.clock.set(outage + 65 * M)
        result = d.cycle()
        assert result.billing_ok
        recovered = f"default:health:recovered:{_z(outage)}"
        assert [a.id for a in result.alerts] == [recovered]
        d.restart()
        d.clock.set(outage + 70 * M)
        assert d.cycle().alerts == []
    finally:
        d.close()

    assert hook_ids(rx) == [unusable, recovered]
    assert len(rx.requests_to(SLACK)) == 2
    p = payloads(rx)
    assert [x["kind"] for x in p] == ["health", "health"]
    assert [x["state"] for x in p] == ["unusable", "recovered"]
    assert all(x["account"] == "default" and x["since"] == _z(outage) for x in p)
    assert "500" in p[0]["last_error"]


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- forecast


def test_forecast_fires_once_per_instance_while_under_the_limit(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    budget = day_budget(thresholds=[100], forecast=True)
    d = Daemon(growing, make_config(rx, [budget]), sqlite_url(tmp_path / "a"))
    try:
        step_cycles(d, T0 + 30 * M, T0 + 11 * H, 30 * M)
        # the next day is a new instance: its forecast fires again
        step_cycles(d, T0 + 24 * H + 30 * M, T0 + 26 * H, 30 * M)
    finally:
        d.close()
    fid = f"default:daily:all:{DAY}:forecast"
    fid2 = "default:daily:all:2026-11-25T00:00:00Z:forecast"
    assert hook_ids(rx) == [fid, tid(100), fid2]
    first = payloads(rx)[0]
    assert first["kind"] == "forecast"
    assert first["threshold_percent"] is None
    assert first["spend_usd"] == 5.0 and first["forecast_usd"] == 240.0

    # first seen at or over the limit: no forecast for that instance, only the threshold
    rx.clear()
    d2 = Daemon(growing, make_config(rx, [budget]), sqlite_url(tmp_path / "b"))
    try:
        step_cycles(d2, T0 + 11 * H, T0 + 12 * H, 30 * M)
    finally:
        d2.close()
    assert hook_ids(rx) == [tid(100)]


# --------------------------------------------------------------------------- month rollover

MONTH_END: dict[str, Any] = {
    "pods": [
        {"id": "pod-m", "name": "train-m", "gpu_type": "NVIDIA H100 80GB HBM3",
         "cost_per_hr": 10.0, "running": [["2026-11-30T00:00:00Z", None]]}
    ]
}


def test_month_rollover_gives_new_instances_that_fire_again(
    rx: Receiver, tmp_path: Path
) -> None:
    nov30 = datetime(2026, 11, 30, tzinfo=UTC)
    dec1 = datetime(2026, 12, 1, tzinfo=UTC)
    with running_simulator(MONTH_END, clock=FakeClock(nov30 + 12 * H)) as sim:
        d = Daemon(sim, make_config(rx, [{**day_budget("monthly"), "window": "month"}]),
                   sqlite_url(tmp_path))
        try:
            step_cycles(d, nov30 + 12 * H, nov30 + 23 * H + 30 * M, 30 * M)
            step_cycles(d, dec1 + 30 * M, dec1 + 12 * H, 30 * M)
        finally:
            d.close()
    nov, dec = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
    assert hook_ids(rx) == [
        tid(100, "monthly", start=nov),
        tid(50, "monthly", start=dec),
        tid(80, "monthly", start=dec),
        tid(100, "monthly", start=dec),
    ]
    windows = [(p["window"]["start"], p["window"]["end"]) for p in payloads(rx)]
    assert windows[0] == (nov, dec)
    assert windows[1:] == [(dec, "2027-01-01T00:00:00Z")] * 3
    assert [p["spend_usd"] for p in payloads(rx)][1:] == [50.0, 80.0, 100.0]


# --------------------------------------------------------------------------- time zones

EVENING: dict[str, Any] = {
    "pods": [
        {"id": "pod-e", "name": "train-e", "gpu_type": "NVIDIA A100 80GB PCIe",
         "cost_per_hr": 10.0, "running": [["2026-11-23T20:00:00Z", None]]}
    ]
}


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        # Berlin is UTC+1 in November: its 2026-11-24 runs 23:00Z .. 23:00Z and
        # holds 5.5 running hours at 04:30Z (55 USD); the UTC day only 4.5 (45 USD).
        ("Europe/Berlin", [("2026-11-23T23:00:00Z", "2026-11-24T23:00:00Z", 55.0)]),
        ("UTC", []),
    ],
)
def test_day_budget_in_a_non_utc_zone_counts_the_local_day(
    rx: Receiver, tmp_path: Path, zone: str, expected: list[tuple[str, str, float]]
) -> None:
    now = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
    with running_simulator(EVENING, clock=FakeClock(now)) as sim:
        d = Daemon(sim, make_config(rx, [day_budget(thresholds=[50, 100])], timezone=zone),
                   sqlite_url(tmp_path))
        try:
            result = d.cycle()
            statuses = {s.budget: s for s in result.evaluation.statuses}
            assert round(statuses["daily"].spend, 2) == (55.0 if zone != "UTC" else 45.0)
            # 22:30Z is still the same Berlin day (23:30 local); 23:30Z is the next one
            sim.clock.set(datetime(2026, 11, 24, 22, 30, tzinfo=UTC))
            d.cycle()
        finally:
            d.close()
    got = [(p["window"]["start"], p["window"]["end"], p["spend_usd"]) for p in payloads(rx)]
    if zone == "UTC":
        # only the UTC day: 50 % at 05:00Z is crossed by 22:30Z → one alert, for 100 %
        assert [p["id"] for p in payloads(rx)] == [tid(100)]
    else:
        assert got[:1] == expected
        ids = [p["id"] for p in payloads(rx)]
        assert ids == [tid(50, start=expected[0][0]), tid(100, start=expected[0][0])]
    assert_no_duplicates(hook_ids(rx))
    assert Counter(p["kind"] for p in payloads(rx)) == Counter({"threshold": len(got)})


# --------------------------------------------------------------------------- store failures


class EnqueueFails:
    """The real store, except that ``enqueue`` fails the way a locked
    SQLite file or a dropped PostgreSQL connection does (``StoreError``, not
    permanent): the cycle stops there, as a crash at that point would."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def enqueue(self, alerts: Any, now: datetime) -> list[str]:
        raise StoreError("state store: enqueuing alerts failed: database is locked",
                         permanent=False)


def failing_cycle(d: Daemon) -> None:
    deps = d.deps
    deps.store = EnqueueFails(d.store)
    with pytest.raises(StoreError):
        run_cycle(deps)


def test_a_threshold_alert_survives_a_cycle_that_failed_to_enqueue(
    daemon: Daemon, rx: Receiver
) -> None:
    daemon.clock.set(T0 + 5 * H)
    failing_cycle(daemon)
    daemon.clock.set(T0 + 5 * H + 5 * M)
    assert [a.id for a in daemon.cycle().alerts] == [tid(50)]
    assert hook_ids(rx) == [tid(50)]


@pytest.mark.parametrize("lost", ["unusable", "recovered"])
def test_a_health_notice_survives_a_cycle_that_failed_to_enqueue(
    growing: Simulator, rx: Receiver, tmp_path: Path, lost: str
) -> None:
    config = make_config(rx, [day_budget()], health={"after": "10m"})
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 1 * H)
        d.cycle()
        growing.fail(d.path("/billing"), status=500, times=1_000_000)
        outage = T0 + 1 * H + 5 * M
        d.clock.set(outage)
        d.cycle()
        d.clock.set(outage + 11 * M)
        if lost == "unusable":
            failing_cycle(d)
        else:
            d.cycle()
            growing.clear_faults()
            d.clock.set(outage + 20 * M)
            failing_cycle(d)
        for minutes in (25, 30):
            d.clock.set(outage + minutes * M)
            d.cycle()
    finally:
        d.close()
    assert f"default:health:{lost}:{_z(outage)}" in hook_ids(rx, "health")


def test_a_stop_is_announced_even_if_the_cycle_failed_to_enqueue(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    enforce = {"at": 80, "dry_run": False}
    config = make_config(
        rx, [day_budget("pod-daily", per="pod", enforce=enforce)], version=version
    )
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 9 * H)
        failing_cycle(d)
        assert growing.pod("pod-grow").desired_status == "EXITED"  # the stop happened
        for minutes in (5, 10):
            d.clock.set(T0 + 9 * H + minutes * M)
            d.cycle()
    finally:
        d.close()
    kinds = Counter(p["kind"] for p in payloads(rx))
    assert kinds["threshold"] == 1  # the 80 % alert is re-decided: not lost
    assert kinds["enforcement"] == 1, "nobody was told that the pod was stopped"


# --------------------------------------------------------------------------- two accounts


def test_one_accounts_billing_failure_does_not_hold_back_the_other(
    rx: Receiver, tmp_path: Path, version: str
) -> None:
    clock = FakeClock(T0 + 5 * H + 30 * M)
    with running_simulator(GROWING_COPY, clock=clock) as good, \
            running_simulator(GROWING_COPY, clock=clock) as bad:
        config = make_config(
            rx, [day_budget()], health={"after": "10m"},
            accounts=[{"name": "good"}, {"name": "bad", "api_key_env": "RUNPOD_API_KEY"}],
            version=version,
        )
        d = Daemon(good, config, sqlite_url(tmp_path))
        bad_client = fast_api(bad, version)
        try:
            bad.fail(d.path("/billing"), status=503, times=1_000_000)
            deps = d.deps
            deps.apis = {"good": d.api, "bad": bad_client}
            result = run_cycle(deps)
            assert set(result.fetch_errors) == {"bad"}
            assert [a.id for a in result.alerts] == [tid(50).replace("default:", "good:")]
            clock.advance(11 * M)
            result = run_cycle(deps)
            assert [a.id for a in result.alerts] == [
                f"bad:health:unusable:{_z(T0 + 5 * H + 30 * M)}"]
            bad.clear_faults()
            clock.advance(5 * M)
            result = run_cycle(deps)
            assert sorted(a.id for a in result.alerts) == sorted([
                tid(50).replace("default:", "bad:"),
                f"bad:health:recovered:{_z(T0 + 5 * H + 30 * M)}",
            ])
        finally:
            bad_client.close()
            d.close()
    assert_no_duplicates(hook_ids(rx))
    assert len(hook_ids(rx)) == 4


# --------------------------------------------------------------------------- rolling windows


def test_a_rolling_instance_fires_a_threshold_at_most_once_per_window_length(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    # 10 $/h for ever: the last 6 h hold 50 USD from 05:00 on, 60 USD from 06:00
    budget = day_budget("roll", limit=50, window="6h", thresholds=[100])
    d = Daemon(growing, make_config(rx, [budget]), sqlite_url(tmp_path))
    try:
        step_cycles(d, T0 + 30 * M, T0 + 10 * H, 30 * M)
        d.restart()  # the ledger, not memory, keeps the 6 h apart
        step_cycles(d, T0 + 10 * H + 30 * M, T0 + 23 * H + 30 * M, 30 * M)
    finally:
        d.close()
    fired = [p["fired_at"] for p in payloads(rx)]
    assert fired == [f"2026-11-24T{h:02d}:00:00Z" for h in (5, 11, 17, 23)]
    assert hook_ids(rx) == [tid(100, "roll", start=f"2026-11-24T{h:02d}:00:00Z")
                            for h in (0, 6, 12, 18)]
    assert all(p["window"]["size"] == "6h" for p in payloads(rx))


def test_enforcement_stops_a_pod_through_the_account_that_owns_it(version: str) -> None:
    """With several accounts the enforcer knows only pod ids: the stop must go to
    the account whose GET /pods listed the pod, without listing again."""
    other = {"pods": [dict(GROWING["pods"][0], id="pod-other", name="train-other")]}
    clock = FakeClock(T0 + 5 * H)
    with running_simulator(GROWING_COPY, clock=clock) as a, \
            running_simulator(other, clock=clock) as b:
        router = AccountRouter({"a": fast_api(a, version), "b": fast_api(b, version)})
        assert {p.id for p in router.list_pods()} == {"pod-grow", "pod-other"}
        router.stop_pod("pod-other")
        assert b.pod("pod-other").desired_status == "EXITED"
        assert a.pod("pod-grow").desired_status == "RUNNING"
        assert [r.method for r in a.requests] == ["GET"]  # a was listed once, never asked to stop
        with pytest.raises(ApiError) as exc:
            router.stop_pod("pod-unknown")
        assert exc.value.permanent
