"""The outbox: a notifier that is down gets its messages, in order, when it is
back; permanent failures are recorded and not retried; backoff grows; ``check``
sends what is pending at once; a crashed sender's lease runs out quickly;
summarising notifiers get one summary for a burst.

Real parts: a SQLite file or the PostgreSQL server, notifiers built from the
config talking HTTP to the recording receiver (or a closed port). The summary
and lease tests use a tiny recording notifier: they are about the outbox's
logic, not a transport.
"""

from __future__ import annotations

import itertools
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from daemon.adapters.notifiers import build_notifiers, close_notifiers
from daemon.adapters.store import SqlStore, open_store
from daemon.config.loader import parse_config
from daemon.core.model import Alert
from daemon.core.ports import DeliveryError, Notifier
from daemon.pipeline.outbox import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    LEASE_MARGIN,
    backoff,
    deliver_due,
    lease_for,
)
from tests.pipeline.conftest import PG_CONNINFO, PG_URL
from tests.support.receiver import Receiver, slack_error

HOOK = "/hook"
T0 = datetime(2026, 11, 24, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
ENV = {"RUNPOD_API_KEY": "rpa_test"}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, d: timedelta) -> None:
        self.now += d


def tid(t: int) -> str:
    return f"default:daily:all:2026-11-24T00:00:00Z:threshold:{t}"


def alert(aid: str, notifiers: tuple[str, ...] = ("hook",), kind: str = "threshold") -> Alert:
    payload = {"id": aid, "kind": kind, "account": "default", "budget": "daily",
               "group": {"pod_id": None, "pod_name": None, "gpu_type": None},
               "window": {"size": "day", "start": "2026-11-24T00:00:00Z",
                          "end": "2026-11-25T00:00:00Z"},
               "spend_usd": 50.0, "limit_usd": 100.0, "percent": 50.0,
               "threshold_percent": 50, "forecast_usd": None, "fired_at": "2026-11-24T05:00:00Z"}
    return Alert(aid, kind, notifiers, payload)  # type: ignore[arg-type]


def notifiers_for(config: dict[str, Any], **kw: Any) -> dict[str, Notifier]:
    data = {"version": 1, "notifiers": config, "defaults": {"notify": list(config)},
            "budgets": [{"name": "daily", "window": "day", "limit": 100, "thresholds": [50]}]}
    config = parse_config(json.dumps(data), file="t.yaml", env=ENV)
    return build_notifiers(config.notifiers, zone=config.zone, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A real SQLite file, or a schema of its own on the real PostgreSQL server."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/state/state.db")
        yield s
        s.close()
        return
    pg_skip = request.getfixturevalue("pg_skip")
    if pg_skip:
        pytest.skip(pg_skip)
    schema = f"rpb_outbox_{uuid.uuid4().hex[:16]}"
    s = open_store(PG_URL, schema=schema)
    try:
        yield s
    finally:
        s.close()
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hook(url: str) -> dict[str, Any]:
    return {"hook": {"type": "webhook", "url": url, "timeout": 3}}


def drain(store: SqlStore, notifiers: dict[str, Notifier], clock: Clock) -> None:
    for _ in range(10):
        if store.pending_count() == 0:
            return
        clock.advance(2 * H)
        deliver_due(store, notifiers, clock)
    assert store.pending_count() == 0, store.delivery_states()


@pytest.mark.parametrize("mode", ["503", "close", "closed-port"])
def test_a_notifier_that_was_down_gets_every_alert_once_in_order(
    store: SqlStore, mode: str
) -> None:
    clock = Clock()
    port = free_port()
    rx = Receiver(port=port).start()
    if mode == "closed-port":
        rx.stop()
    else:
        rx.set_down(True, mode="503" if mode == "503" else "close")
    notifiers = notifiers_for(hook(f"http://127.0.0.1:{port}{HOOK}"))
    try:
        for hours, t in ((5, 50), (8, 80), (10, 100)):  # decided while it is down
            clock.now = T0 + hours * H
            assert store.enqueue([alert(tid(t))], clock()) == [tid(t)]
            assert deliver_due(store, notifiers, clock).delivered == []
        (state,) = store.delivery_states()
        assert (state.notifier, state.pending, state.delivered) == ("hook", 3, 0)
        assert state.last_error and "transient" in state.last_error

        if mode == "closed-port":
            rx = Receiver(port=port).start()
        rx.set_down(False)
        rx.clear()
        drain(store, notifiers, clock)
        assert [r.headers["webhook-id"] for r in rx.requests_to(HOOK)] == [
            tid(50), tid(80), tid(100)]
        clock.advance(3 * H)  # and never again
        deliver_due(store, notifiers, clock)
        assert len(rx.requests_to(HOOK)) == 3
        (state,) = store.delivery_states()
        assert (state.pending, state.delivered, state.failed_permanent) == (0, 3, 0)
    finally:
        close_notifiers(notifiers)
        rx.stop()


