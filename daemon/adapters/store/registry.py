"""Pods and named resources as last seen: names for alerts about pods and
endpoints that RunPod no longer lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware
from daemon.adapters.store.schema import pods_t, resources_t
from daemon.core.model import Pod, PodInfo, Resource


class RegistryMixin(StoreBase):
    """``RegistryStore`` on SQL: one bulk upsert per call."""

    def upsert_pods(self, account: str, pods: Sequence[Pod], now: datetime) -> None:
        """Remember ``pods`` of ``account`` as seen at ``now``: name, GPU, status
        and run start are updated, ``first_seen`` is kept. A pod listed twice
        counts once (the last wins). ``started_at`` None keeps the known one
        (v1 does not say). Raises ``StoreError``."""
        now = aware(now, "now")
        latest = {p.id: p for p in pods}
        rows = [
            {
                "account": account,
                "pod_id": p.id,
                "name": p.name,
                "gpu_type": p.gpu_type,
                "gpu_count": p.gpu_count,
                "first_seen": now,
                "last_seen": now,
                "last_status": str(p.desired_status),
                "started_at": None if p.started_at is None else aware(p.started_at, "started_at"),
            }
            for p in latest.values()
        ]
        if not rows:
            return
        ins = self._insert(pods_t)
        x = ins.excluded
        stmt = ins.on_conflict_do_update(
            index_elements=["account", "pod_id"],
            set_={
                "name": x.name,
                "gpu_type": x.gpu_type,
                "gpu_count": x.gpu_count,
                "last_seen": x.last_seen,
                "last_status": x.last_status,
                "started_at": func.coalesce(x.started_at, pods_t.c.started_at),
            },
        )
        with self._tx("recording pods") as conn:
            conn.execute(stmt, rows)

    def pod_registry(self, account: str) -> dict[str, PodInfo]:
        """Every pod of ``account`` ever recorded, by id. Raises ``StoreError``."""
        p = pods_t
        with self._tx("reading the pod registry") as conn:
            rows = conn.execute(select(p).where(p.c.account == account)).all()
        return {
            r.pod_id: PodInfo(
                id=r.pod_id,
                name=r.name,
                gpu_type=r.gpu_type,
                gpu_count=int(r.gpu_count),
                first_seen=r.first_seen,
                last_seen=r.last_seen,
                last_status=r.last_status,
                started_at=r.started_at,
            )
            for r in rows
        }

    def upsert_resources(
        self, account: str, resources: Sequence[Resource], now: datetime
    ) -> None:
        """Remember the names of serverless endpoints and network volumes
        (``first_seen`` kept, name and ``last_seen`` updated). Raises ``StoreError``."""
        now = aware(now, "now")
        latest = {(r.family, r.id): r for r in resources}
        rows: list[dict[str, Any]] = [
            {
                "account": account,
                "family": fam,
                "resource_id": rid,
                "name": r.name,
                "first_seen": now,
                "last_seen": now,
            }
            for (fam, rid), r in latest.items()
        ]
        if not rows:
            return
        ins = self._insert(resources_t)
        stmt = ins.on_conflict_do_update(
            index_elements=["account", "family", "resource_id"],
            set_={"name": ins.excluded.name, "last_seen": ins.excluded.last_seen},
        )
        with self._tx("recording resources") as conn:
            conn.execute(stmt, rows)

    def resource_names(self, account: str, family: str) -> dict[str, str]:
        """``{resource id: name}`` of ``family`` in ``account``. Raises ``StoreError``."""
        r = resources_t
        with self._tx("reading resource names") as conn:
            rows = conn.execute(
                select(r.c.resource_id, r.c.name).where(
                    r.c.account == account, r.c.family == family
                )
            ).all()
        return {row.resource_id: row.name for row in rows}
