"""Deliver what the outbox holds: oldest first, each notifier in order.

An alert reaches the outbox before any send (``LedgerStore.enqueue``); a row
is marked delivered only after its notifier said yes. Rows are claimed in
batches per notifier under a short lease bound to this pass's owner token and
renewed before each send, so a crash mid-send delays that notifier by at most
one lease (its send timeout plus a margin) and one poll; the message in flight
may then be sent twice, nothing is lost. Transient failures back off
exponentially; an explicit ``Retry-After`` is kept apart and always honoured,
the backoff only when ``honour_backoff`` (``check`` delivers what is pending
at once). Permanent failures are recorded once and shown by ``status``.

Notifiers that summarise (``wants_summary``) get one summary instead of
more than ``max_individual`` alerts decided in one cycle; each member is
marked delivered only once the summary went out. Ledger and ids are unchanged.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from daemon.core.model import Alert
from daemon.core.ports import DeliveryError, MetaStore, Notifier, OutboxItem, OutboxStore
from daemon.core.summary import summarize
from daemon.pipeline.observer import NullObserver, Observer

log = structlog.get_logger("daemon.outbox")

DEFAULT_SEND_TIMEOUT = 120.0  # the config's maximum notifier timeout
LEASE_MARGIN = 15.0  # a send's retries and the time to record its outcome
#: The longest lease any pass takes: a crashed owner's rows are free after this.
LEASE_SECONDS = DEFAULT_SEND_TIMEOUT + LEASE_MARGIN
PER_NOTIFIER = 100  # rows claimed per notifier and claim
MAX_PER_PASS = 5000  # rows per pass; the next pass (15 s later) takes the rest
MAX_INDIVIDUAL = 10  # config grouping.max_individual's default
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_MAX = timedelta(hours=1)
# Kinds that a summary may stand for; the others always go out on their own.
SUMMARIZABLE = frozenset({"threshold", "forecast", "enforcement", "idle", "uptime", "balance"})


class DeliveryStore(OutboxStore, MetaStore, Protocol):
    """What delivering needs: the outbox, and meta for a notifier's disabled mark."""


def disabled_key(notifier: str) -> str:
    """Meta key holding why a notifier disabled itself (empty: enabled)."""
    return f"notifier:{notifier}:disabled"


def backoff(
    attempts: int, retry_after: float | None, rand: Callable[[], float] = random.random
) -> timedelta:
    """Delay before attempt ``attempts + 1``: 15 s doubling to 1 h, with ±20 %
    jitter so replicas and notifiers do not retry in step; ``retry_after``
    (from a 429) is a floor."""
    base: timedelta = min(BACKOFF_BASE * (2 ** min(attempts, 16)), BACKOFF_MAX)
    delay: timedelta = base * (0.8 + 0.4 * rand())
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def lease_for(notifier: Notifier | None) -> float:
    """One send of ``notifier`` plus a margin (a notifier no longer configured:
    the longest send any notifier may take)."""
    timeout = DEFAULT_SEND_TIMEOUT if notifier is None else notifier.send_timeout
    if timeout <= 0:
        timeout = DEFAULT_SEND_TIMEOUT
    return float(timeout) + LEASE_MARGIN


@dataclass
class DeliveryReport:
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (alert id, notifier)
    failed: list[tuple[str, str, str, bool]] = field(default_factory=list)  # + error, permanent

    @property
    def ok(self) -> bool:
        return not self.failed


def plan_units(
    items: Sequence[OutboxItem], notifier: Notifier, max_individual: int
) -> list[list[OutboxItem]]:
    """The sends for one notifier's batch: one item each, except that a
    summarising notifier gets the summarisable alerts of one cycle (same
    ``created_at``) as one unit when there are more than ``max_individual``.
    A unit sits where its first member did."""
    if not notifier.wants_summary:
        return [[i] for i in items]
    cycles: dict[object, list[OutboxItem]] = {}
    for i in items:
        if i.alert.kind in SUMMARIZABLE:
            cycles.setdefault(i.created_at, []).append(i)
    big = {k: v for k, v in cycles.items() if len(v) > max_individual}
    units: list[list[OutboxItem]] = []
    for i in items:
        members = big.get(i.created_at) if i.alert.kind in SUMMARIZABLE else None
        if members is None:
            units.append([i])
        elif members[0] is i:
            units.append(members)
    return units


