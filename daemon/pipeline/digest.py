"""The digest job: summarize what the store holds and queue it for its notifiers.

It reads the buckets the poll cycle stored (no billing fetch of its own) and
asks ``GET /pods`` only for names. Its id is ``digest:all:<local date>``, so a
second run on the same day (a restart, another replica) sends nothing new.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from daemon.core import render
from daemon.core.digest import summarize
from daemon.core.evaluate import evaluate
from daemon.core.model import Alert, SeriesKey
from daemon.core.scopes import pod_label
from daemon.pipeline.cycle import Deps, fetch_pods, needed_series
from daemon.pipeline.outbox import deliver_due

log = structlog.get_logger("daemon.digest")


def build_digest(deps: Deps) -> Alert | None:
    """The digest alert for now, or None when no notifier wants one."""
    config = deps.config
    notify = config.digest_notify()
    if config.digest is None or not notify:
        return None
    now = deps.clock()
    end = now + timedelta(hours=1)
    # needed_series includes each account's GPU-type and pod series from the
    # digest's earliest window on; summarize cuts the windows itself
    points = {s: deps.store.points(s, st, end) for s, st in needed_series(config, now).items()}
    accounts = [a.name for a in config.accounts]
    gpu_points = [p for a in accounts for p in points[SeriesKey(a, "gpuTypeId")]]
    pod_points = [p for a in accounts for p in points[SeriesKey(a, "podId")]]
    pods = fetch_pods(deps)
    pods_by_id = {p.id: p for ps in pods.values() if ps for p in ps}
    statuses = evaluate(config, points, pods, now).statuses
    data = summarize(
        config, gpu_points, pod_points, statuses, now, pod_label=lambda i: pod_label(i, pods_by_id)
    )
    return render.alert_from_payload(render.digest_payload(data, now), notify)


def send_digest(deps: Deps) -> list[str]:
    """Queue today's digest (once per local date) and deliver due messages.
    Returns the ids queued now (empty when today's digest was queued already)."""
    alert = build_digest(deps)
    if alert is None:
        return []
    inserted = deps.store.enqueue([alert], deps.clock())
    log.info("digest.queued" if inserted else "digest.already_sent", alert_id=alert.id)
    deliver_due(deps.store, deps.notifiers, deps.clock, observer=deps.observer)
    return inserted
