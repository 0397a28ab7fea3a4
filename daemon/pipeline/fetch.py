"""The fetch stage: bring stored spend, the pod registry and resource names up
to date for one cycle.

Which series are read, and over which windows, follows from the config
(:func:`needed_windows`); which calls that takes, at which bucket size, is the
planner's decision (:mod:`daemon.core.plan`). Each planned chunk is stored as
soon as it arrives, so a failure mid-way loses nothing that was fetched.
Nothing here knows the RunPod API version: the adapters behind ``RunPodApi``
do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

import structlog

from daemon.config.models import Config
from daemon.core import plan
from daemon.core.model import (
    TOTAL,
    Family,
    FetchRequest,
    Pod,
    SeriesKey,
    SpendPoint,
    SpendRecord,
    Window,
    iso_z,
)
from daemon.core.ports import ApiError, RegistryStore, RunPodApi, SpendStore, Store
from daemon.core.scopes import budget_family, subtracts_pods
from daemon.core.spend import SeriesView, SpendData
from daemon.core.windows import window_at

log = structlog.get_logger("daemon.fetch")

#: what the digest and ``status`` show per account: the totals and the split
DIGEST_FAMILIES: tuple[Family, ...] = ("account", "pods", "serverless", "storage")


def needed_windows(config: Config, now: datetime) -> dict[SeriesKey, list[Window]]:
    """Every series the budgets (and the digest) read, with the current
    windows that read it."""
    out: dict[SeriesKey, list[Window]] = {}
    zone = config.zone
    for budget in config.budgets:
        w = window_at(budget.window, now, zone)
        for account in config.budget_accounts(budget):
            out.setdefault(SeriesKey(account, budget_family(budget)), []).append(w)
            if subtracts_pods(budget):
                out.setdefault(SeriesKey(account, "pods"), []).append(w)
    if config.digest is not None:
        digest = [window_at(s, now, zone) for s in ("day", "week", "month")]
        for acc in config.accounts:
            for fam in DIGEST_FAMILIES:
                out.setdefault(SeriesKey(acc.name, fam), []).extend(digest)
    return {k: v for k, v in out.items() if v}


def to_points(records: Sequence[SpendRecord]) -> list[SpendPoint]:
    """Stored points of a billing answer: one per resource and bucket; an
    account record gives its total and one point per component family."""
    out: list[SpendPoint] = []
    for r in records:
        hours = r.hours
        if r.family == "account":
            out.append(SpendPoint(r.start, TOTAL, r.amount, hours))
            out.extend(SpendPoint(r.start, name, amount, hours) for name, amount in r.components)
        else:
            out.append(SpendPoint(r.start, r.resource, r.amount, hours))
    return out


@dataclass
class BillingFetch:
    """What the billing part of a cycle did."""

    errors: dict[str, ApiError] = field(default_factory=dict)  # account -> first failure
    requests: int = 0
    records: int = 0


def fetch_billing(
    config: Config,
    apis: Mapping[str, RunPodApi],
    store: SpendStore,
    needed: Mapping[SeriesKey, Sequence[Window]],
    now: datetime,
    *,
    on_answer: Callable[[str], None] | None = None,
) -> BillingFetch:
    """Run the planner's requests and store each answer (``on_answer(account)``
    after each answer, before it is stored). A series whose family
    the account's API cannot serve (v1: clusters) is not asked for; after the
    first failure of an account its other requests wait for the next cycle
    (one clear error per account and cycle). An answer over the body cap is
    asked for again in halves (down to one bucket), so an account of any size
    completes its cold start instead of asking for the same range forever."""
    held = {s: store.coverage(s) for s in needed}
    queue = list(plan.plan_fetch(needed, held, now))
    out = BillingFetch()
    while queue:
        req = queue.pop(0)
        acc = req.series.account
        if acc in out.errors:
            continue
        api = apis[acc]
        if req.series.family not in api.families:
            continue
        out.requests += 1
        try:
            records = api.billing(
                req.series.family, bucket=req.bucket, start=req.start, end=req.end
            )
        except ApiError as e:
            halves = _halves(req) if e.reason == "too_large" else None
            if halves is not None:
                log.info("billing.split", account=acc, family=req.series.family,
                         start=iso_z(req.start), end=iso_z(req.end))  # fmt: skip
                queue[:0] = halves
                continue
            out.errors[acc] = e
            log.error(
                "billing.fetch_failed",
                account=acc,
                family=req.series.family,
                status=e.status,
                reason=e.reason,
                permanent=e.permanent,
                error=str(e),
            )
            continue
        if on_answer is not None:
            on_answer(acc)
        store.replace_points(
            req.series, req.start, req.end, plan.bucket_hours(req.bucket), to_points(records)
        )
        out.records += len(records)
        log.debug(
            "billing.fetched",
            account=acc,
            family=req.series.family,
            bucket=req.bucket,
            start=iso_z(req.start),
            end=iso_z(req.end),
            records=len(records),
        )
    return out


def _halves(req: FetchRequest) -> list[FetchRequest] | None:
    """``req`` cut in two at a bucket boundary; None for a single bucket."""
    step = timedelta(hours=plan.bucket_hours(req.bucket))
    buckets = round((req.end - req.start) / step)
    if buckets < 2:
        return None
    mid = req.start + step * (buckets // 2)
    return [replace(req, end=mid), replace(req, start=mid)]


@dataclass
class PodsFetch:
    """The live pods per account (None where ``GET /pods`` failed or was skipped)."""

    pods: dict[str, Sequence[Pod] | None] = field(default_factory=dict)
    errors: dict[str, ApiError] = field(default_factory=dict)


class PodListings:
    """Every account's ``GET /pods``, sent in the background (one thread per
    account) once :meth:`start` says the account answers, so that the listing
    arrives while the rest of its billing is fetched and stored: the calls are
    independent, and on a real network each is a round trip the cycle would
    otherwise wait for in turn. A dead API still gets one call per cycle.
    Only the adapters' thread-safe calls run there; the store is written by
    the caller's thread. Use as a context manager: leaving it waits for every
    call sent."""

    def __init__(self, apis: Mapping[str, RunPodApi]) -> None:
        self._apis = apis
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pods")
        self._calls: dict[str, Future[list[Pod]]] = {}

    def start(self, account: str) -> None:
        """Send the account's listing now (once)."""
        if account not in self._calls:
            self._calls[account] = self._pool.submit(self._apis[account].list_pods)

    def result(self, account: str) -> Sequence[Pod]:
        """The account's pods (sent now if not yet); raises the call's ``ApiError``."""
        self.start(account)
        return self._calls[account].result()

    def __enter__(self) -> PodListings:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def fetch_pods(
    config: Config,
    apis: Mapping[str, RunPodApi],
    registry: RegistryStore | None,
    now: datetime,
    skip: set[str] | None = None,
    *,
    listings: PodListings | None = None,
) -> PodsFetch:
    """``GET /pods`` per account, remembered in the registry (names and GPU
    types of pods that are gone later). ``skip``: accounts whose billing
    failed this cycle (their forecasts are held back and enforcement refuses
    anyway: their listing is not used, so that an outage reads the same
    whether or not the listing got through). ``listings``: the calls already
    sent (:class:`PodListings`); without it they are made here, in turn."""
    out = PodsFetch()
    for acc in config.accounts:
        if skip and acc.name in skip:
            out.pods[acc.name] = None
            continue
        try:
            pods = (
                listings.result(acc.name) if listings is not None else apis[acc.name].list_pods()
            )
        except ApiError as e:
            out.pods[acc.name] = None
            out.errors[acc.name] = e
            log.warning("pods.fetch_failed", account=acc.name, reason=e.reason, error=str(e))
            continue
        out.pods[acc.name] = pods
        if registry is not None:
            registry.upsert_pods(acc.name, pods, now)
    return out


