"""Pods and named resources as last seen: names for alerts about pods and
endpoints that RunPod no longer lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware
from daemon.adapters.store.schema import pods_t, resources_t
from daemon.core.model import Pod, PodInfo, Resource


class RegistryMixin(StoreBase):
    """``RegistryStore`` on SQL. A poll writes in proportion to what changed:
    the pods whose facts changed, plus one statement for the ``last_seen`` of
    the rest."""

    def upsert_pods(self, account: str, pods: Sequence[Pod], now: datetime) -> None:
        """Remember ``pods`` of ``account`` as seen at ``now``: name, GPU, status
        and run start are updated, ``first_seen`` is kept. A pod listed twice
        counts once (the last wins). ``started_at`` None keeps the known one
        (v1 does not say). Raises ``StoreError``.

        One read of the stored pods decides what to write: new pods and pods
        whose facts changed are upserted; the ``last_seen`` of the unchanged
        ones moves to ``now`` in one statement keyed by the ``last_seen`` they
        share (the previous poll's), and the few pods that statement would
        wrongly touch (no longer listed, or listed with another ``last_seen``)
        are set one by one."""
        now = aware(now, "now")
        latest = {p.id: p for p in pods}
        if not latest:
            return
        t = pods_t
        with self._tx("recording pods") as conn:
            stored = _stored_pods(conn, account)
            changed: list[dict[str, Any]] = []
            unchanged: dict[datetime, list[str]] = {}  # stored last_seen -> listed pod ids
            for pid, p in latest.items():
                started = None if p.started_at is None else aware(p.started_at, "started_at")
                old = stored.get(pid)
                if old is None or _changed(old, p, started):
                    changed.append(_row(account, p, started, now))
                elif old[-1] != now:
                    unchanged.setdefault(old[-1], []).append(pid)
            if unchanged:
                _touch(conn, account, now, stored=stored, listed=latest, unchanged=unchanged)
            if changed:
                conn.execute(_upsert_pods(self._insert(t)), changed)

    def pod_registry(self, account: str) -> dict[str, PodInfo]:
        """Every pod of ``account`` ever recorded, by id. Raises ``StoreError``."""
        t = pods_t
        with self._tx("reading the pod registry") as conn:
            rows = conn.execute(
                select(t.c.pod_id, t.c.name, t.c.gpu_type, t.c.gpu_count, t.c.last_status,
                       t.c.started_at, t.c.first_seen, t.c.last_seen)
                .where(t.c.account == account)
            ).all()
        return {
            pid: PodInfo(
                id=pid,
                name=name,
                gpu_type=gpu_type,
                gpu_count=int(gpu_count),
                first_seen=first,
                last_seen=last,
                last_status=status,
                started_at=started,
            )
            for pid, name, gpu_type, gpu_count, status, started, first, last in rows
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


#: a stored pod: (name, gpu_type, gpu_count, last_status, started_at, last_seen)
_Stored = tuple[str, str | None, int, str, datetime | None, datetime]


def _stored_pods(conn: Connection, account: str) -> dict[str, _Stored]:
    """The stored facts of every pod of ``account``, by id, as plain tuples."""
    t = pods_t
    rows = conn.execute(
        select(t.c.pod_id, t.c.name, t.c.gpu_type, t.c.gpu_count, t.c.last_status,
               t.c.started_at, t.c.last_seen)
        .where(t.c.account == account)
    ).all()
    return {
        pid: (name, gpu_type, int(gpu_count), status, started, seen)
        for pid, name, gpu_type, gpu_count, status, started, seen in rows
    }


def _changed(old: _Stored, p: Pod, started: datetime | None) -> bool:
    """Whether the stored facts of a pod differ from ``p`` as listed now."""
    name, gpu_type, gpu_count, status, old_started, _ = old
    return (
        name != p.name
        or gpu_type != p.gpu_type
        or gpu_count != p.gpu_count
        or status != p.desired_status
        or (started is not None and started != old_started)
    )


def _row(account: str, p: Pod, started: datetime | None, now: datetime) -> dict[str, Any]:
    return {
        "account": account,
        "pod_id": p.id,
        "name": p.name,
        "gpu_type": p.gpu_type,
        "gpu_count": p.gpu_count,
        "first_seen": now,
        "last_seen": now,
        "last_status": str(p.desired_status),
        "started_at": started,
    }


def _upsert_pods(ins: Any) -> Any:
    x = ins.excluded
    return ins.on_conflict_do_update(
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


def _touch(
    conn: Connection,
    account: str,
    now: datetime,
    *,
    stored: Mapping[str, _Stored],
    listed: Mapping[str, Pod],
    unchanged: Mapping[datetime, list[str]],
) -> None:
    """Set ``last_seen = now`` for the ``unchanged`` pods (by stored last_seen)
    and for no other pod. The largest group moves in one statement keyed by its
    ``last_seen``; the pods stored with that value but not listed now get it
    back; the other groups (pods listed again after a gap) are set by id."""
    t = pods_t
    sweep = max(unchanged, key=lambda seen: len(unchanged[seen]))
    group = [pid for pid, old in stored.items() if old[-1] == sweep]
    swept = conn.execute(
        t.update().where(t.c.account == account, t.c.last_seen == sweep).values(last_seen=now)
    ).rowcount
    by_id = t.update().where(t.c.account == account, t.c.pod_id == bindparam("pid"))
    back = [{"pid": pid, "seen": sweep} for pid in group if pid not in listed]
    if back:
        conn.execute(by_id.values(last_seen=bindparam("seen")), back)
    by_now = [pid for seen, ids in unchanged.items() if seen != sweep for pid in ids]
    if swept != len(group):
        # a stored text that names the same instant in another form was not
        # matched by the statement: set that group by id as well
        by_now += unchanged[sweep]
    if by_now:
        conn.execute(by_id.values(last_seen=now), [{"pid": pid} for pid in by_now])
