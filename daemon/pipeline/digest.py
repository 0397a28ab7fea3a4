"""The digest job: summarize what the store holds and queue it for its notifiers.

It reads the spend the poll cycle stored (no billing fetch of its own) and
asks ``GET /pods`` only for names, which also refreshes the pod registry. Its
id is ``digest:all:<local date>``, so a second run on the same day (a
restart, another replica) sends nothing new.
"""

from __future__ import annotations

import structlog

from daemon.core.digest import summarize
from daemon.core.evaluate import evaluate
from daemon.core.model import Alert
from daemon.core.payload import alert_from_payload
from daemon.core.payload_digest import digest_payload
from daemon.pipeline.cycle import Deps
from daemon.pipeline.fetch import fetch_pods, load_spend, needed_windows
from daemon.pipeline.outbox import deliver_due

log = structlog.get_logger("daemon.digest")


def build_digest(deps: Deps) -> Alert | None:
    """The digest alert for now, or None when no notifier wants one."""
    config, store = deps.config, deps.store
    notify = config.digest_notify()
    if config.digest is None or not notify:
        return None
    now = deps.clock()
    pods = fetch_pods(config, deps.apis, store, now).pods
    data = load_spend(config, store, needed_windows(config, now), now)
    statuses = evaluate(config, data, pods, now).statuses
    digest = summarize(config, data, statuses, now, pods=pods)
    return alert_from_payload(digest_payload(digest, now), notify)


def send_digest(deps: Deps) -> list[str]:
    """Queue today's digest (once per local date) and deliver due messages.
    Returns the ids queued now (empty when today's digest was queued already)."""
    alert = build_digest(deps)
    if alert is None:
        return []
    inserted = deps.store.enqueue([alert], deps.clock())
    log.info("digest.queued" if inserted else "digest.already_sent", alert_id=alert.id)
    deliver_due(
        deps.store,
        deps.notifiers,
        deps.clock,
        observer=deps.observer,
        max_individual=deps.config.grouping.max_individual,
    )
    return inserted
