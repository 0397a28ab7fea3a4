"""An answer over the body cap is asked for again in halves: a cold start of
any size completes (the "Scale" issue: 4,000 pods' month never completed
because the same over-cap range was asked for every cycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.adapters.store import open_store
from daemon.config.models import Config
from daemon.core.model import Pod, Resource, SeriesKey, SpendRecord
from daemon.core.ports import ApiError
from daemon.core.windows import window_at
from daemon.pipeline.fetch import fetch_billing

NOW = datetime(2026, 11, 24, 14, 5, tzinfo=UTC)


class CappedApi:
    """Answers at most ``cap`` buckets per call, like a body cap would; a unit
    test of the fetch stage's logic, so a fake stands in for RunPod here."""

    version = "v2"
    base_url = "http://fake"
    families = frozenset({"account", "pods"})

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.calls: list[tuple[str, datetime, datetime, bool]] = []

    def billing(self, family: str, *, bucket: str, start: datetime, end: datetime
                ) -> list[SpendRecord]:
        step = timedelta(hours=24 if bucket == "day" else 1)
        n = round((end - start) / step)
        self.calls.append((bucket, start, end, n <= self.cap))
        if n > self.cap:
            raise ApiError("too big", permanent=False, reason="too_large")
        return [
            SpendRecord("pods", "p1", start + i * step, start + (i + 1) * step, 1.0)
            for i in range(n)
        ]

    def list_pods(self) -> list[Pod]:
        return []

    def list_resources(self, family: str) -> list[Resource]:
        return []

    def stop_pod(self, pod_id: str) -> None:
        raise AssertionError("not used")


def test_an_over_cap_answer_is_fetched_in_halves_and_all_of_it_is_stored() -> None:
    config = Config.model_validate(
        {"version": 1, "notifiers": {"o": {"type": "console"}}, "defaults": {"notify": ["o"]},
         "budgets": [{"name": "b", "window": "month", "per": "pod", "limit": 10}]}
    )
    series = SeriesKey("default", "pods")
    needed = {series: [window_at("month", NOW, config.zone)]}
    api = CappedApi(cap=5)
    store = open_store("sqlite://")
    try:
        out = fetch_billing(config, {"default": api}, store, needed, NOW)
        assert out.errors == {}
        assert [c for c in api.calls if c[3]]  # answered once small enough
        assert all(c[3] or round((c[2] - c[1]).total_seconds()) > 5 * 3600 for c in api.calls)
        points = store.points(series, NOW - timedelta(days=40), NOW + timedelta(hours=1))
        # every day of the month so far and every hour of today, once each
        days = {p.time for p in points if p.hours == 24}
        hours = {p.time for p in points if p.hours == 1}
        assert len(days) == 23 and len(hours) == 15
        assert len(points) == 23 + 15
        again = CappedApi(cap=5)
        fetch_billing(config, {"default": again}, store, needed, NOW + timedelta(minutes=5))
        # the next poll asks only for the settle hours and the current hour
        assert [(c[0], c[1], c[2]) for c in again.calls] == [
            ("hour", datetime(2026, 11, 24, 12, tzinfo=UTC), datetime(2026, 11, 24, 15, tzinfo=UTC))
        ]
    finally:
        store.close()
