"""Deliver what the outbox holds: oldest first, each notifier in order.

An alert reaches the outbox before any send (``Store.enqueue``); a row is
marked delivered only after its notifier said yes. A crash between a
successful send and ``mark_delivered`` leaves a leased row that becomes due
again when the lease runs out: that one message may be sent twice, nothing is
lost. Transient failures back off exponentially (honouring ``retry_after``);
permanent ones are recorded once and shown by ``status``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from daemon.core.ports import DeliveryError, Notifier, Store
from daemon.pipeline.observer import NullObserver, Observer

log = structlog.get_logger("daemon.outbox")

# One send at worst: a 120 s timeout (the config's maximum) with slack-sdk's two
# quick in-process retries. A crash mid-send delays that notifier by this much.
LEASE_SECONDS = 600.0
MAX_PER_PASS = 1000  # rows per pass; the next pass (15 s later) takes the rest
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_MAX = timedelta(hours=1)


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


@dataclass
class DeliveryReport:
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (alert id, notifier)
    failed: list[tuple[str, str, str, bool]] = field(default_factory=list)  # + error, permanent

    @property
    def ok(self) -> bool:
        return not self.failed


def deliver_due(
    store: Store,
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], datetime],
    *,
    observer: Observer | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> DeliveryReport:
    """Send every due outbox row once. Returns what was delivered and what failed.

    Rows are claimed one at a time, so a lease only has to outlast one send
    (a slow batch cannot outrun its leases and let a replica send the same
    rows). After a transient failure the store holds back that notifier's later
    rows until the failed one is due again, which keeps each notifier in order.
    Never raises for a notifier's failure; a ``StoreError`` propagates.
    """
    obs = observer or NullObserver()
    report = DeliveryReport()
    for _ in range(MAX_PER_PASS):
        claimed = store.claim_due(clock(), lease_seconds, limit=1)
        if not claimed:
            break
        item = claimed[0]
        notifier = notifiers.get(item.notifier)
        if notifier is None:
            msg = f"notifier {item.notifier!r} is no longer configured"
            store.mark_failed(item.seq, clock(), msg, permanent=True, next_attempt_at=clock())
            report.failed.append((item.alert.id, item.notifier, msg, True))
            log.warning(
                "notify.dropped", notifier=item.notifier, alert_id=item.alert.id, reason=msg
            )
            continue
        try:
            notifier.send(item.alert)
        except DeliveryError as e:
            now = clock()
            nxt = now + backoff(item.attempts, e.retry_after)
            store.mark_failed(item.seq, now, str(e), permanent=e.permanent, next_attempt_at=nxt)
            report.failed.append((item.alert.id, item.notifier, str(e), e.permanent))
            obs.notification(item.notifier, item.alert.kind, ok=False, permanent=e.permanent)
            reason = getattr(notifier, "disabled_reason", None)
            if e.permanent and reason:
                # e.g. a webhook's 410 Gone: remembered until its config changes
                store.set_meta(disabled_key(item.notifier), reason)
            if e.permanent:
                log.error(
                    "notify.failed_permanently",
                    notifier=item.notifier,
                    alert_id=item.alert.id,
                    error=str(e),
                )
            else:
                log.warning(
                    "notify.failed",
                    notifier=item.notifier,
                    alert_id=item.alert.id,
                    attempt=item.attempts + 1,
                    retry_at=nxt.isoformat(),
                    error=str(e),
                )
            continue
        store.mark_delivered(item.seq, clock())
        report.delivered.append((item.alert.id, item.notifier))
        obs.notification(item.notifier, item.alert.kind, ok=True, permanent=False)
        log.info(
            "notify.delivered", notifier=item.notifier, alert_id=item.alert.id, kind=item.alert.kind
        )
    obs.set_pending({s.notifier: s.pending for s in store.delivery_states()})
    return report