def test_transient_failure_waits_for_its_backoff_and_honours_retry_after(
    store: SqlStore, rx: Receiver
) -> None:
    clock = Clock(T0 + 5 * H)
    notifiers = notifiers_for(hook(rx.url + HOOK))
    try:
        rx.respond(HOOK, [(503, "busy", {}), (429, "slow down", {"Retry-After": "600"})])
        store.enqueue([alert(tid(50))], clock())
        assert deliver_due(store, notifiers, clock).failed  # attempt 1: 503, backoff 12-18 s
        clock.advance(10 * S)
        assert deliver_due(store, notifiers, clock).failed == []
        assert len(rx.requests_to(HOOK)) == 1  # not yet due
        clock.advance(10 * S)
        report = deliver_due(store, notifiers, clock)  # attempt 2: 429, 600 s
        assert [f[0] for f in report.failed] == [tid(50)]
        clock.advance(5 * M)  # far past the exponential backoff, short of Retry-After
        deliver_due(store, notifiers, clock)
        assert len(rx.requests_to(HOOK)) == 2
        clock.advance(6 * M)
        assert deliver_due(store, notifiers, clock).delivered == [(tid(50), "hook")]
        assert len(rx.requests_to(HOOK)) == 3
    finally:
        close_notifiers(notifiers)


def test_check_delivers_a_backed_off_alert_at_once_but_waits_for_retry_after(
    store: SqlStore, rx: Receiver
) -> None:
    """``check`` right after a notifier recovered sends what is pending now."""
    clock = Clock(T0 + 5 * H)
    notifiers = notifiers_for(hook(rx.url + HOOK))
    try:
        rx.respond(HOOK, [(503, "busy", {}), (503, "busy", {}), (503, "busy", {})])
        store.enqueue([alert(tid(50))], clock())
        for _ in range(3):  # three failures: the backoff is now a minute or more
            deliver_due(store, notifiers, clock, honour_backoff=False)
        clock.advance(S)
        assert deliver_due(store, notifiers, clock).delivered == []  # the daemon waits
        report = deliver_due(store, notifiers, clock, honour_backoff=False)  # check does not
        assert report.delivered == [(tid(50), "hook")]
        assert len(rx.requests_to(HOOK)) == 4

        rx.respond(HOOK, [(429, "slow down", {"Retry-After": "300"})])
        store.enqueue([alert(tid(80))], clock())
        deliver_due(store, notifiers, clock, honour_backoff=False)
        clock.advance(M)
        assert deliver_due(store, notifiers, clock, honour_backoff=False).delivered == []
        assert len(rx.requests_to(HOOK)) == 5  # Retry-After is honoured even by check
        clock.advance(5 * M)
        assert deliver_due(store, notifiers, clock, honour_backoff=False).delivered == [
            (tid(80), "hook")]
    finally:
        close_notifiers(notifiers)


def test_webhook_410_is_permanent_recorded_and_not_retried(store: SqlStore, rx: Receiver) -> None:
    clock = Clock(T0 + 5 * H)
    notifiers = notifiers_for(hook(rx.url + HOOK))
    try:
        rx.respond(HOOK, [(410, "gone", {})])
        store.enqueue([alert(tid(50))], clock())
        ((aid, name, error, permanent),) = deliver_due(store, notifiers, clock).failed
        assert (aid, name, permanent) == (tid(50), "hook", True)
        assert "410" in error
        for _ in range(3):  # no retry however long we wait, not even by check
            clock.advance(2 * H)
            assert deliver_due(store, notifiers, clock, honour_backoff=False).failed == []
        assert len(rx.requests_to(HOOK)) == 1
        (state,) = store.delivery_states()
        assert (state.pending, state.delivered, state.failed_permanent) == (0, 0, 1)
        assert state.last_error_at == T0 + 5 * H
    finally:
        close_notifiers(notifiers)


