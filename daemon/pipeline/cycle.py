"""One poll cycle: fetch → store buckets → evaluate → dedupe → outbox → enforce → deliver.

The only place where the pure core meets the adapters. Everything it needs is
passed in (``Deps``), so ``check``, ``run``, ``demo`` and the tests drive the
very same code with real adapters pointed wherever they like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from daemon.config.models import Config, parse_duration
from daemon.core import dedupe, plan, render
from daemon.core.enforce import EnforcementPlan, plan_enforcement
from daemon.core.evaluate import Evaluation, evaluate
from daemon.core.model import Alert, Finding, Pod, SeriesKey, SpendPoint, iso_z
from daemon.core.ports import ApiError, Notifier, RunPodApi, Store
from daemon.core.windows import window_at
from daemon.pipeline.enforcer import Enforcer, describe_results
from daemon.pipeline.observer import NullObserver, Observer
from daemon.pipeline.outbox import DeliveryReport, deliver_due

log = structlog.get_logger("daemon.cycle")

KEEP_POINTS = timedelta(days=40)
# Dedupe needs the ledger for the longest window (31 days); keep a quarter year
# so `status` and people can still look back, and let the tables stop growing.
KEEP_ALERTS = timedelta(days=90)


@dataclass
class Deps:
    """Everything a cycle talks to. ``apis`` has one client per account name."""

    config: Config
    store: Store
    apis: Mapping[str, RunPodApi]
    notifiers: Mapping[str, Notifier]
    clock: Callable[[], datetime]
    observer: Observer = field(default_factory=NullObserver)


@dataclass
class CycleResult:
    now: datetime
    fetch_errors: dict[str, ApiError]  # account -> why its billing could not be fetched
    evaluation: Evaluation
    alerts: list[Alert]  # newly decided this cycle (sent, or printed in a dry run)
    enforcement: EnforcementPlan
    enforcement_log: list[str]
    delivery: DeliveryReport
    requests: int

    @property
    def billing_ok(self) -> bool:
        return not self.fetch_errors


class _Overlay:
    """Points fetched in a dry run, laid over the store without writing to it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.fetched: dict[SeriesKey, list[tuple[datetime, datetime, list[SpendPoint]]]] = {}

    def put(self, series: SeriesKey, start: datetime, end: datetime, pts: list[SpendPoint]) -> None:
        self.fetched.setdefault(series, []).append((start, end, pts))

    def points(self, series: SeriesKey, start: datetime, end: datetime) -> list[SpendPoint]:
        ranges = self.fetched.get(series, [])
        stored = [
            p
            for p in self.store.points(series, start, end)
            if not any(a <= p.time < b for a, b, _ in ranges)
        ]
        fresh = [p for _, _, pts in ranges for p in pts if start <= p.time < end]
        return sorted(stored + fresh, key=lambda p: (p.time, p.group))


def needed_series(config: Config, now: datetime) -> dict[SeriesKey, datetime]:
    """Series the budgets need, plus the account-wide ones the digest reads."""
    accounts = [a.name for a in config.accounts]
    needed = dict(plan.needed_start(config, accounts, now))
    if config.digest is not None:
        # week to date can start in the previous month
        start = min(
            window_at("week", now, config.zone).start, window_at("month", now, config.zone).start
        )
        for acc in accounts:
            for grouping in ("gpuTypeId", "podId"):
                key = SeriesKey(acc, grouping)
                needed[key] = min(needed.get(key, start), start)
    return needed


