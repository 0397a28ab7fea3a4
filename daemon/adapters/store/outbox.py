"""The outbox: claiming the head of each notifier's queue under owner leases.

A claim reads, per notifier with pending rows, its oldest ``per_notifier``
pending rows through a partial index on pending rows (``notifier, seq``), and
leases the leading run of them that is due and not under a live lease.
So a claim costs a handful of indexed queries however long the queues are,
and draining ``n`` rows costs O(n) queries in all (the leases renewed and the
rows marked one send at a time).

Leases are short (one send timeout plus a margin), bound to an owner token and
renewed by that owner before each send: the rows of a process that died are
free again one lease later, and a row is sent by at most one owner at a time
(``renew`` fails once another owner has claimed it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select, text

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware
from daemon.adapters.store.schema import LOCK_CLAIM, alerts_t, outbox_t
from daemon.core.model import Alert
from daemon.core.ports import DeliveryState, OutboxItem

# A loose index scan: each notifier with pending rows, one index probe each
# (a plain DISTINCT would walk every pending row).
_NOTIFIERS = text(
    """
    WITH RECURSIVE n(name) AS (
        SELECT MIN(notifier) FROM outbox WHERE status = 'pending'
        UNION ALL
        SELECT (SELECT MIN(o.notifier) FROM outbox o
                WHERE o.status = 'pending' AND o.notifier > n.name)
        FROM n WHERE n.name IS NOT NULL
    )
    SELECT name FROM n WHERE name IS NOT NULL
    """
)


def _seqs(seq: int | Sequence[int]) -> list[int]:
    return [seq] if isinstance(seq, int) else list(seq)


class OutboxMixin(StoreBase):
    """``OutboxStore`` on SQL."""

    def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_seconds: float,
        *,
        per_notifier: int = 100,
        honour_backoff: bool = True,
        exclude: Collection[str] = (),
    ) -> list[OutboxItem]:
        """Lease to ``owner`` up to ``per_notifier`` rows from the head of each
        notifier's queue (except ``exclude``), until ``now + lease_seconds``.
        Returns them ordered by seq.

        Per notifier, rows come in seq order and stop at the first pending row
        that is not due (backoff; with ``honour_backoff=False`` only an explicit
        ``Retry-After``) or is under a live lease: a notifier's later rows
        never overtake an earlier undelivered one. Permanently failed rows do
        not hold anything back. Raises ``StoreError``.
        """
        # Long on purpose: one transaction (select heads, lease, read) that must stay together.
        now = aware(now, "now")
        until = now + timedelta(seconds=lease_seconds)
        o = outbox_t
        head = (
            select(
                o.c.seq, o.c.next_attempt_at, o.c.retry_after_at, o.c.lease_until, o.c.lease_owner
            )
            .where(o.c.status == "pending", o.c.notifier == sa.bindparam("n"))
            .order_by(o.c.seq)
            .limit(per_notifier)
        )
        with self._tx("claiming outbox rows") as conn:
            if self._pg:
                # Serialise claims across replicas: each sees the others' leases.
                conn.execute(select(func.pg_advisory_xact_lock(LOCK_CLAIM)))
            names = [r[0] for r in conn.execute(_NOTIFIERS) if r[0] not in exclude]
            claimed = [
                seq
                for name in names
                for seq in _leading_due(conn.execute(head, {"n": name}), now, honour_backoff)
            ]
            if not claimed:
                return []
            conn.execute(
                o.update().where(o.c.seq.in_(claimed)).values(lease_until=until, lease_owner=owner)
            )
            rows = conn.execute(
                select(
                    o.c.seq,
                    o.c.alert_id,
                    o.c.notifier,
                    o.c.attempts,
                    o.c.next_attempt_at,
                    o.c.retry_after_at,
                    o.c.last_error,
                    alerts_t.c.kind,
                    alerts_t.c.payload,
                    alerts_t.c.created_at,
                )
                .join(alerts_t, alerts_t.c.id == o.c.alert_id)
                .where(o.c.seq.in_(claimed))
                .order_by(o.c.seq)
            ).all()
        return [_item(r) for r in rows]

    def renew(
        self, owner: str, seqs: Sequence[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        """Extend ``owner``'s leases on ``seqs`` to ``now + lease_seconds``.
        Returns the seqs still pending and held by ``owner`` (a lease that ran
        out but was not claimed by anyone else is still ours)."""
        now = aware(now, "now")
        if not seqs:
            return set()
        o = outbox_t
        with self._tx("renewing outbox leases") as conn:
            res = conn.execute(
                o.update()
                .where(o.c.seq.in_(list(seqs)), o.c.lease_owner == owner, o.c.status == "pending")
                .values(lease_until=now + timedelta(seconds=lease_seconds))
                .returning(o.c.seq)
            )
            return {int(s) for s in res.scalars()}

    def release(self, owner: str, seqs: Sequence[int]) -> None:
        """Give up ``owner``'s leases on ``seqs`` (claimed, not sent)."""
        if not seqs:
            return
        o = outbox_t
        with self._tx("releasing outbox leases") as conn:
            conn.execute(
                o.update()
                .where(o.c.seq.in_(list(seqs)), o.c.lease_owner == owner)
                .values(lease_until=None, lease_owner=None)
            )

    def mark_delivered(self, seq: int | Sequence[int], now: datetime) -> None:
        """The rows were delivered: they are never claimed again."""
        now = aware(now, "now")
        o = outbox_t
        with self._tx("marking a delivery") as conn:
            conn.execute(
                o.update()
                .where(o.c.seq.in_(_seqs(seq)), o.c.status != "delivered")
                .values(status="delivered", delivered_at=now, lease_until=None, lease_owner=None)
            )

    def mark_failed(
        self,
        seq: int | Sequence[int],
        now: datetime,
        error: str,
        *,
        permanent: bool,
        next_attempt_at: datetime,
        retry_after_at: datetime | None = None,
    ) -> None:
        """A delivery attempt failed. ``permanent``: status ``failed``, never retried;
        otherwise the rows stay pending, due again at ``next_attempt_at`` (the
        backoff) and not before ``retry_after_at`` (an explicit Retry-After,
        honoured even by a one-shot ``check``).

        A row delivered meanwhile (by a replica whose lease ran on) stays delivered.
        ``error`` is stored as given: callers pass secret-free text.
        """
        now = aware(now, "now")
        values: dict[str, Any] = {
            "attempts": outbox_t.c.attempts + 1,
            "last_error": error,
            "last_error_at": now,
            "lease_until": None,
            "lease_owner": None,
        }
        if permanent:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = aware(next_attempt_at, "next_attempt_at")
            values["retry_after_at"] = (
                None if retry_after_at is None else aware(retry_after_at, "retry_after_at")
            )
        with self._tx("marking a failed delivery") as conn:
            conn.execute(
                outbox_t.update()
                .where(outbox_t.c.seq.in_(_seqs(seq)), outbox_t.c.status == "pending")
                .values(**values)
            )

    def delivery_states(self) -> list[DeliveryState]:
        """Per notifier (sorted by name): counts by status and the latest error."""
        o = outbox_t
        counts = (
            select(
                o.c.notifier,
                func.sum(sa.case((o.c.status == "pending", 1), else_=0)).label("pending"),
                func.sum(sa.case((o.c.status == "delivered", 1), else_=0)).label("delivered"),
                func.sum(sa.case((o.c.status == "failed", 1), else_=0)).label("failed"),
            )
            .group_by(o.c.notifier)
            .order_by(o.c.notifier)
        )
        errors = (
            select(o.c.notifier, o.c.last_error, o.c.last_error_at)
            .where(o.c.last_error_at.is_not(None))
            .order_by(o.c.notifier, o.c.last_error_at.desc(), o.c.seq.desc())
        )
        with self._tx("reading delivery states") as conn:
            rows = conn.execute(counts).all()
            last: dict[str, tuple[str | None, datetime | None]] = {}
            for r in conn.execute(errors):
                last.setdefault(r.notifier, (r.last_error, r.last_error_at))
        return [
            DeliveryState(
                notifier=r.notifier,
                pending=int(r.pending or 0),
                delivered=int(r.delivered or 0),
                failed_permanent=int(r.failed or 0),
                last_error=last.get(r.notifier, (None, None))[0],
                last_error_at=last.get(r.notifier, (None, None))[1],
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        """Outbox rows not yet delivered nor failed for good."""
        with self._tx("counting pending rows") as conn:
            n = conn.execute(
                select(func.count()).select_from(outbox_t).where(outbox_t.c.status == "pending")
            ).scalar_one()
        return int(n)


def _leading_due(rows: Iterable[Any], now: datetime, honour_backoff: bool) -> list[int]:
    """The seqs of the leading run of a notifier's head rows that may be sent now."""
    out: list[int] = []
    for r in rows:
        if r.retry_after_at is not None and r.retry_after_at > now:
            break
        if honour_backoff and r.next_attempt_at > now:
            break
        if r.lease_until is not None and r.lease_until >= now:
            break  # being sent (by anyone, this owner too): wait
        out.append(int(r.seq))
    return out


def _item(r: Any) -> OutboxItem:
    return OutboxItem(
        seq=int(r.seq),
        alert=Alert(
            id=r.alert_id, kind=r.kind, notifiers=(r.notifier,), payload=json.loads(r.payload)
        ),
        notifier=r.notifier,
        attempts=int(r.attempts),
        next_attempt_at=r.next_attempt_at,
        last_error=r.last_error,
        created_at=r.created_at,
        retry_after_at=r.retry_after_at,
    )
