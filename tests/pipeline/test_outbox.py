"""The outbox: a notifier that is down gets its messages, in order, when it is
back; permanent failures are recorded and not retried; backoff grows.

Real parts: simulator (FakeClock), SQLite file, notifiers from the config, the
recording receiver (or a closed port).
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.pipeline.outbox import BACKOFF_BASE, BACKOFF_MAX, backoff, deliver_due
from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    HOOK,
    SLACK,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver, slack_error

DAY = "2026-11-24T00:00:00Z"
S = timedelta(seconds=1)


def tid(t: int) -> str:
    return f"default:daily:all:{DAY}:threshold:{t}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drain(d: Daemon, *, rounds: int = 10, step: timedelta = 2 * H) -> None:
    """deliver_due until nothing is pending (bounded), moving the clock past backoff."""
    for _ in range(rounds):
        if d.store.pending_count() == 0:
            return
        d.clock.advance(step)
        deliver_due(d.store, d.notifiers, d.clock)
    assert d.store.pending_count() == 0, d.store.delivery_states()


def hook_only(url: str) -> dict[str, Any]:
    return {"hook": {"type": "webhook", "url": url, "timeout": 3}}


@pytest.fixture
def down_daemon(
    request: pytest.FixtureRequest, growing: Simulator, tmp_path: Path
) -> Iterator[tuple[Daemon, Any]]:
    """A daemon whose only notifier (webhook ``hook``) is down in the given way.
    Yields (daemon, bring_back) where ``bring_back()`` returns the receiver that
    answers from then on."""
    mode = request.param
    if mode == "closed-port":
        port = free_port()
        config = make_config("unused", [day_budget()], notify=("hook",),
                             notifiers=hook_only(f"http://127.0.0.1:{port}{HOOK}"))
        d = Daemon(growing, config, sqlite_url(tmp_path))
        started: list[Receiver] = []

        def bring_back() -> Receiver:
            r = Receiver(port=port).start()
            started.append(r)
            return r

        try:
            yield d, bring_back
        finally:
            d.close()
            for r in started:
                r.stop()
        return
    with Receiver() as rx:
        config = make_config(rx, [day_budget()], notify=("hook",),
                             notifiers=hook_only(rx.url + HOOK))
        rx.set_down(True, mode="503" if mode == "503" else "close")
        d = Daemon(growing, config, sqlite_url(tmp_path))

        def back() -> Receiver:
            rx.set_down(False)
            rx.clear()
            return rx

        try:
            yield d, back
        finally:
            d.close()


@pytest.mark.parametrize("down_daemon", ["503", "close", "closed-port"], indirect=True)
def test_a_notifier_that_was_down_gets_every_alert_once_in_order(
    down_daemon: tuple[Daemon, Any],
) -> None:
    d, bring_back = down_daemon
    for hours, t in ((5, 50), (8, 80), (10, 100)):  # three alerts decided while it is down
        d.clock.set(T0 + hours * H)
        result = d.cycle()
        assert [a.id for a in result.alerts] == [tid(t)]
        assert result.delivery.delivered == []
    assert d.store.pending_count() == 3
    (state,) = d.store.delivery_states()
    assert (state.notifier, state.pending, state.delivered, state.failed_permanent) == (
        "hook", 3, 0, 0)
    assert state.last_error and "transient" in state.last_error

    rx = bring_back()
    drain(d)
    assert [r.headers["webhook-id"] for r in rx.requests_to(HOOK)] == [tid(50), tid(80), tid(100)]
    assert [p["id"] for p in payloads(rx)] == [tid(50), tid(80), tid(100)]

    # and never again: more passes, more cycles
    d.clock.advance(3 * H)
    deliver_due(d.store, d.notifiers, d.clock)
    assert d.cycle().alerts == []
    assert len(rx.requests_to(HOOK)) == 3
    (state,) = d.store.delivery_states()
    assert (state.pending, state.delivered, state.failed_permanent) == (0, 3, 0)


def test_transient_failure_waits_for_its_backoff_and_honours_retry_after(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    config = make_config(rx, [day_budget()], notify=("hook",), notifiers=hook_only(rx.url + HOOK))
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        rx.respond(HOOK, [(503, "busy", {}), (429, "slow down", {"Retry-After": "600"})])
        d.clock.set(T0 + 5 * H)
        assert d.cycle().delivery.failed  # attempt 1: 503, backoff 12-18 s
        d.clock.advance(10 * S)
        assert deliver_due(d.store, d.notifiers, d.clock).failed == []
        assert len(rx.requests_to(HOOK)) == 1  # not yet due
        d.clock.advance(10 * S)
        report = deliver_due(d.store, d.notifiers, d.clock)  # attempt 2: 429, 600 s
        assert [f[0] for f in report.failed] == [tid(50)]
        d.clock.advance(5 * M)  # far past the exponential backoff, short of Retry-After
        deliver_due(d.store, d.notifiers, d.clock)
        assert len(rx.requests_to(HOOK)) == 2
        d.clock.advance(6 * M)
        report = deliver_due(d.store, d.notifiers, d.clock)
        assert report.delivered == [(tid(50), "hook")]
        assert len(rx.requests_to(HOOK)) == 3
        assert {r.headers["webhook-id"] for r in rx.requests_to(HOOK)} == {tid(50)}
    finally:
        d.close()


def test_webhook_410_is_permanent_recorded_and_not_retried(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    config = make_config(rx, [day_budget()], notify=("hook",), notifiers=hook_only(rx.url + HOOK))
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        rx.respond(HOOK, [(410, "gone", {})])
        d.clock.set(T0 + 5 * H)
        result = d.cycle()
        ((aid, name, error, permanent),) = result.delivery.failed
        assert (aid, name, permanent) == (tid(50), "hook", True)
        assert "410" in error

        for _ in range(3):  # no retry however long we wait
            d.clock.advance(2 * H)
            assert deliver_due(d.store, d.notifiers, d.clock).failed == []
        assert len(rx.requests_to(HOOK)) == 1
        (state,) = d.store.delivery_states()
        assert (state.notifier, state.pending, state.delivered, state.failed_permanent) == (
            "hook", 0, 0, 1)
        assert state.last_error is not None and "410" in state.last_error
        assert state.last_error_at == T0 + 5 * H
        assert d.store.pending_count() == 0
    finally:
        d.close()


def test_slack_channel_not_found_is_permanent_recorded_and_not_retried(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    token = "xoxb-0000-test-token"
    notifiers = {"bot": {"type": "slack", "token": token, "channel": "#gone", "timeout": 3}}
    config = make_config(rx, [day_budget()], notify=("bot",), notifiers=notifiers)
    d = Daemon(growing, config, sqlite_url(tmp_path), slack_base_url=rx.url + "/api/")
    try:
        rx.respond("/api/chat.postMessage", [slack_error("channel_not_found")])
        d.clock.set(T0 + 5 * H)
        result = d.cycle()
        ((aid, name, error, permanent),) = result.delivery.failed
        assert (aid, name, permanent) == (tid(50), "bot", True)
        assert "channel_not_found" in error and token not in error
        for _ in range(3):
            d.clock.advance(2 * H)
            deliver_due(d.store, d.notifiers, d.clock)
        calls = rx.requests_to("/api/chat.postMessage")
        assert len(calls) == 1
        assert calls[0].headers["authorization"] == f"Bearer {token}"
        (state,) = d.store.delivery_states()
        assert (state.notifier, state.pending, state.delivered, state.failed_permanent) == (
            "bot", 0, 0, 1)
        assert state.last_error and "channel_not_found" in state.last_error
        assert token not in state.last_error
    finally:
        d.close()


def test_a_notifier_that_is_down_does_not_hold_back_the_others(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    d = Daemon(growing, make_config(rx, [day_budget()]), sqlite_url(tmp_path))
    try:
        rx.respond(HOOK, [], default=(503, "down", {}))
        for hours in (5, 8):
            d.clock.set(T0 + hours * H)
            d.cycle()
        states = {s.notifier: s for s in d.store.delivery_states()}
        assert (states["ops"].delivered, states["ops"].pending) == (2, 0)
        assert (states["hook"].delivered, states["hook"].pending) == (0, 2)
        assert len(rx.requests_to(SLACK)) == 2
    finally:
        d.close()


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