def fetch(
    deps: Deps, now: datetime, overlay: _Overlay | None
) -> tuple[dict[str, ApiError], int, dict[SeriesKey, datetime]]:
    """Bring the store (or the dry-run overlay) up to date for every series.

    Returns per-account errors, the number of billing requests made, and the
    series with the earliest hour each needs.
    """
    needed = needed_series(deps.config, now)
    coverage = {s: deps.store.coverage(s) for s in needed}
    requests = plan.plan_fetch(needed, coverage, now)
    errors: dict[str, ApiError] = {}
    for req in requests:
        acc = req.series.account
        if acc in errors:
            continue  # one clear error per account and cycle, not one per series
        try:
            records = deps.apis[acc].billing_pods(
                bucket_size="hour",
                start=req.start,
                end=req.end,
                grouping=req.series.grouping,
                gpu_type_id=req.series.gpu_filter or None,
            )
        except ApiError as e:
            errors[acc] = e
            log.error(
                "billing.fetch_failed",
                account=acc,
                status=e.status,
                reason=e.reason,
                permanent=e.permanent,
                error=str(e),
            )
            continue
        pts = [
            SpendPoint(
                r.time,
                (r.pod_id if req.series.grouping == "podId" else r.gpu_type) or "unknown",
                r.amount,
            )
            for r in records
            if req.start <= r.time < req.end
        ]
        if overlay is not None:
            overlay.put(req.series, req.start, req.end, pts)
        else:
            deps.store.replace_points(req.series, req.start, req.end, pts)
        log.debug(
            "billing.fetched",
            account=acc,
            grouping=req.series.grouping,
            gpu_filter=req.series.gpu_filter,
            start=iso_z(req.start),
            end=iso_z(req.end),
            records=len(records),
        )
    return errors, len(requests), needed


def fetch_pods(deps: Deps, skip: set[str] | None = None) -> dict[str, Sequence[Pod] | None]:
    """``GET /pods`` per account; ``None`` where it failed or was skipped
    (forecasts fall back to recent hourly spend and enforcement refuses)."""
    out: dict[str, Sequence[Pod] | None] = {}
    for acc in deps.config.accounts:
        if skip and acc.name in skip:
            out[acc.name] = None
            continue
        try:
            out[acc.name] = deps.apis[acc.name].list_pods()
        except ApiError as e:
            out[acc.name] = None
            log.warning("pods.fetch_failed", account=acc.name, reason=e.reason, error=str(e))
    return out


def alerts_for(config: Config, findings: Sequence[Finding], now: datetime) -> list[Alert]:
    by_name = {b.name: b for b in config.budgets}
    return [
        render.alert_from_finding(f, config.effective_notify(by_name[f.status.budget]), now)
        for f in findings
    ]


def run_cycle(deps: Deps, *, dry_run: bool = False) -> CycleResult:
    """One full cycle. Raises only ``StoreError``; API and notifier trouble is
    reported in the result (and logged once) so the daemon keeps running.

    ``dry_run`` fetches and evaluates but writes nothing, sends nothing and
    stops nothing: the result says what would happen.
    """
    config, store = deps.config, deps.store
    now = deps.clock()
    overlay = _Overlay(store) if dry_run else None
    errors, n_requests, needed = fetch(deps, now, overlay)
    # An account whose billing failed gets no pods call: its forecasts are held
    # back and enforcement refuses on stale data anyway, and a second retry
    # deadline would only delay the cycle (and a shutdown) further.
    pods = fetch_pods(deps, skip=set(errors))

    reader = overlay.points if overlay is not None else store.points
    end = now + timedelta(hours=1)
    points = {s: reader(s, start, end) for s, start in needed.items()}
    evaluation = evaluate(config, points, pods, now)
    for acc, budget, reason in evaluation.skipped:
        log.warning("budget.skipped", account=acc, budget=budget, reason=reason)

    # A forecast from live burn on top of spend we could not fetch would claim
    # "still under the limit" without knowing it, and use up the instance's one
    # forecast alert. Thresholds from stored spend remain true crossings.
    findings = [
        f for f in evaluation.findings if not (f.kind == "forecast" and f.status.account in errors)
    ]
    since = dedupe.ledger_since(config, now)
    ledger = [e for acc in config.accounts for e in store.ledger(acc.name, since)]
    fresh = dedupe.decide(findings, ledger, now)
    alerts = alerts_for(config, fresh, now)

    data_fresh = not errors
    eplan = plan_enforcement(config, evaluation.statuses, pods, data_fresh, now)
    enforcer = Enforcer(_AccountRouter(deps.apis), store, on_event=deps.observer.enforcement)
    elog: list[str] = []
    if dry_run:
        elog = enforcer.describe(eplan)
    else:
        results = enforcer.execute(eplan, config, now)
        alerts += enforcer.alerts(results, config, now)
        elog = describe_results(results)

    health_alerts, health_updates = health_notices(config, store, errors, now)
    alerts += health_alerts

    delivery = DeliveryReport()
    if not dry_run:
        inserted = set(store.enqueue(alerts, now))
        alerts = [a for a in alerts if a.id in inserted]
        for key, value in health_updates.items():
            store.set_meta(key, value)
    decided = log.debug if dry_run else log.info  # a dry run prints them on stdout
    for a in alerts:
        decided(
            "alert.decided",
            alert_id=a.id,
            kind=a.kind,
            notifiers=list(a.notifiers),
            dry_run=dry_run,
        )
    if not dry_run:
        delivery = deliver_due(store, deps.notifiers, deps.clock, observer=deps.observer)
        store.prune_points(now - KEEP_POINTS)
        store.prune_alerts(now - KEEP_ALERTS)
    deps.observer.replace_instances(evaluation.statuses)
    return CycleResult(now, errors, evaluation, alerts, eplan, elog, delivery, n_requests)


