"""Bursts and big fetches: alert grouping per notifier, and a cold start's
chunked billing fetch that resumes where it failed.

Scenario GROWING (see conftest): one pod at 10 $/h from midnight UTC.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from daemon.adapters.runpod.transport import RequestInfo
from daemon.core.plan import MAX_HOURS
from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    DAY,
    HOOK,
    SLACK,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    hook_ids,
    make_config,
    sqlite_url,
)
from tests.support.receiver import Receiver
from tests.support.simulator import fast_api

# ---------------------------------------------------------------------------- grouping


def test_a_burst_reaches_slack_and_console_as_one_summary_and_a_webhook_as_one_event_each(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    budgets = [day_budget(f"team-{i}", thresholds=[50]) for i in range(5)]
    notifiers = {
        "hook": {"type": "webhook", "url": rx.url + HOOK, "timeout": 5},
        "ops": {"type": "slack", "webhook_url": rx.url + SLACK, "timeout": 5},
        "con": {"type": "console"},
    }
    config = make_config(rx, budgets, grouping={"max_individual": 3}, notifiers=notifiers,
                         notify=("hook", "ops", "con"))
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 5 * H + 30 * M)
        result = d.cycle()
        console = d.console.getvalue()
        ledger = {e.id for e in d.store.ledger("default", T0)}
        d.clock.set(T0 + 5 * H + 35 * M)
        assert d.cycle().alerts == []  # and nothing is sent again
    finally:
        d.close()
    ids = {f"default:team-{i}:all:{DAY}:threshold:50" for i in range(5)}
    assert {a.id for a in result.alerts} == ids == ledger  # ids and ledger as always
    assert Counter(hook_ids(rx)) == Counter(ids)  # machines read one event per alert
    (summary,) = rx.requests_to(SLACK)  # people read one message for the burst
    text = summary.text
    assert all(f"team-{i}" in text for i in range(5)), text
    assert {aid for aid, n in result.delivery.delivered if n == "ops"} == ids
    # the console, read by people too, prints one summary, not five alerts
    assert console.count("[SUMMARY]") == 1 and "5 budget alerts" in console
    assert "[THRESHOLD]" not in console
    assert all(f"team-{i}" in console for i in range(5))


def test_up_to_max_individual_alerts_go_to_slack_one_by_one(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    budgets = [day_budget(f"team-{i}", thresholds=[50]) for i in range(3)]
    config = make_config(rx, budgets, grouping={"max_individual": 3})
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 5 * H + 30 * M)
        d.cycle()
    finally:
        d.close()
    assert len(rx.requests_to(SLACK)) == 3 and len(rx.requests_to(HOOK)) == 3


# ---------------------------------------------------------------------------- chunked fetch


def test_a_cold_start_that_fails_mid_way_does_not_refetch_the_stored_chunks(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    # a 7-day rolling window needs 7 days of hour buckets: MAX_HOURS per request
    budget = day_budget("week", limit=10_000, window="7d", per="pod")
    pods_path = f"/{version}/billing/pods"
    seen: list[str] = []

    def fail_after_first_chunk(info: RequestInfo) -> None:
        # the first billing answer has arrived: every later one fails (the
        # simulator cannot tell chunks apart by path, so the fault is set now)
        if info.path == "/billing/pods" and info.status == 200 and not seen:
            seen.append(info.path)
            growing.fail(pods_path, status=503, times=1_000_000)

    config = make_config(rx, [budget], version=version)
    api = fast_api(growing, version, max_attempts=2, on_request=fail_after_first_chunk)
    d = Daemon(growing, config, sqlite_url(tmp_path), api=api)
    try:
        d.clock.set(T0 + 12 * H)
        first = d.cycle()
        assert first.fetch_errors  # the second chunk failed
        asked_first = _chunks(growing, pods_path, ok=True)
        assert len(asked_first) == 1

        growing.clear_faults()
        seen.append("done")  # no more faults
        n = len(growing.requests)
        d.clock.set(T0 + 12 * H + 5 * M)
        second = d.cycle()
        assert second.billing_ok
        asked_again = _chunks(growing, pods_path, ok=True, since=n)
        # the rest of the week is fetched, the stored chunk is not asked again
        assert asked_first[0] not in asked_again
        # 7 days + today's hours in chunks of MAX_HOURS, less the one stored
        assert len(asked_again) >= 7 * 24 // MAX_HOURS
        (status,) = second.evaluation.statuses
        assert round(status.spend, 2) == 120.83  # 12 h 05 m: nothing lost nor counted twice
    finally:
        d.close()


def _chunks(sim: Simulator, path: str, *, ok: bool, since: int = 0) -> list[str]:
    """startTime of each answered billing request on ``path`` (200s only if ``ok``)."""
    return [
        r.param("startTime") or ""
        for r in sim.requests[since:]
        if r.path == path and (r.status == 200 or not ok)
    ]
