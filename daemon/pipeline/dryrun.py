"""A store decorator for dry runs (``check --dry-run``, ``status``): reads see
the real state plus what this run fetched; nothing is written.

The cycle runs the same stages in a dry run; only this wrapper (and the
enforcer's and deliverer's dry-run switches) differ, instead of ``if dry_run``
branches through the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from daemon.core.model import Alert, Pod, PodInfo, Resource, SeriesKey, SpendPoint
from daemon.core.ports import Coverage, LedgerEntry, Store


class DryRunStore:
    """Wraps a ``Store``: writes go to memory, reads merge them over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._fetched: dict[SeriesKey, list[tuple[datetime, datetime, Sequence[SpendPoint]]]] = {}
        self._meta: dict[str, str] = {}
        self._pods: dict[str, dict[str, PodInfo]] = {}
        self._names: dict[tuple[str, str], dict[str, str]] = {}
        self.enqueued: list[Alert] = []

    def __repr__(self) -> str:
        return f"DryRunStore({self._store!r})"

    # spend
    def coverage(self, series: SeriesKey) -> list[Coverage]:
        return list(self._store.coverage(series))

    def replace_points(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        hours: int,
        points: Sequence[SpendPoint],
    ) -> None:
        del hours
        self._fetched.setdefault(series, []).append((start, end, list(points)))

    def points(self, series: SeriesKey, start: datetime, end: datetime) -> list[SpendPoint]:
        ranges = self._fetched.get(series, [])
        stored = [
            p
            for p in self._store.points(series, start, end)
            if not any(a <= p.time < b for a, b, _ in ranges)
        ]
        fresh = [p for _, _, pts in ranges for p in pts if start <= p.time < end]
        return stored + fresh

    # registry
    def upsert_pods(self, account: str, pods: Sequence[Pod], now: datetime) -> None:
        mine = self._pods.setdefault(account, {})
        for p in pods:
            old = mine.get(p.id)
            mine[p.id] = PodInfo(
                p.id, p.name, p.gpu_type, p.gpu_count, old.first_seen if old else now, now,
                str(p.desired_status), p.started_at,
            )

    def pod_registry(self, account: str) -> dict[str, PodInfo]:
        return {**self._store.pod_registry(account), **self._pods.get(account, {})}

    def upsert_resources(self, account: str, resources: Sequence[Resource], now: datetime) -> None:
        del now
        for r in resources:
            self._names.setdefault((account, r.family), {})[r.id] = r.name

    def resource_names(self, account: str, family: str) -> dict[str, str]:
        return {
            **self._store.resource_names(account, family),
            **self._names.get((account, family), {}),
        }

    # ledger
    def ledger(self, account: str, since: datetime) -> list[LedgerEntry]:
        return self._store.ledger(account, since)

    def enqueue(self, alerts: Sequence[Alert], now: datetime) -> list[str]:
        """Nothing is queued; returns the ids the real store does not hold yet."""
        del now
        self.enqueued += alerts
        return [a.id for a in alerts]

    # meta
    def get_meta(self, key: str) -> str | None:
        return self._meta[key] if key in self._meta else self._store.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    # audit
    def enforcement_row(self, instance_id: str, pod_id: str) -> dict[str, Any] | None:
        return self._store.enforcement_row(instance_id, pod_id)

    def open_intents(self) -> list[dict[str, Any]]:
        return self._store.open_intents()
