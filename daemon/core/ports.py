"""The small interfaces the pipeline talks to, and the one error type per boundary.

Adapters (RunPod client, state store, notifiers) implement these Protocols;
the pipeline receives instances and never imports an adapter module by path,
so tests pass real adapters pointed at loopback servers, or a fake that obeys
the same contract when a test is about one unit's logic.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

from daemon.core.model import (
    Alert,
    Balance,
    BucketLen,
    Family,
    Pod,
    PodInfo,
    Resource,
    SeriesKey,
    SpendPoint,
    SpendRecord,
)

# --------------------------------------------------------------------------- errors


class BoundaryError(Exception):
    """Base of the per-boundary errors. ``permanent`` says a retry cannot help.

    Messages never contain secrets (API keys, tokens, webhook URLs or secrets).
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class ApiError(BoundaryError):
    """RunPod API call failed after the client's own retries.

    ``status`` is the last HTTP status (None for transport errors and bad bodies);
    ``reason`` is a short machine word: ``auth``, ``forbidden``, ``rate_limited``,
    ``server``, ``timeout``, ``transport``, ``bad_body``, ``too_large``,
    ``bad_record``, ``not_found``, ``client``, ``gone`` (410: the API version
    was retired), ``conflict`` (409: the action is not valid for the pod now).
    """

    def __init__(
        self, message: str, *, permanent: bool, status: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.status = status
        self.reason = reason


class DeliveryError(BoundaryError):
    """A notifier could not deliver. ``permanent`` errors are not retried
    (bad token, unknown channel, 410 Gone); others are retried from the outbox."""

    def __init__(
        self, message: str, *, permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.retry_after = retry_after

    @classmethod
    def of(
        cls,
        kind: str,
        name: str,
        what: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
    ) -> DeliveryError:
        """``<kind> notifier '<name>': permanent|transient failure: <what>``:
        one message shape for every notifier (``what`` must be secret-free)."""
        how = "permanent" if permanent else "transient"
        return cls(
            f"{kind} notifier {name!r}: {how} failure: {what}",
            permanent=permanent,
            retry_after=retry_after,
        )


class StoreError(BoundaryError):
    """The state store is unusable: corrupt, newer schema than this build knows,
    unreachable. ``permanent`` for corrupt/newer-schema (refuse to start)."""


# --------------------------------------------------------------------------- RunPod


class RunPodApi(Protocol):
    """RunPod, whichever REST API version speaks (v1 or v2): the port the
    pipeline uses. Nothing above the adapters knows the version; ``version``
    and ``base_url`` are for messages and ``status`` only.

    Every method returns parsed, validated data or raises ``ApiError``. A 410
    Gone raises ``ApiError(reason="gone", permanent=True)`` whose message says
    that RunPod retired this API version and how to switch.
    """

    version: str
    base_url: str
    #: the billing families this API can serve (v1 has no clusters or public endpoints)
    families: frozenset[str]

    def billing(
        self, family: Family, *, bucket: BucketLen, start: datetime, end: datetime
    ) -> list[SpendRecord]:
        """Spend of ``family`` in buckets of ``bucket`` with ``start <= bucket start < end``.

        ``start``/``end`` are aligned to ``bucket``. Records outside that range,
        duplicates (same resource and bucket), non-numeric or implausible
        amounts and times without a zone are refused with ``ApiError(reason=
        "bad_record")``; nothing of a refused answer is returned."""
        ...

    def list_pods(self) -> list[Pod]: ...

    def list_resources(self, family: Literal["serverless", "storage"]) -> list[Resource]:
        """Serverless endpoints or network volumes with their names."""
        ...

    def stop_pod(self, pod_id: str) -> None:
        """Stop one pod. A pod that can no longer be stopped (v2 409) raises
        ``ApiError(reason="conflict", permanent=True)``; it is not retried."""
        ...


class BalanceApi(Protocol):
    """RunPod's GraphQL ``myself`` query: the prepaid balance. Raises ``ApiError``
    (``reason="gone"`` on 410)."""

    def balance(self) -> Balance: ...


# --------------------------------------------------------------------------- notifiers


class Notifier(Protocol):
    """One configured destination (Slack, webhook, console).

    Built with the display zone of the times in its messages. ``send``
    returns None on success; raises ``DeliveryError(permanent=...,
    retry_after=...)``. It must be idempotent-friendly: the alert's ``id`` is
    stable across retries.
    """

    name: str

    @property
    def wants_summary(self) -> bool:
        """True when people read it (Slack, console): a cycle with more than
        ``grouping.max_individual`` alerts gets one ``kind: summary`` alert;
        False for machines (webhooks), which read one event per alert."""
        ...

    @property
    def send_timeout(self) -> float:
        """Seconds one ``send`` may take at most, its own retries included: the
        outbox leases a row for this long (plus a margin), so a crash mid-send
        holds the notifier back by about this much, no longer."""
        ...

    @property
    def disabled_reason(self) -> str | None:
        """Why the notifier disabled itself (a webhook's 410 Gone), else None.
        The caller persists it until the notifier's config changes."""
        ...

    def send(self, alert: Alert) -> None: ...

    def close(self) -> None:
        """Release held connections; sending after ``close`` is not supported."""
        ...


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Coverage:
    """A range of a series held in the store, ``[start, end)``, at one resolution:
    ``hours`` is 1 (hour buckets) or 24 (whole UTC days)."""

    start: datetime
    end: datetime
    hours: int = 1


class LedgerEntry(NamedTuple):
    """An alert already decided (pending or delivered) for dedupe. A named
    tuple: each poll reads the current windows' ledger, ~10,000 entries on a
    busy 2,000-pod account."""

    id: str
    kind: str
    account: str
    budget: str
    group_key: str
    threshold: str  # fmt_num of the threshold, "" for forecast
    window_start: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One (alert, notifier) delivery, oldest first.

    ``created_at`` is when the alert was decided (one cycle's alerts share it);
    ``retry_after_at`` is the notifier's explicit ``Retry-After`` deadline, kept
    apart from the backoff's ``next_attempt_at``.
    """

    seq: int
    alert: Alert
    notifier: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime | None = None
    retry_after_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Per-notifier health for ``status``: permanent failures are shown there."""

    notifier: str
    pending: int
    delivered: int
    failed_permanent: int
    last_error: str | None
    last_error_at: datetime | None


class SpendStore(Protocol):
    """Cached billing points per series, with coverage at hour or day resolution.
    Every method is one transaction; raises ``StoreError``."""

    def coverage(self, series: SeriesKey) -> list[Coverage]:
        """The ranges held for ``series``, sorted by start; adjacent segments of
        the same resolution are merged."""
        ...

    def replace_points(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        hours: int,
        points: Sequence[SpendPoint],
    ) -> None:
        """Atomically replace every point of ``series`` whose time is in
        ``[start, end)`` (of either resolution) by ``points`` and record
        ``[start, end)`` as held at ``hours`` resolution (cutting coverage of
        the other resolution there). A point outside the range: ``ValueError``."""
        ...

    def points(self, series: SeriesKey, start: datetime, end: datetime) -> list[SpendPoint]:
        """Points with ``start <= time < end``, sorted by time, then resource."""
        ...

    def prune_points(self, before: datetime) -> int:
        """Delete points older than ``before`` and trim coverage; returns how many."""
        ...


class RegistryStore(Protocol):
    """Pods and named resources as last seen, kept after RunPod stops listing them."""

    def upsert_pods(self, account: str, pods: Sequence[Pod], now: datetime) -> None: ...

    def pod_registry(self, account: str) -> dict[str, PodInfo]: ...

    def upsert_resources(
        self, account: str, resources: Sequence[Resource], now: datetime
    ) -> None: ...

    def resource_names(self, account: str, family: str) -> dict[str, str]: ...


class LedgerStore(Protocol):
    """The alert ledger: every decided alert, for dedupe."""

    def prune_alerts(self, before: datetime) -> int:
        """Forget settled alerts created before ``before``; returns how many."""
        ...

    def ledger(self, account: str, since: datetime) -> list[LedgerEntry]:
        """Every decided alert created at or after ``since`` (for dedupe)."""
        ...

    def enqueue(self, alerts: Sequence[Alert], now: datetime) -> list[str]:
        """Insert alerts and one outbox row per notifier, atomically.
        An alert whose id exists already is skipped (another replica, a restart).
        Returns the ids actually inserted."""
        ...


class OutboxStore(Protocol):
    """Deliveries owed: claimed under short, owner-bound, renewable leases."""

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
        """Lease up to ``per_notifier`` due rows from the head of each notifier's
        queue to ``owner`` (ordered by seq). A notifier's rows wait behind an
        earlier pending row that is not due or under a live lease.
        ``honour_backoff=False`` ignores ``next_attempt_at`` (not ``Retry-After``)."""
        ...

    def renew(
        self, owner: str, seqs: Sequence[int], now: datetime, lease_seconds: float
    ) -> set[int]:
        """Extend ``owner``'s leases on ``seqs``; returns the seqs still held."""
        ...

    def release(self, owner: str, seqs: Sequence[int]) -> None:
        """Give up ``owner``'s leases on ``seqs`` (unsent rows)."""
        ...

    def mark_delivered(self, seq: int | Sequence[int], now: datetime) -> None: ...

    def mark_failed(
        self,
        seq: int | Sequence[int],
        now: datetime,
        error: str,
        *,
        permanent: bool,
        next_attempt_at: datetime,
        retry_after_at: datetime | None = None,
    ) -> None: ...

    def delivery_states(self) -> list[DeliveryState]: ...

    def pending_count(self) -> int: ...


class MetaStore(Protocol):
    """Key/value for small daemon state (health notices, digest marks, config hash)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


class AuditStore(Protocol):
    """Enforcement intents, results and the audit log."""

    def record_intent(
        self, instance_id: str, pod_id: str, now: datetime, detail: dict[str, Any]
    ) -> bool:
        """Write the intent to stop ``pod_id`` for ``instance_id`` before the call.
        Returns False if an intent for (instance_id, pod_id) exists already
        (never stop twice, even after a crash between intent and result)."""
        ...

    def record_result(
        self,
        instance_id: str,
        pod_id: str,
        now: datetime,
        result: str,
        detail: dict[str, Any],
        *,
        alerts: Sequence[Alert] = (),
    ) -> None:
        """Record a stop's outcome and queue ``alerts`` (its announcement) in
        one transaction: a crash keeps both or neither."""
        ...

    def record_audit(self, now: datetime, event: str, detail: dict[str, Any]) -> None:
        """Append an enforcement event (a refusal, a dry run) to the audit."""
        ...

    def enforcement_row(self, instance_id: str, pod_id: str) -> dict[str, Any] | None:
        """The intent/result row of (instance_id, pod_id), or None."""
        ...

    def open_intents(self) -> list[dict[str, Any]]:
        """Intents without a result (a crash between a stop call and its result)."""
        ...

    def audit(self, limit: int = 50) -> list[dict[str, Any]]: ...


class Store(
    SpendStore,
    RegistryStore,
    LedgerStore,
    OutboxStore,
    MetaStore,
    AuditStore,
    Protocol,
):
    """Everything durable, for the composition root; parts take the small
    Protocol they use. Raises ``StoreError``."""

    def close(self) -> None: ...