def test_slack_channel_not_found_is_permanent_recorded_and_not_retried(
    store: SqlStore, rx: Receiver
) -> None:
    token = "xoxb-0000-test-token"
    clock = Clock(T0 + 5 * H)
    notifiers = notifiers_for(
        {"bot": {"type": "slack", "token": token, "channel": "#gone", "timeout": 3}},
        slack_base_url=rx.url + "/api/",
    )
    try:
        rx.respond("/api/chat.postMessage", [slack_error("channel_not_found")])
        store.enqueue([alert(tid(50), notifiers=("bot",))], clock())
        ((aid, name, error, permanent),) = deliver_due(store, notifiers, clock).failed
        assert (aid, name, permanent) == (tid(50), "bot", True)
        assert "channel_not_found" in error and token not in error
        for _ in range(3):
            clock.advance(2 * H)
            deliver_due(store, notifiers, clock)
        assert len(rx.requests_to("/api/chat.postMessage")) == 1
        (state,) = store.delivery_states()
        assert (state.notifier, state.pending, state.failed_permanent) == ("bot", 0, 1)
        assert state.last_error and token not in state.last_error
    finally:
        close_notifiers(notifiers)


# --------------------------------------------------------------------------- logic


class Recording:
    """A notifier that records what it was sent and fails on demand."""

    def __init__(
        self, name: str = "ops", *, summarizes: bool = False, send_timeout: float = 5.0
    ) -> None:
        self.name = name
        self.summarizes = summarizes
        self.send_timeout = send_timeout
        self.sent: list[Alert] = []
        self.fail: list[DeliveryError] = []
        self.disabled_reason: str | None = None

    @property
    def wants_summary(self) -> bool:
        return self.summarizes

    def close(self) -> None:
        pass

    def send(self, alert: Alert) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(alert)


def test_a_notifier_that_is_down_does_not_hold_back_the_others(store: SqlStore) -> None:
    clock = Clock()
    down, up = Recording("hook"), Recording("ops")
    down.fail = [DeliveryError("503", permanent=False)] * 2
    store.enqueue([alert("a1", ("hook", "ops")), alert("a2", ("hook", "ops"))], clock())
    report = deliver_due(store, {"hook": down, "ops": up}, clock)
    assert [a.id for a in up.sent] == ["a1", "a2"]
    assert report.failed == [("a1", "hook", "503", False)]  # a2 waits behind a1
    states = {s.notifier: s for s in store.delivery_states()}
    assert (states["ops"].delivered, states["hook"].pending) == (2, 2)


def test_a_crashed_senders_lease_delays_the_notifier_by_one_send_timeout(
    store: SqlStore,
) -> None:
    clock = Clock()
    n = Recording("ops", send_timeout=5.0)
    lease = lease_for(n)
    assert lease == 5.0 + LEASE_MARGIN
    store.enqueue([alert(f"a{i}", ("ops",)) for i in range(3)], clock())
    # A process claimed the batch and was killed before sending anything.
    assert len(store.claim_due("killed", clock(), lease)) == 3
    clock.advance(timedelta(seconds=lease - 1))
    assert deliver_due(store, {"ops": n}, clock).delivered == []
    clock.advance(2 * S)
    report = deliver_due(store, {"ops": n}, clock)
    assert [a.id for a in n.sent] == ["a0", "a1", "a2"]
    assert len(report.delivered) == 3


def test_a_sender_that_lost_its_lease_stops_before_the_next_row(store: SqlStore) -> None:
    """At most one sender per row: a send that outlived the lease lets another
    owner take the rest over, and the slow owner does not send them too."""
    clock = Clock()
    taken: list[str] = []

    class Slow(Recording):
        def send(self, alert: Alert) -> None:
            super().send(alert)
            clock.advance(timedelta(seconds=lease_for(self) + 5))  # hung past the lease
            if not taken:  # meanwhile a replica claims what it sees as free
                taken.extend(i.alert.id for i in store.claim_due("replica", clock(), 60))

    n = Slow("ops", send_timeout=5.0)
    store.enqueue([alert("a1", ("ops",)), alert("a2", ("ops",))], clock())
    report = deliver_due(store, {"ops": n}, clock)
    assert [a.id for a in n.sent] == ["a1"]
    assert report.delivered == [("a1", "ops")]
    assert taken == ["a1", "a2"]  # a1 may go out twice (it was in flight), a2 only once


