"""Enforcement: one intent/result row per (instance, pod), and an append-only log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware, dumps
from daemon.adapters.store.ledger import enqueue_in
from daemon.adapters.store.schema import enforcement_log_t, enforcement_t
from daemon.core.model import Alert


def _stop_row(r: Any) -> dict[str, Any]:
    """An ``enforcement`` row as an audit dict (``detail``: intent's, updated by result's)."""
    detail = dict(json.loads(r.detail))
    if r.result_detail:
        detail.update(json.loads(r.result_detail))
    return {
        "at": r.result_at or r.intent_at,
        "event": "stop",
        "instance_id": r.instance_id,
        "pod_id": r.pod_id,
        "intent_at": r.intent_at,
        "result": r.result,
        "result_at": r.result_at,
        "detail": detail,
    }


class AuditMixin(StoreBase):
    """``AuditStore`` on SQL."""

    def record_intent(
        self, instance_id: str, pod_id: str, now: datetime, detail: dict[str, Any]
    ) -> bool:
        """Write the intent to stop ``pod_id`` for ``instance_id`` before the call.
        Returns False if an intent for (instance_id, pod_id) exists already."""
        now = aware(now, "now")
        with self._tx("recording an enforcement intent") as conn:
            res = conn.execute(
                self._insert(enforcement_t)
                .values(
                    instance_id=instance_id, pod_id=pod_id, intent_at=now, detail=dumps(detail)
                )
                .on_conflict_do_nothing(index_elements=["instance_id", "pod_id"])
                .returning(enforcement_t.c.pod_id)
            )
            inserted = res.first() is not None
        return inserted

    def record_result(
        self,
        instance_id: str,
        pod_id: str,
        now: datetime,
        result: str,
        detail: dict[str, Any],
        *,
        alerts: Sequence[Alert] = (),
    ) -> None:
        """Record the outcome of a stop (``stopped``, ``failed``, ``dry_run`` …)
        and queue ``alerts`` (its announcement) in the same transaction, so a
        crash cannot keep the one without the other. Without an earlier
        intent, the row is created with ``intent_at = now``."""
        now = aware(now, "now")
        e = enforcement_t
        with self._tx("recording an enforcement result") as conn:
            enqueue_in(conn, self._insert, alerts, now)
            res = conn.execute(
                e.update()
                .where(e.c.instance_id == instance_id, e.c.pod_id == pod_id)
                .values(result=result, result_at=now, result_detail=dumps(detail))
            )
            if res.rowcount == 0:
                conn.execute(
                    e.insert().values(
                        instance_id=instance_id,
                        pod_id=pod_id,
                        intent_at=now,
                        result=result,
                        result_at=now,
                        detail="{}",
                        result_detail=dumps(detail),
                    )
                )

    def record_audit(self, now: datetime, event: str, detail: dict[str, Any]) -> None:
        """Append an enforcement event that is not a stop (a refusal and why)."""
        now = aware(now, "now")
        with self._tx("recording an audit event") as conn:
            conn.execute(
                enforcement_log_t.insert().values(at=now, event=event, detail=dumps(detail))
            )

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """Enforcement history, newest first.

        Stops: ``{"at", "event": "stop", "instance_id", "pod_id", "intent_at",
        "result" (None while only the intent exists), "result_at", "detail"}``
        where ``detail`` is the intent's detail updated with the result's.
        Other events (``record_audit``): ``{"at", "event", "detail"}``.
        """
        e, log = enforcement_t, enforcement_log_t
        with self._tx("reading the enforcement audit") as conn:
            stops = conn.execute(
                select(e)
                .order_by(sa.func.coalesce(e.c.result_at, e.c.intent_at).desc())
                .limit(limit)
            ).all()
            events = conn.execute(
                select(log).order_by(log.c.at.desc(), log.c.seq.desc()).limit(limit)
            ).all()
        out: list[tuple[datetime, int, dict[str, Any]]] = []
        for r in stops:
            row = _stop_row(r)
            out.append((row["at"], 0, row))
        for r in events:
            out.append(
                (r.at, int(r.seq), {"at": r.at, "event": r.event, "detail": json.loads(r.detail)})
            )
        out.sort(key=lambda x: (x[0], x[1]), reverse=True)
        return [d for _, _, d in out[:limit]]

    def enforcement_row(self, instance_id: str, pod_id: str) -> dict[str, Any] | None:
        """The intent/result row of (instance_id, pod_id) as in ``audit()``, or None."""
        e = enforcement_t
        with self._tx("reading an enforcement row") as conn:
            r = conn.execute(
                select(e).where(e.c.instance_id == instance_id, e.c.pod_id == pod_id)
            ).one_or_none()
        return None if r is None else _stop_row(r)

    def open_intents(self) -> list[dict[str, Any]]:
        """Intents without a result, oldest first: a stop whose outcome was never
        recorded (a crash between the call and its result), for reconciliation.

        Each: ``{"instance_id", "pod_id", "account" (from the intent's detail,
        None if absent), "intent_at", "detail"}``.
        """
        e = enforcement_t
        with self._tx("reading open enforcement intents") as conn:
            rows = conn.execute(
                select(e).where(e.c.result.is_(None)).order_by(e.c.intent_at, e.c.instance_id)
            ).all()
        out = []
        for r in rows:
            detail = dict(json.loads(r.detail))
            account = detail.get("account")
            out.append(
                {
                    "instance_id": r.instance_id,
                    "pod_id": r.pod_id,
                    "account": account if isinstance(account, str) else None,
                    "intent_at": r.intent_at,
                    "detail": detail,
                }
            )
        return out