def deliver_due(
    store: DeliveryStore,
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], datetime],
    *,
    observer: Observer | None = None,
    lease_seconds: float | None = None,
    honour_backoff: bool = True,
    per_notifier: int = PER_NOTIFIER,
    max_individual: int = MAX_INDIVIDUAL,
) -> DeliveryReport:
    """Send every due outbox row once. Returns what was delivered and what failed.

    ``lease_seconds`` overrides each notifier's lease (``lease_for``).
    ``honour_backoff=False`` (``check``) sends rows that are only backing off
    at once, and everything due rather than one pass's worth; a
    ``Retry-After`` still holds. A notifier that fails transiently
    is left alone for the rest of the pass. Never raises for a notifier's
    failure; a ``StoreError`` propagates.
    """
    obs = observer or NullObserver()
    report = DeliveryReport()
    pass_ = _Pass(store, notifiers, clock, obs, report, lease_seconds, max_individual)
    claim_lease = lease_seconds or max(
        (lease_for(n) for n in notifiers.values()), default=LEASE_SECONDS
    )
    taken = 0
    # ``check`` (no backoff) delivers everything due; the daemon's pass is
    # bounded, the next one is 15 s away
    cap = MAX_PER_PASS if honour_backoff else None
    while cap is None or taken < cap:
        claimed_at = clock()
        items = store.claim_due(
            pass_.owner,
            claimed_at,
            claim_lease,
            per_notifier=per_notifier,
            honour_backoff=honour_backoff,
            exclude=pass_.stalled,
        )
        if not items:
            break
        taken += len(items)
        batches: dict[str, list[OutboxItem]] = {}
        for item in items:
            batches.setdefault(item.notifier, []).append(item)
        for name, batch in batches.items():
            pass_.batch(name, batch, claimed_at + timedelta(seconds=claim_lease))
    obs.set_pending({s.notifier: s.pending for s in store.delivery_states()})
    return report


@dataclass
class _Pass:
    """One ``deliver_due`` pass: its owner token and the notifiers that stalled."""

    store: DeliveryStore
    notifiers: Mapping[str, Notifier]
    clock: Callable[[], datetime]
    obs: Observer
    report: DeliveryReport
    lease_seconds: float | None
    max_individual: int
    owner: str = field(default_factory=lambda: secrets.token_hex(16))
    stalled: set[str] = field(default_factory=set)

    def batch(self, name: str, items: list[OutboxItem], held_until: datetime) -> None:
        """Send one notifier's claimed rows in order; stop at a transient failure
        or at a row another owner took over, releasing the rest.

        Before each send the lease must outlast that send: while the one we
        hold still does (nobody can have taken it over), no store round trip;
        otherwise it is renewed, which also tells whether it is still ours."""
        notifier = self.notifiers.get(name)
        if notifier is None:
            msg = f"notifier {name!r} is no longer configured"
            now = self.clock()
            self.store.mark_failed(
                [i.seq for i in items], now, msg, permanent=True, next_attempt_at=now
            )
            for i in items:
                self.report.failed.append((i.alert.id, name, msg, True))
            log.warning("notify.dropped", notifier=name, rows=len(items), reason=msg)
            return
        lease = self.lease_seconds or lease_for(notifier)
        one_send = timedelta(seconds=max(lease - LEASE_MARGIN, 0.0) + 1.0)
        units = plan_units(items, notifier, self.max_individual)
        for k, unit in enumerate(units):
            rest = [i.seq for u in units[k:] for i in u]
            now = self.clock()
            if now + one_send <= held_until:
                held = set(rest)
            else:
                held = self.store.renew(self.owner, rest, now, lease)
                held_until = now + timedelta(seconds=lease)
            if not all(i.seq in held for i in unit):
                # Another owner took this row over after our lease ran out: it
                # sends it, and our later rows must not overtake it.
                self.store.release(self.owner, [s for s in rest if s in held])
                log.warning("notify.lease_lost", notifier=name, seq=unit[0].seq)
                return
            if not self._send(notifier, unit):
                self.stalled.add(name)
                self.store.release(self.owner, rest[len(unit):])
                return

    def _send(self, notifier: Notifier, unit: list[OutboxItem]) -> bool:
        """Send one unit; record the outcome. Returns False on a transient failure."""
        name = unit[0].notifier
        alert: Alert = (
            unit[0].alert
            if len(unit) == 1
            else summarize([i.alert for i in unit], name, self.clock())
        )
        seqs = [i.seq for i in unit]
        try:
            notifier.send(alert)
        except DeliveryError as e:
            self._failed(notifier, unit, alert, e)
            return e.permanent
        self.store.mark_delivered(seqs, self.clock())
        self.report.delivered.extend((i.alert.id, name) for i in unit)
        self.obs.notification(name, alert.kind, ok=True, permanent=False)
        log.info(
            "notify.delivered", notifier=name, alert_id=alert.id, kind=alert.kind, rows=len(unit)
        )
        return True

    def _failed(
        self, notifier: Notifier, unit: list[OutboxItem], alert: Alert, e: DeliveryError
    ) -> None:
        name = unit[0].notifier
        now = self.clock()
        nxt = now + backoff(unit[0].attempts, e.retry_after)
        retry_at = None if e.retry_after is None else now + timedelta(seconds=e.retry_after)
        self.store.mark_failed(
            [i.seq for i in unit],
            now,
            str(e),
            permanent=e.permanent,
            next_attempt_at=nxt,
            retry_after_at=retry_at,
        )
        self.report.failed.extend((i.alert.id, name, str(e), e.permanent) for i in unit)
        self.obs.notification(name, alert.kind, ok=False, permanent=e.permanent)
        reason = notifier.disabled_reason
        if e.permanent and reason:
            # e.g. a webhook's 410 Gone: remembered until its config changes
            self.store.set_meta(disabled_key(name), reason)
        if e.permanent:
            log.error(
                "notify.failed_permanently", notifier=name, alert_id=alert.id, error=str(e)
            )
        else:
            log.warning(
                "notify.failed",
                notifier=name,
                alert_id=alert.id,
                attempt=unit[0].attempts + 1,
                retry_at=nxt.isoformat(),
                error=str(e),
            )