class _AccountRouter:
    """The pods side of RunPod for the enforcer, across accounts.

    The enforcer only knows pod ids, and re-reads ``GET /pods`` right before
    every stop; that listing records which account's client owns each pod, so
    ``stop_pod`` goes to it without listing again."""

    def __init__(self, apis: Mapping[str, RunPodApi]) -> None:
        self.apis = apis
        self.owner: dict[str, RunPodApi] = {}

    def list_pods(self) -> list[Pod]:
        out: list[Pod] = []
        for api in self.apis.values():
            pods = api.list_pods()
            self.owner.update((p.id, api) for p in pods)
            out += pods
        return out

    def stop_pod(self, pod_id: str) -> None:
        api = self.owner.get(pod_id)
        if api is None:
            raise ApiError(
                f"pod {pod_id} is not listed by any account", permanent=True, reason="not_found"
            )
        api.stop_pod(pod_id)


def health_notices(
    config: Config, store: Store, errors: Mapping[str, ApiError], now: datetime
) -> tuple[list[Alert], dict[str, str]]:
    """``kind: health`` alerts: once when an account's billing API has been
    unusable for longer than ``health.after``, once when it recovers.

    Returns the alerts and the meta updates to apply only after the alerts are
    safely in the outbox: a cycle that dies in between decides the same notice
    again next time (its id, ``ACCOUNT:health:unusable:SINCE``, is stable and
    the outbox drops repeats), so no notice is lost and none is doubled. The
    outage start lives in the store, so a restart does not forget an outage.
    """
    after = parse_duration(config.health.after)
    notify = config.health_notify()
    out: list[Alert] = []
    updates: dict[str, str] = {}
    for acc in config.accounts:
        key = f"health:{acc.name}:since"
        since_s = store.get_meta(key)
        err = errors.get(acc.name)
        if err is not None:
            since = datetime.fromisoformat(since_s) if since_s else now
            if not since_s:
                updates[key] = since.isoformat()
            if now - since >= after and notify:
                payload = render.health_payload("unusable", acc.name, since, str(err), now)
                out.append(render.alert_from_payload(payload, notify))
        elif since_s:
            since = datetime.fromisoformat(since_s)
            told = render.health_id("unusable", acc.name, since)
            if notify and any(e.id == told for e in store.ledger(acc.name, since)):
                payload = render.health_payload("recovered", acc.name, since, None, now)
                out.append(render.alert_from_payload(payload, notify))
            updates[key] = ""
    return out, updates
