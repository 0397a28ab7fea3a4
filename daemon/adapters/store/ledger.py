"""The alert ledger (dedupe) and the enqueueing of alerts into the outbox."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, exists, select

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware, dumps, parse_time
from daemon.adapters.store.schema import alerts_t, outbox_t
from daemon.core.model import Alert, Group, fmt_num
from daemon.core.ports import LedgerEntry

_GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(Group))


@dataclass(frozen=True, slots=True)
class _LedgerFields:
    account: str
    budget: str
    group_key: str
    threshold: str
    window_start: datetime


def ledger_fields(alert: Alert, created_at: datetime) -> _LedgerFields:
    """The dedupe columns of an alert, taken from its contract payload.

    Kinds without a budget instance (digest, test, health) store ``""`` and
    ``created_at`` for what they lack.
    """
    p = alert.payload
    group = p.get("group")
    group_key = ""
    if isinstance(group, dict):
        group_key = Group(**{k: group.get(k) for k in _GROUP_FIELDS}).key
    window = p.get("window")
    window_start = parse_time(window.get("start")) if isinstance(window, dict) else None
    tp = p.get("threshold_percent")
    threshold = "" if alert.kind == "forecast" or not isinstance(tp, int | float) else fmt_num(tp)
    return _LedgerFields(
        account=str(p.get("account") or ""),
        budget=str(p.get("budget") or ""),
        group_key=group_key,
        threshold=threshold,
        window_start=window_start or created_at,
    )


class LedgerMixin(StoreBase):
    """``LedgerStore`` on SQL."""

    def prune_alerts(self, before: datetime) -> int:
        """Forget alerts created before ``before`` whose deliveries are all settled
        (delivered or failed), with their outbox rows. Pending ones are kept,
        however old. Returns the number of alerts deleted."""
        before = aware(before, "before")
        pending = (
            exists()
            .where(outbox_t.c.alert_id == alerts_t.c.id, outbox_t.c.status == "pending")
            .correlate(alerts_t)
        )
        settled_old = select(alerts_t.c.id).where(alerts_t.c.created_at < before, ~pending)
        with self._tx("pruning alerts") as conn:
            conn.execute(outbox_t.delete().where(outbox_t.c.alert_id.in_(settled_old)))
            deleted = conn.execute(
                alerts_t.delete().where(alerts_t.c.created_at < before, ~pending)
            ).rowcount
        return int(deleted or 0)

    def ledger(self, account: str, since: datetime) -> list[LedgerEntry]:
        """Every decided alert of ``account`` created at or after ``since``."""
        since = aware(since, "since")
        c = alerts_t.c
        with self._tx("reading the alert ledger") as conn:
            # not the payload: ~8,000 entries on a busy account, ~1 KB each
            rows = conn.execute(
                select(c.id, c.kind, c.account, c.budget, c.group_key, c.threshold,
                       c.window_start, c.created_at)
                .where(alerts_t.c.account == account, alerts_t.c.created_at >= since)
                .order_by(alerts_t.c.created_at, alerts_t.c.id)
            ).all()
        return [LedgerEntry(*r) for r in rows]  # the columns in LedgerEntry's order

    def enqueue(self, alerts: Sequence[Alert], now: datetime) -> list[str]:
        """Insert alerts and one outbox row per notifier, all in one transaction.

        An alert whose id exists already (another replica, a restart, a repeat
        in ``alerts``) is skipped with its outbox rows. Returns the ids actually
        inserted, in the order given. Outbox rows are numbered in that order.
        """
        now = aware(now, "now")
        with self._tx("enqueuing alerts") as conn:
            return enqueue_in(conn, self._insert, alerts, now)


def enqueue_in(
    conn: Connection, insert: Callable[[Table], Any], alerts: Sequence[Alert], now: datetime
) -> list[str]:
    """:meth:`LedgerMixin.enqueue` inside the caller's transaction (the
    enforcement audit records a stop and its announcement together)."""
    # Insert alerts in id order so two replicas enqueuing overlapping sets
    # cannot deadlock; outbox rows afterwards, in the order given.
    first: dict[str, int] = {}  # a repeat within ``alerts`` counts once
    for i, a in enumerate(alerts):
        first.setdefault(a.id, i)
    order = sorted(first.values(), key=lambda i: alerts[i].id)
    params = []
    for i in order:
        f = ledger_fields(alerts[i], now)
        params.append(
            {
                "id": alerts[i].id, "kind": alerts[i].kind, "account": f.account,
                "budget": f.budget, "group_key": f.group_key, "threshold": f.threshold,
                "window_start": f.window_start, "created_at": now,
                "payload": dumps(alerts[i].payload),
            }
        )  # fmt: skip
    if not params:
        return []
    # one statement for all (executemany with RETURNING): the ids it returns
    # are the ones really inserted; the others were decided before (a
    # replica, a restart)
    res = conn.execute(
        insert(alerts_t).on_conflict_do_nothing(index_elements=["id"]).returning(alerts_t.c.id),
        params,
    )
    got = {row[0] for row in res}
    inserted = sorted(i for i in order if alerts[i].id in got)
    rows = [
        {
            "alert_id": alerts[i].id,
            "notifier": n,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
        }
        for i in inserted
        for n in dict.fromkeys(alerts[i].notifiers)
    ]
    if rows:
        conn.execute(outbox_t.insert(), rows)
    return [alerts[i].id for i in inserted]