def fetch_names(
    config: Config,
    apis: Mapping[str, RunPodApi],
    registry: RegistryStore,
    needed: Mapping[SeriesKey, Sequence[Window]],
    now: datetime,
) -> None:
    """Refresh the names of serverless endpoints and network volumes for the
    accounts whose budgets read them. A failure keeps the names remembered."""
    named: tuple[Literal["serverless", "storage"], ...] = ("serverless", "storage")
    for acc in config.accounts:
        for fam in named:
            if SeriesKey(acc.name, fam) not in needed:
                continue
            try:
                found = apis[acc.name].list_resources(fam)
            except ApiError as e:
                log.warning(
                    "resources.fetch_failed", account=acc.name, family=fam,
                    reason=e.reason, error=str(e),
                )
                continue
            registry.upsert_resources(acc.name, found, now)


def load_spend(
    config: Config,
    store: Store,
    needed: Mapping[SeriesKey, Sequence[Window]],
    now: datetime,
) -> SpendData:
    """The stored spend of every needed series (from a day before its earliest
    window, so a day bucket starting before a window edge is seen and not
    silently lost), with the pod registry and endpoint and volume names."""
    end = now + timedelta(hours=1)
    series = {
        key: SeriesView(store.points(key, min(w.start for w in ws) - timedelta(days=1), end))
        for key, ws in needed.items()
    }
    accounts = [a.name for a in config.accounts]
    return SpendData(
        series,
        {a: store.pod_registry(a) for a in accounts},
        {
            (k.account, k.family): store.resource_names(k.account, k.family)
            for k in needed
            if k.family in ("serverless", "storage")
        },
    )
