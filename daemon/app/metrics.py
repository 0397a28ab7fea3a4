"""Prometheus metrics of the daemon, on a private registry.

``Metrics`` owns its own ``CollectorRegistry`` (never the global one), so tests
and the demo can make as many as they like. Every name starts with
``runpod_budget_``, carries its unit (``_usd``, ``_seconds``, ``_ratio``) and
counters end in ``_total``.

Label cardinality is bounded by the config, never by traffic:

* ``account``, ``budget``: names from the YAML.
* ``group``: ``all``, ``gpu=TYPE`` or ``pod=ID`` (the group of a budget
  instance). Only budgets with ``per: pod`` / ``per: gpu_type`` fan out, and
  only to the pods / GPU types that have spend or are running in the current
  window; ``replace_instances`` drops label sets of instances that are gone, so
  a pod deleted yesterday does not linger.
* ``window``: the configured window size (``day``, ``24h``), not its start,
  so a new day reuses the same series.
* ``endpoint``: an API path *template* (``/billing/pods``,
  ``/pods/{podId}/stop``), never a concrete path with an id in it.
* ``status``: the HTTP status code, or ``error`` when no response arrived.
* ``reason``: a short fixed token chosen by the caller (``timeout``,
  ``connect``, ``http_429``, ``budget_exceeded`` ...), never an error message.
* ``notifier``: notifier names from the YAML; ``kind``: the contract's alert kinds.
* ``job``: scheduler job names.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from daemon.app.process_metrics import register_process_metrics
from daemon.core.model import Balance, InstanceStatus

__all__ = ["CONTENT_TYPE", "PREFIX", "Metrics"]

PREFIX = "runpod_budget_"
# The classic text format generate_latest() writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ENFORCEMENT_ACTIONS = ("stopped", "would_stop", "refused", "failed")
MAX_INSTANCE_SERIES = 1000  # budget instances exported as series (closest to the limit)
_INSTANCE_LABELS = ("account", "budget", "group", "window")
_API_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CYCLE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

InstanceLabels = tuple[str, str, str, str]


class ApiRequest(Protocol):
    """What ``on_api_request`` reads (``daemon.adapters.runpod.RequestInfo``)."""

    @property
    def path(self) -> str: ...  # the template, e.g. /pods/{podId}/stop

    @property
    def status(self) -> int | None: ...

    @property
    def elapsed(self) -> float: ...

    @property
    def error(self) -> str | None: ...


def _version() -> str:
    try:
        return metadata.version("runpod-budget")
    except metadata.PackageNotFoundError:
        return "unknown"


def instance_labels(status: InstanceStatus) -> InstanceLabels:
    """(account, budget, group, window) of a budget instance."""
    return (status.account, status.budget, status.group.key, status.window.size)


class Metrics:
    """Every metric the daemon exports, with one method per kind of event."""

    def __init__(self, version: str | None = None, *, process_metrics: bool = True) -> None:
        # Long on purpose: one declaration per exported metric, in exposition order.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._instances: set[InstanceLabels] = set()
        self._forecasts: set[InstanceLabels] = set()
        self._pending: set[str] = set()

        if process_metrics:
            register_process_metrics(r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        # ------------------------------------------------------------ budgets
        self.budget_spend = Gauge(
            PREFIX + "budget_spend_usd",
            "Spend of a budget instance in its current window, USD.",
            _INSTANCE_LABELS,
            registry=r,
        )
        self.budget_limit = Gauge(
            PREFIX + "budget_limit_usd",
            "Limit of a budget instance, USD.",
            _INSTANCE_LABELS,
            registry=r,
        )
        self.budget_ratio = Gauge(
            PREFIX + "budget_used_ratio",
            "Spend divided by limit of a budget instance (1 = at the limit).",
            _INSTANCE_LABELS,
            registry=r,
        )
        self.budget_forecast = Gauge(
            PREFIX + "budget_forecast_usd",
            "Projected spend at the end of the window, USD (absent when unknown).",
            _INSTANCE_LABELS,
            registry=r,
        )
        self.budget_window_end = Gauge(
            PREFIX + "budget_window_end_timestamp_seconds",
            "End of the current window of a budget instance, Unix time.",
            _INSTANCE_LABELS,
            registry=r,
        )
        self.budget_instances = Gauge(
            PREFIX + "budget_instances",
            "Number of budget instances evaluated in the last cycle.",
            registry=r,
        )

        # ------------------------------------------------------------ RunPod API
        self.api_requests = Counter(
            PREFIX + "api_requests_total",
            "RunPod API requests by endpoint template and HTTP status ('error' when no response).",
            ("endpoint", "status"),
            registry=r,
        )
        self.api_errors = Counter(
            PREFIX + "api_errors_total",
            "Failed RunPod API requests by endpoint template and reason.",
            ("endpoint", "reason"),
            registry=r,
        )
        self.api_duration = Histogram(
            PREFIX + "api_request_duration_seconds",
            "RunPod API request duration (one HTTP attempt).",
            ("endpoint",),
            buckets=_API_BUCKETS,
            registry=r,
        )

        # ------------------------------------------------------------ notifications
        self.notifications_sent = Counter(
            PREFIX + "notifications_sent_total",
            "Notifications delivered by notifier and alert kind.",
            ("notifier", "kind"),
            registry=r,
        )
        self.notifications_failed = Counter(
            PREFIX + "notifications_failed_total",
            "Failed delivery attempts by notifier; permanent='true' will not be retried.",
            ("notifier", "permanent"),
            registry=r,
        )
        self.outbox_pending = Gauge(
            PREFIX + "outbox_pending",
            "Outbox messages waiting for delivery, by notifier.",
            ("notifier",),
            registry=r,
        )

        # ------------------------------------------------------------ enforcement
        self.enforcement_actions = Counter(
            PREFIX + "enforcement_actions_total",
            "Enforcement actions: stopped, would_stop (dry run), refused, failed.",
            ("action", "reason"),
            registry=r,
        )

        # ------------------------------------------------------------ the loop
        self.polls = Counter(
            PREFIX + "polls_total",
            "Poll cycles by result (ok, error).",
            ("result",),
            registry=r,
        )
        self.last_success = Gauge(
            PREFIX + "last_successful_poll_timestamp_seconds",
            "Unix time of the end of the last successful poll cycle (0 = none yet).",
            registry=r,
        )
        self.cycle_duration = Histogram(
            PREFIX + "cycle_duration_seconds",
            "Duration of one poll cycle (fetch, evaluate, notify, enforce).",
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        self.job_errors = Counter(
            PREFIX + "job_errors_total",
            "Scheduled jobs that raised, by job name.",
            ("job",),
            registry=r,
        )
        self.config_reloads = Counter(
            PREFIX + "config_reloads_total",
            "Configuration reloads (SIGHUP) by result (ok, error).",
            ("result",),
            registry=r,
        )
        self.build_info = Gauge(
            PREFIX + "build_info",
            "Always 1; the version label says which release runs.",
            ("version",),
            registry=r,
        )
        self.build_info.labels(version=version or _version()).set(1)

        # ------------------------------------------------------------ RunPod account
        self.api_quota_remaining = Gauge(
            PREFIX + "api_ratelimit_remaining",
            "Requests left in RunPod's rate-limit window (v2 RateLimit header), by window.",
            ("window",),
            registry=r,
        )
        self.balance_usd = Gauge(
            PREFIX + "balance_usd", "Prepaid RunPod balance.", ("account",), registry=r
        )
        self.spend_per_hour = Gauge(
            PREFIX + "spend_per_hour_usd",
            "RunPod's current spend per hour of the account.",
            ("account",),
            registry=r,
        )
        self.runway = Gauge(
            PREFIX + "runway_hours",
            "Hours until the balance reaches $0 at the current spend (absent: nothing burns).",
            ("account",),
            registry=r,
        )
        self.idle_pods = Gauge(
            PREFIX + "idle_pods",
            "Running pods idle (every GPU under the guard's level), by guard.",
            ("account", "guard"),
            registry=r,
        )
        self.idle_burn = Gauge(
            PREFIX + "idle_burn_per_hour_usd",
            "What the idle pods cost per hour, by guard.",
            ("account", "guard"),
            registry=r,
        )

        # Series that should exist from the start so rate()/absent() work.
        for result in ("ok", "error"):
            self.polls.labels(result=result)
            self.config_reloads.labels(result=result)

    # ------------------------------------------------------------------ budgets

    def set_instance(self, status: InstanceStatus) -> None:
        """Export one budget instance (kept until ``replace_instances`` drops it)."""
        labels = instance_labels(status)
        self.budget_spend.labels(*labels).set(status.spend)
        self.budget_limit.labels(*labels).set(status.limit)
        ratio = status.spend / status.limit if status.limit > 0 else 0.0
        self.budget_ratio.labels(*labels).set(ratio)
        self.budget_window_end.labels(*labels).set(status.window.end.timestamp())
        with self._lock:
            self._instances.add(labels)
            if status.forecast is not None:
                self.budget_forecast.labels(*labels).set(status.forecast)
                self._forecasts.add(labels)
            elif labels in self._forecasts:
                self.budget_forecast.remove(*labels)
                self._forecasts.discard(labels)

    def replace_instances(self, statuses: Iterable[InstanceStatus]) -> None:
        """Export exactly these instances: set each, remove every other label set.

        At most ``MAX_INSTANCE_SERIES`` instances are exported, the closest to
        their limit first: a ``per: pod`` budget on a 2,000-pod account would
        otherwise make tens of thousands of series (and Prometheus pay for
        them). ``budget_instances`` still counts all of them."""
        statuses = list(statuses)
        total = len(statuses)
        if total > MAX_INSTANCE_SERIES:
            statuses = sorted(statuses, key=lambda s: -s.percent)[:MAX_INSTANCE_SERIES]
        for s in statuses:
            self.set_instance(s)
        keep = {instance_labels(s) for s in statuses}
        with self._lock:
            for labels in self._instances - keep:
                for gauge in (
                    self.budget_spend,
                    self.budget_limit,
                    self.budget_ratio,
                    self.budget_window_end,
                ):
                    gauge.remove(*labels)
                if labels in self._forecasts:
                    self.budget_forecast.remove(*labels)
                    self._forecasts.discard(labels)
            self._instances &= keep
            self.budget_instances.set(total)

    # ------------------------------------------------------------------ RunPod API

    def observe_api(
        self,
        endpoint: str,
        status: int | str | None,
        seconds: float,
        reason: str | None = None,
    ) -> None:
        """One HTTP attempt to RunPod. ``status`` None means no response
        (timeout, connection error); ``reason`` set means it failed."""
        code = "error" if status is None else str(status)
        self.api_requests.labels(endpoint=endpoint, status=code).inc()
        self.api_duration.labels(endpoint=endpoint).observe(max(0.0, seconds))
        if reason is not None:
            self.api_errors.labels(endpoint=endpoint, reason=reason).inc()

    def on_api_request(self, info: ApiRequest) -> None:
        """``on_request`` callback of the RunPod client (one ``RequestInfo`` per
        HTTP attempt): endpoint = path template, reason = ``error``."""
        self.observe_api(info.path, info.status, info.elapsed, info.error)
        for window, left in getattr(info, "remaining", ()):
            self.api_quota_remaining.labels(window=str(window)).set(left)

    def balance(self, account: str, balance: Balance | None) -> None:
        """The balance read this cycle; None clears the account's series."""
        if balance is None:
            for g in (self.balance_usd, self.spend_per_hour, self.runway):
                with contextlib.suppress(KeyError):
                    g.remove(account)
            return
        self.balance_usd.labels(account=account).set(balance.balance)
        self.spend_per_hour.labels(account=account).set(balance.spend_per_hr)
        runway = balance.runway_hours
        if runway is None:
            with contextlib.suppress(KeyError):
                self.runway.remove(account)
        else:
            self.runway.labels(account=account).set(runway)

    def idle(self, account: str, guard: str, pods: int, burn: float) -> None:
        self.idle_pods.labels(account=account, guard=guard).set(pods)
        self.idle_burn.labels(account=account, guard=guard).set(burn)

    # ------------------------------------------------------------------ notifications

    def init_notifiers(self, names: Iterable[str]) -> None:
        """Create the zero series of each notifier so a first failure shows as an increase."""
        for name in names:
            for permanent in ("true", "false"):
                self.notifications_failed.labels(notifier=name, permanent=permanent)
            with self._lock:
                if name not in self._pending:
                    self.outbox_pending.labels(notifier=name).set(0)
                    self._pending.add(name)

    def notification(self, notifier: str, kind: str, ok: bool, permanent: bool = False) -> None:
        """One delivery attempt of an alert of ``kind`` through ``notifier``."""
        if ok:
            self.notifications_sent.labels(notifier=notifier, kind=kind).inc()
        else:
            self.notifications_failed.labels(
                notifier=notifier, permanent="true" if permanent else "false"
            ).inc()

    def set_pending(self, counts: Mapping[str, int]) -> None:
        """Outbox rows waiting per notifier; notifiers missing from ``counts`` are set to 0."""
        with self._lock:
            for name in self._pending - set(counts):
                self.outbox_pending.labels(notifier=name).set(0)
            for name, n in counts.items():
                self.outbox_pending.labels(notifier=name).set(n)
                self._pending.add(name)

    # ------------------------------------------------------------------ enforcement

    def enforcement(self, action: str, reason: str) -> None:
        """``action`` is one of stopped, would_stop, refused, failed."""
        if action not in ENFORCEMENT_ACTIONS:
            raise ValueError(f"unknown enforcement action {action!r}")
        self.enforcement_actions.labels(action=action, reason=reason).inc()

    # ------------------------------------------------------------------ the loop

    def poll(self, ok: bool, at: float, seconds: float | None = None) -> None:
        """A poll cycle ended at Unix time ``at``; ``seconds`` is its duration."""
        self.polls.labels(result="ok" if ok else "error").inc()
        if ok:
            self.last_success.set(at)
        if seconds is not None:
            self.cycle_duration.observe(max(0.0, seconds))

    def observe_cycle(self, seconds: float) -> None:
        self.cycle_duration.observe(max(0.0, seconds))

    def job_error(self, job: str) -> None:
        self.job_errors.labels(job=job).inc()

    def config_reload(self, ok: bool) -> None:
        self.config_reloads.labels(result="ok" if ok else "error").inc()

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """The Prometheus text exposition (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
