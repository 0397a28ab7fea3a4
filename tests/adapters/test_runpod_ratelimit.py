"""v2 rate limits: the adapter reads ``RateLimit`` and waits instead of provoking a 429.

The simulator counts its windows on its FakeClock; the adapter is given the
same clock (and a sleep that advances it), so a 48 s wait for the minute
window to reset takes no real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.adapters.runpod import RequestInfo
from daemon.adapters.runpod.ratelimit import RateLimits, parse_sf_list
from daemon.core.ports import ApiError
from daemon.simulator import Simulator
from tests.adapters.runpod_support import fast_api, no_waits, running_simulator

__all__ = ["no_waits"]  # the fixture, imported for pytest


@pytest.fixture
def tiny() -> Iterator[Simulator]:
    """3 requests a minute; the FakeClock stands at 14:05:12, 48 s before the reset."""
    with running_simulator(rate_limit={"minute": 3, "hour": 100}) as sim:
        yield sim


def sim_time(sim: Simulator) -> dict[str, Any]:
    def sleep(seconds: float) -> bool:
        sim.clock.advance(timedelta(seconds=seconds))  # type: ignore[attr-defined]
        return False

    return {"clock": lambda: sim.clock().timestamp(), "sleep": sleep}


def test_a_cycle_waits_for_the_reset_instead_of_getting_429(tiny: Simulator) -> None:
    seen: list[RequestInfo] = []
    api = fast_api(tiny, "v2", deadline=60, on_request=seen.append, **sim_time(tiny))
    with capture_logs() as logs:
        for _ in range(5):
            api.list_pods()
    assert [r.status for r in tiny.requests] == [200] * 5  # never a 429
    paced = [ev for ev in logs if ev["event"] == "runpod.paced"]
    assert [(ev["window"], ev["wait"]) for ev in paced] == [("minute", 48.0)]
    assert [dict(i.remaining)["minute"] for i in seen] == [2, 1, 0, 2, 1]
    assert api.rate_limit_remaining() == {"minute": 1, "hour": 95}


def test_when_waiting_does_not_fit_the_deadline_it_fails_fast(tiny: Simulator) -> None:
    api = fast_api(tiny, "v2", deadline=30, **sim_time(tiny))
    for _ in range(3):
        api.list_pods()
    with pytest.raises(ApiError) as e:
        api.list_pods()
    assert (e.value.reason, e.value.permanent, e.value.status) == ("rate_limited", False, None)
    assert "the 'minute' rate-limit quota is used up for 48 s more" in str(e.value)
    assert "past this call's deadline" in str(e.value)
    assert len(tiny.requests) == 3  # nothing was sent to be refused


@pytest.mark.usefixtures("no_waits")
def test_a_429_from_the_simulator_is_waited_out(tiny: Simulator) -> None:
    # other clients on the same key spent the quota; this one learns it from the 429's
    # RateLimit header and waits on the simulator's clock (stamina's own wait is off)
    fast_api(tiny, "v2").list_pods()
    fast_api(tiny, "v2").list_pods()
    fast_api(tiny, "v2").list_pods()
    api = fast_api(tiny, "v2", deadline=60, retry_after_cap=60, **sim_time(tiny))
    with capture_logs() as logs:
        assert api.list_pods()
    assert [r.status for r in tiny.requests][-2:] == [429, 200]
    (retry,) = [ev for ev in logs if ev["event"] == "runpod.retry"]
    assert (retry["reason"], retry["retry_after"]) == ("rate_limited", 48.0)
    assert [ev["wait"] for ev in logs if ev["event"] == "runpod.paced"] == [48.0]


def test_v1_has_no_rate_limit_headers(tiny: Simulator) -> None:
    api = fast_api(tiny, "v1")
    for _ in range(5):
        api.list_pods()
    assert api.rate_limit_remaining() == {}


# ------------------------------------------------------------------ header parsing (unit)


def test_structured_field_lists_are_read() -> None:
    assert parse_sf_list('"minute";r=0;t=12, "hour";r=2800;t=1812, day;r=5;t=9') == {
        "minute": {"r": "0", "t": "12"}, "hour": {"r": "2800", "t": "1812"},
        "day": {"r": "5", "t": "9"}}
    assert parse_sf_list('"minute";r=0, ,;;') == {"minute": {"r": "0"}}


def test_a_spent_window_blocks_until_its_reset_then_refills() -> None:
    now = [1000.0]
    limits = RateLimits(clock=lambda: now[0])
    limits.update({"RateLimit-Policy": '"minute";q=60;w=60, "hour";q=3000;w=3600',
                   "RateLimit": '"minute";r=0;t=12, "hour";r=2800;t=1812'})
    assert limits.wait_needed() == (12.0, "minute")
    assert limits.remaining() == {"minute": 0, "hour": 2800}
    now[0] += 12
    assert limits.wait_needed() is None
    limits.update({"RateLimit": "unreadable"})
    assert limits.remaining() == {"minute": 0, "hour": 2800}


def test_requests_in_flight_count_against_the_quota() -> None:
    limits = RateLimits(clock=lambda: 0.0)
    limits.update({"RateLimit": '"minute";r=1;t=30'})
    assert limits.wait_needed() is None
    limits.note_sent()
    assert limits.wait_needed() == (30.0, "minute")