def _burst(store: SqlStore, clock: Clock, n: int, notifiers: tuple[str, ...]) -> list[str]:
    ids = [f"burst-{i:02d}" for i in range(n)]
    store.enqueue([alert(i, notifiers) for i in ids], clock())
    return ids


def test_a_burst_goes_to_a_summarising_notifier_as_one_summary(store: SqlStore) -> None:
    clock = Clock()
    slack, webhook = Recording("ops", summarizes=True), Recording("hook")
    ids = _burst(store, clock, 8, ("ops", "hook"))
    clock.advance(M)
    store.enqueue([alert("later", ("ops", "hook"))], clock())  # another cycle: on its own
    report = deliver_due(store, {"ops": slack, "hook": webhook}, clock, max_individual=5)
    (summary, single) = slack.sent
    assert summary.kind == "summary" and single.id == "later"
    assert summary.payload["alert_ids"] == ids
    assert [a.id for a in webhook.sent] == [*ids, "later"]  # webhooks: one event per alert
    assert sorted(report.delivered) == sorted(
        [(i, n) for i in [*ids, "later"] for n in ("ops", "hook")])
    assert store.pending_count() == 0


def test_a_summary_marks_its_members_delivered_only_after_it_went_out(store: SqlStore) -> None:
    clock = Clock()
    slack = Recording("ops", summarizes=True)
    slack.fail = [DeliveryError("503", permanent=False)]
    ids = _burst(store, clock, 6, ("ops",))
    report = deliver_due(store, {"ops": slack}, clock, max_individual=5)
    assert slack.sent == [] and report.delivered == []
    assert [f[0] for f in report.failed] == ids
    assert store.pending_count() == 6
    clock.advance(H)
    deliver_due(store, {"ops": slack}, clock, max_individual=5)
    (summary,) = slack.sent
    assert summary.payload["alert_ids"] == ids
    assert store.pending_count() == 0
    # The ledger is unchanged: deciding the same alerts again queues nothing.
    assert store.enqueue([alert(i, ("ops",)) for i in ids], clock()) == []


def test_without_summaries_or_below_the_limit_every_alert_goes_alone(store: SqlStore) -> None:
    clock = Clock()
    plain, few = Recording("hook"), Recording("ops", summarizes=True)
    ids = _burst(store, clock, 5, ("ops", "hook"))
    deliver_due(store, {"ops": few, "hook": plain}, clock, max_individual=5)
    assert [a.id for a in few.sent] == ids and [a.id for a in plain.sent] == ids


# --------------------------------------------------------------------------- backoff unit


def test_backoff_grows_exponentially_to_the_cap() -> None:
    mid = [backoff(n, None, rand=lambda: 0.5) for n in range(12)]
    assert mid[0] == BACKOFF_BASE == timedelta(seconds=15)
    assert mid[1:5] == [timedelta(seconds=30), timedelta(seconds=60),
                        timedelta(seconds=120), timedelta(seconds=240)]
    assert all(a <= b for a, b in itertools.pairwise(mid))
    assert mid[-1] == BACKOFF_MAX
    assert backoff(10_000, None, rand=lambda: 0.5) == BACKOFF_MAX  # no overflow


def test_backoff_jitter_stays_within_twenty_percent() -> None:
    for n in (0, 3, 20):
        base = backoff(n, None, rand=lambda: 0.5)
        assert backoff(n, None, rand=lambda: 0.0) == base * 0.8
        assert backoff(n, None, rand=lambda: 0.999999) <= base * 1.2
    samples = {backoff(2, None) for _ in range(50)}
    assert all(timedelta(seconds=48) <= s <= timedelta(seconds=72) for s in samples)


def test_backoff_honours_retry_after_as_a_floor() -> None:
    assert backoff(0, 600, rand=lambda: 0.5) == timedelta(seconds=600)
    assert backoff(0, 1, rand=lambda: 0.5) == timedelta(seconds=15)  # never below backoff
    assert backoff(20, 7200, rand=lambda: 0.5) == timedelta(seconds=7200)  # floor over the cap
    assert backoff(0, 0, rand=lambda: 0.0) == timedelta(seconds=12)
