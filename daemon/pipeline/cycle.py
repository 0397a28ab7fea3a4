"""One poll cycle as a list of stages (Alertmanager's Stage/MultiStage):

    fetch -> evaluate -> decide -> enforce -> enqueue -> deliver

Each stage is a small function with explicit inputs and outputs; this module
only runs them in order. Everything the cycle talks to is passed in
(``Deps``), so ``check``, ``run``, ``demo`` and the tests drive the same code
with real adapters pointed wherever they like. A dry run is the same walk
over a :class:`~daemon.pipeline.dryrun.DryRunStore` with the enforcer
describing instead of stopping and nothing delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from daemon.config.models import Config
from daemon.core import dedupe
from daemon.core.enforce import EnforcementPlan, StopRequest, plan_enforcement
from daemon.core.evaluate import Evaluation, evaluate
from daemon.core.health import Failure, Source, health_notices
from daemon.core.model import Alert, Finding, Pod
from daemon.core.payload import alert_from_finding
from daemon.core.ports import ApiError, BalanceApi, Notifier, RunPodApi, Store
from daemon.core.spend import SpendData
from daemon.pipeline.dryrun import DryRunStore
from daemon.pipeline.enforcer import AccountRouter, Enforcer, describe_results
from daemon.pipeline.fetch import (
    PodListings,
    fetch_billing,
    fetch_names,
    fetch_pods,
    load_spend,
    needed_windows,
)
from daemon.pipeline.observer import NullObserver, Observer
from daemon.pipeline.outbox import DeliveryReport, deliver_due
from daemon.pipeline.watch import Watched, stage_balance, stage_guards

log = structlog.get_logger("daemon.cycle")

KEEP_POINTS = timedelta(days=40)
# Dedupe needs the ledger for the longest window (31 days); keep a quarter year
# so `status` and people can still look back, and let the tables stop growing.
KEEP_ALERTS = timedelta(days=90)


@dataclass
class Deps:
    """Everything a cycle talks to. ``apis`` has one client per account name;
    ``enforcer`` carries out stops (built by the composition root)."""

    config: Config
    store: Store
    apis: Mapping[str, RunPodApi]
    notifiers: Mapping[str, Notifier]
    clock: Callable[[], datetime]
    observer: Observer = field(default_factory=NullObserver)
    enforcer: Enforcer | None = None
    balance_apis: Mapping[str, BalanceApi] = field(default_factory=dict)

    def get_enforcer(self) -> Enforcer:
        if self.enforcer is None:
            self.enforcer = Enforcer(
                AccountRouter(self.apis), self.store, on_event=self.observer.enforcement
            )
        return self.enforcer


@dataclass
class CycleResult:
    now: datetime
    fetch_errors: dict[str, ApiError]  # account -> why its billing could not be fetched
    evaluation: Evaluation
    alerts: list[Alert]  # newly decided this cycle (queued, or printed in a dry run)
    enforcement: EnforcementPlan
    enforcement_log: list[str]
    delivery: DeliveryReport
    requests: int
    pod_errors: dict[str, ApiError] = field(default_factory=dict)
    pods: dict[str, Sequence[Pod] | None] = field(default_factory=dict)
    # what ``status`` shows besides the budgets: the spend read (also in a dry
    # run, whose store is gone after the cycle) and the guards' and balance's view
    data: SpendData = field(default_factory=SpendData)
    watched: Watched = field(default_factory=Watched)

    @property
    def billing_ok(self) -> bool:
        return not self.fetch_errors


# --------------------------------------------------------------------------- stages


@dataclass
class Fetched:
    """Output of the fetch stage."""

    data: SpendData
    pods: dict[str, Sequence[Pod] | None]
    errors: dict[str, ApiError]
    pod_errors: dict[str, ApiError]
    requests: int


def stage_fetch(deps: Deps, store: Store, now: datetime) -> Fetched:
    """Billing into the store, pods into the registry (listed meanwhile),
    then the spend the budgets read, back from the store."""
    config = deps.config
    needed = needed_windows(config, now)
    with PodListings(deps.apis) as listings:
        billing = fetch_billing(config, deps.apis, store, needed, now, on_answer=listings.start)
        pods = fetch_pods(config, deps.apis, store, now, skip=set(billing.errors),
                          listings=listings)  # fmt: skip
    fetch_names(config, deps.apis, store, needed, now)
    data = load_spend(config, store, needed, now)
    return Fetched(data, pods.pods, billing.errors, pods.errors, billing.requests)


def stage_decide(
    config: Config, store: Store, fetched: Fetched, now: datetime
) -> tuple[Evaluation, list[Alert]]:
    """Evaluate budgets and keep the findings the ledger has not seen."""
    evaluation = evaluate(config, fetched.data, fetched.pods, now)
    # A forecast from live burn on top of spend we could not fetch would claim
    # "still under the limit" without knowing it, and use up the instance's one
    # forecast alert. Thresholds from stored spend remain true crossings.
    findings = (
        [
            f
            for f in evaluation.findings
            if not (f.kind == "forecast" and f.status.account in fetched.errors)
        ]
        if fetched.errors
        else evaluation.findings  # nothing to drop: skip a pass over ~10^5 findings
    )
    since = dedupe.ledger_since(config, now)
    ledger = [e for acc in config.accounts for e in store.ledger(acc.name, since)]
    fresh = dedupe.decide(findings, ledger, now)
    return evaluation, alerts_for(config, fresh, now)


def alerts_for(config: Config, findings: Sequence[Finding], now: datetime) -> list[Alert]:
    """One alert per finding; a finding that cannot be rendered (a number
    that is not one) is logged and skipped, so it neither stops the cycle nor
    uses up its threshold."""
    by_name = {b.name: b for b in config.budgets}
    out: list[Alert] = []
    for f in findings:
        try:
            out.append(
                alert_from_finding(f, config.effective_notify(by_name[f.status.budget]), now)
            )
        except ValueError as e:
            log.error("alert.render_failed", alert_id=f.alert_id, error=str(e))
    return out


def stage_enforce(
    deps: Deps,
    evaluation: Evaluation,
    fetched: Fetched,
    requests: Sequence[StopRequest],
    now: datetime,
    *,
    dry_run: bool,
) -> tuple[EnforcementPlan, list[str], list[Alert]]:
    """Plan stops (budgets' and guards') and carry them out (or describe
    them in a dry run)."""
    plan = plan_stops(deps.config, evaluation, fetched, requests, now)
    enforcer = deps.get_enforcer()
    if dry_run:
        return plan, enforcer.describe(plan), []
    results = enforcer.reconcile(fetched.pods, deps.config, now)
    results += enforcer.execute(plan, deps.config, now)
    # An outage is told once by the health notice; refusals it causes are not
    # news of their own (they stay in the audit and the log).
    alerts = [
        a for a in enforcer.alerts(results, deps.config, now) if not _outage_refusal(a, fetched)
    ]
    return plan, describe_results(results), alerts


def plan_stops(
    config: Config,
    evaluation: Evaluation,
    fetched: Fetched,
    requests: Sequence[StopRequest],
    now: datetime,
) -> EnforcementPlan:
    """The cycle's plan. Staleness is per account: an account whose billing
    failed gets ``stale_data`` refusals, the others (fresh data) are planned
    as usual, so one account's outage does not hold back another's stops.
    Only the fresh plan can stop pods, so it alone holds the cap."""
    stale = [s for s in evaluation.statuses if s.account in fetched.errors]
    fresh = [s for s in evaluation.statuses if s.account not in fetched.errors]
    plan = plan_enforcement(config, fresh, fetched.pods, True, now, requests=requests)
    if not stale:
        return plan
    refused = plan_enforcement(config, stale, fetched.pods, False, now)
    return replace(plan, refusals=plan.refusals + refused.refusals)


def _outage_refusal(alert: Alert, fetched: Fetched) -> bool:
    """True for a refusal that only repeats this cycle's outage: stale data
    while billing fails, or no pod list while the account's ``GET /pods``
    fails (a re-check failing right before a stop is still news)."""
    reason = alert.payload.get("reason")
    if reason == "stale_data":
        return alert.payload.get("account") in fetched.errors
    return reason == "pods_unavailable" and alert.payload.get("account") in fetched.pod_errors


def stage_health(
    config: Config, store: Store, fetched: Fetched, watched: Watched, now: datetime
) -> tuple[list[Alert], dict[str, str]]:
    """``kind: health`` for every source that could not be read."""
    failures: dict[tuple[str, Source], Failure] = {}
    for acc, e in fetched.errors.items():
        failures[(acc, "billing")] = Failure(str(e), e.permanent)
    for acc, e in fetched.pod_errors.items():
        failures[(acc, "pods")] = Failure(str(e), e.permanent)
    for acc, failure in watched.failures.items():
        failures[(acc, "balance")] = failure
    sources: tuple[Source, ...] = ("billing", "pods", "balance")
    # pods are not asked for when billing failed: not a recovery of GET /pods
    unread: list[tuple[str, Source]] = [
        (acc, "pods")
        for acc, listing in fetched.pods.items()
        if listing is None and acc not in fetched.pod_errors
    ]
    return health_notices(
        [a.name for a in config.accounts],
        failures,
        store.get_meta,
        lambda acc, since: {e.id for e in store.ledger(acc, since)},
        watched=sources if config.balance is not None else sources[:2],
        after=config.health.after,
        notify=config.health_notify(),
        now=now,
        unread=unread,
    )


def stage_enqueue(
    store: Store, alerts: list[Alert], meta: Mapping[str, str], now: datetime
) -> list[Alert]:
    """Queue the alerts (ids already queued, by a restart or a replica, are
    dropped), then apply the meta updates that must follow them."""
    inserted = set(store.enqueue(alerts, now))
    for key, value in meta.items():
        store.set_meta(key, value)
    return [a for a in alerts if a.id in inserted]


# --------------------------------------------------------------------------- the cycle


def run_cycle(deps: Deps, *, dry_run: bool = False, one_shot: bool = False) -> CycleResult:
    """One full cycle. Raises only ``StoreError``; API and notifier trouble is
    reported in the result (and logged once) so the daemon keeps running.

    ``dry_run`` fetches and evaluates but writes nothing, sends nothing and
    stops nothing: the result says what would happen. ``one_shot`` (``check``)
    tries every pending delivery now, honouring only an explicit Retry-After:
    an operator runs ``check`` right after fixing a notifier.
    """
    config = deps.config
    store: Store = DryRunStore(deps.store) if dry_run else deps.store  # type: ignore[assignment]
    now = deps.clock()
    fetched = stage_fetch(deps, store, now)
    evaluation, alerts = stage_decide(config, store, fetched, now)
    watched = Watched()
    stage_guards(config, store.get_meta, fetched.pods, now, watched)
    stage_balance(config, deps.balance_apis, store.get_meta, now, watched)
    eplan, elog, enforcement_alerts = stage_enforce(
        deps, evaluation, fetched, watched.requests, now, dry_run=dry_run
    )
    health_alerts, meta = stage_health(config, store, fetched, watched, now)
    alerts = stage_enqueue(
        store,
        alerts + watched.alerts + enforcement_alerts + health_alerts,
        {**watched.meta, **meta},
        now,
    )
    decided = log.debug if dry_run else log.info  # a dry run prints them on stdout
    for a in alerts:
        decided("alert.decided", alert_id=a.id, kind=a.kind, notifiers=list(a.notifiers))
    delivery = DeliveryReport()
    if not dry_run:
        delivery = deliver_due(
            store,
            deps.notifiers,
            deps.clock,
            observer=deps.observer,
            honour_backoff=not one_shot,
            max_individual=config.grouping.max_individual,
        )
        store.prune_points(now - KEEP_POINTS)
        store.prune_alerts(now - KEEP_ALERTS)
    deps.observer.replace_instances(evaluation.statuses)
    for acc, reading in watched.balances.items():
        deps.observer.balance(acc, reading)
    for (acc, guard), (count, burn) in watched.idle.items():
        deps.observer.idle(acc, guard, count, burn)
    return CycleResult(
        now, fetched.errors, evaluation, alerts, eplan, elog, delivery, fetched.requests,
        fetched.pod_errors, fetched.pods, fetched.data, watched,
    )
