"""Idle and uptime guards: pure decisions over the live pod list.

No IO and no clock: the caller passes one account's pods, the idle state it
stored after the previous poll, and ``now``. Contract "Guards: idle and
long-running pods".

Idle tracking (:func:`track_idle`, one utilisation level at a time):

* Only ``RUNNING`` pods that report GPU utilisation are sampled. A pod that is
  not running, has no runtime (``gpu_util`` None) or no GPU (``()``) gives no
  sample and its state is dropped: never idle on data we do not have.
* A sample is idle when every GPU is under the level (``util < level``); a busy
  sample ends the stretch (``idle_since`` None).
* A restart (``started_at`` differs from the state's ``run_start``, to the
  second) starts over, and so does a gap: a previous sample older than
  ``max_gap`` (the daemon was down, ``GET /pods`` failed) says nothing about
  the time between. The sample after the gap may start a new stretch. A clock
  that went backwards also starts over.
* The first idle sample of a stretch sets ``idle_since`` to its own time; the
  pod is idle long enough at a sample at ``now`` with ``now - idle_since >=
  for`` (and ``> 0``): two samples ``for`` apart, nothing busy or missing between.

The stored state is an :data:`IdleBook`, ``{level key: {pod id: IdleState}}``
(:func:`track_guards`), so guards with different levels keep separate
stretches and guards with the same level share one. One book per account.

Findings (:func:`evaluate_guards`) look only at RUNNING pods in the guard's
scope. Ids are ``{account}:{guard}:pod={ID}:{run start}:idle:{idle since}``
(the same on every poll of one stretch) and
``{account}:{guard}:pod={ID}:{run start}:uptime`` (the same for one run), so
the caller's dedupe on the id sends each once. The run start is ``started_at``
as ISO-8601 UTC with ``Z`` (``unknown`` in an idle id when RunPod gave none;
such a pod gets no uptime finding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from daemon.core.model import IdleState, Pod, fmt_num, iso_z
from daemon.core.scopes import PodFacts, pod_matcher

GuardKind = Literal["idle", "uptime"]
UNKNOWN_START = "unknown"  # run start in an idle id when RunPod gave no startedAt

#: ``{level key: {pod id: IdleState}}`` for one account; see :func:`level_key`.
IdleBook = dict[str, dict[str, IdleState]]


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class IdleRule:
    """Every GPU under ``gpu_util_below`` percent for at least ``for_``."""

    gpu_util_below: float
    for_: timedelta


@dataclass(frozen=True, slots=True)
class PodMatch:
    """A guard's ``match``: keys AND together, lists OR within a key; a key left
    None does not narrow. A pod without a GPU type never matches ``gpu_type``."""

    pod_id: tuple[str, ...] | None = None
    pod_name: str | None = None  # shell glob, case-sensitive
    gpu_type: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class GuardRule:
    """One configured guard. ``accounts`` None means every account. ``stop``
    asks the enforcement planner to stop the pods it finds (``dry_run``: only
    say so)."""

    name: str
    idle: IdleRule | None = None
    uptime_over: timedelta | None = None
    match: PodMatch | None = None
    except_pods: tuple[str, ...] = ()
    accounts: tuple[str, ...] | None = None
    stop: bool = False
    dry_run: bool = True

    def watches(self, account: str, pod: Pod) -> bool:
        """Whether ``pod`` of ``account`` is in this guard's scope (running or
        not): ``accounts``, ``match``, minus ``except_pods`` by id or exact name
        (as budget enforcement protects pods)."""
        if self.accounts is not None and account not in self.accounts:
            return False
        # the same rules as a budget's pod keys (daemon.core.scopes)
        ok = pod_matcher(self.match, self.except_pods)
        return ok(pod.id, PodFacts(pod.name, pod.gpu_type))


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class GuardFinding:
    """A guard's verdict on one pod, before dedupe.

    ``gpu_util`` (highest GPU utilisation of the last sample), ``idle_since``,
    ``idle_for`` and ``idle_cost_usd`` (``cost_per_hr`` x idle hours) are set
    for ``idle``; ``uptime_hours`` for ``uptime``.
    """

    id: str
    kind: GuardKind
    account: str
    guard: str
    pod_id: str
    pod_name: str
    gpu_type: str | None
    cost_per_hr: float
    run_started_at: datetime | None
    stop: bool
    dry_run: bool
    gpu_util: float | None = None
    idle_since: datetime | None = None
    idle_for: timedelta | None = None
    idle_cost_usd: float | None = None
    uptime_hours: float | None = None


# --------------------------------------------------------------------------- idle tracking


def level_key(level: float) -> str:
    """The :data:`IdleBook` key of a utilisation level: 5.0 -> "5", 2.5 -> "2.5"."""
    return fmt_num(level)


def idle_sample(pod: Pod, level: float) -> tuple[bool, float] | None:
    """``(idle, highest GPU utilisation)`` of the pod's current sample, or None
    when the pod gives no sample (not running, no runtime, no GPU)."""
    if not pod.running or not pod.gpu_util:
        return None
    top = max(pod.gpu_util)
    return top < level, top


def _same_run(a: datetime | None, b: datetime | None) -> bool:
    # to the second: ids carry seconds, and sub-second jitter is not a restart
    if a is None or b is None:
        return a is b
    return a.replace(microsecond=0) == b.replace(microsecond=0)


def track_idle(
    prev: Mapping[str, IdleState],
    pods: Sequence[Pod],
    threshold: float,
    now: datetime,
    max_gap: timedelta,
) -> dict[str, IdleState]:
    """The idle state of every sampled pod after the sample taken at ``now``.

    ``prev`` is the result of the previous call for the same level (keyed by
    pod id); ``pods`` is the whole current ``GET /pods`` answer of the account
    (call this only when that call succeeded: a missing answer is a gap).
    Returns the new states keyed by pod id; pods that gave no sample are left
    out. Rules in the module docstring.
    """
    out: dict[str, IdleState] = {}
    for pod in pods:
        sample = idle_sample(pod, threshold)
        if sample is None:
            continue
        idle, util = sample
        old = prev.get(pod.id)
        broken = (
            old is None
            or not _same_run(old.run_start, pod.started_at)
            or now < old.last_sample_at
            or now - old.last_sample_at > max_gap
        )
        since: datetime | None
        if not idle:
            since = None
        elif broken or old is None or old.idle_since is None:
            since = now
        else:
            since = old.idle_since
        out[pod.id] = IdleState(pod.id, pod.started_at, since, now, util)
    return out


def track_guards(
    prev: Mapping[str, Mapping[str, IdleState]],
    rules: Sequence[GuardRule],
    pods: Sequence[Pod],
    now: datetime,
    max_gap: timedelta,
) -> IdleBook:
    """:func:`track_idle` for every level an idle guard of ``rules`` uses.

    ``prev`` is the account's book after the previous poll (``{}`` at first);
    levels that no rule uses any more are dropped. ``max_gap`` should be about
    two poll intervals.
    """
    levels = {r.idle.gpu_util_below for r in rules if r.idle is not None}
    return {
        level_key(lv): track_idle(prev.get(level_key(lv), {}), pods, lv, now, max_gap)
        for lv in sorted(levels)
    }


def idle_long_enough(state: IdleState, rule: IdleRule, now: datetime) -> bool:
    """Whether ``state`` shows an idle stretch of at least ``rule.for_`` ending in a
    sample at ``now`` (and longer than zero: one sample is never enough)."""
    since = state.idle_since
    return (
        since is not None
        and state.last_sample_at == now
        and since < now
        and now - since >= rule.for_
    )


# --------------------------------------------------------------------------- evaluation


def evaluate_guards(
    rules: Sequence[GuardRule],
    account: str,
    pods: Sequence[Pod],
    book: Mapping[str, Mapping[str, IdleState]],
    now: datetime,
) -> list[GuardFinding]:
    """Every idle and uptime finding of ``rules`` for ``account`` at ``now``.

    ``book`` must be the result of :func:`track_guards` for the same ``pods`` and
    ``now``. Findings are repeated on every poll while their condition holds,
    with the same id; the caller's dedupe on the id sends each once. Ordered
    by rule, then pod id, idle before uptime.
    """
    out: list[GuardFinding] = []
    for rule in rules:
        for pod in sorted(pods, key=lambda p: p.id):
            if not pod.running or not rule.watches(account, pod):
                continue
            if rule.idle is not None:
                states = book.get(level_key(rule.idle.gpu_util_below), {})
                found = _idle_finding(rule, account, pod, states.get(pod.id), now)
                out.extend([found] if found is not None else [])
            found = _uptime_finding(rule, account, pod, now)
            out.extend([found] if found is not None else [])
    return out


def run_guards(
    rules: Sequence[GuardRule],
    account: str,
    pods: Sequence[Pod],
    prev: Mapping[str, Mapping[str, IdleState]],
    now: datetime,
    *,
    max_gap: timedelta,
) -> tuple[list[GuardFinding], IdleBook]:
    """One poll of ``account``: :func:`track_guards`, then :func:`evaluate_guards`.
    Returns ``(findings, book to store for the next poll)``."""
    book = track_guards(prev, rules, pods, now, max_gap)
    return evaluate_guards(rules, account, pods, book, now), book


def _run_id(account: str, guard: str, pod: Pod) -> str:
    start = UNKNOWN_START if pod.started_at is None else iso_z(pod.started_at)
    return f"{account}:{guard}:pod={pod.id}:{start}"


def _finding(
    rule: GuardRule, account: str, pod: Pod, kind: GuardKind, id_: str, **extra: Any
) -> GuardFinding:
    return GuardFinding(
        id=id_,
        kind=kind,
        account=account,
        guard=rule.name,
        pod_id=pod.id,
        pod_name=pod.name,
        gpu_type=pod.gpu_type,
        cost_per_hr=pod.cost_per_hr,
        run_started_at=pod.started_at,
        stop=rule.stop,
        dry_run=rule.dry_run,
        **extra,
    )


def _idle_finding(
    rule: GuardRule, account: str, pod: Pod, state: IdleState | None, now: datetime
) -> GuardFinding | None:
    if rule.idle is None or state is None or not _same_run(state.run_start, pod.started_at):
        return None
    since = state.idle_since
    if since is None or not idle_long_enough(state, rule.idle, now):
        return None
    idle_for = now - since
    return _finding(
        rule,
        account,
        pod,
        "idle",
        f"{_run_id(account, rule.name, pod)}:idle:{iso_z(since)}",
        gpu_util=state.last_util,
        idle_since=since,
        idle_for=idle_for,
        idle_cost_usd=pod.cost_per_hr * idle_for.total_seconds() / 3600,
    )


def _uptime_finding(rule: GuardRule, account: str, pod: Pod, now: datetime) -> GuardFinding | None:
    over = rule.uptime_over
    if over is None or pod.started_at is None or now - pod.started_at <= over:
        return None
    return _finding(
        rule,
        account,
        pod,
        "uptime",
        f"{_run_id(account, rule.name, pod)}:uptime",
        uptime_hours=(now - pod.started_at).total_seconds() / 3600,
    )


# --------------------------------------------------------------------------- storage


def idle_book_to_json(book: Mapping[str, Mapping[str, IdleState]]) -> str:
    """The book as a JSON string for the store's meta table:
    ``{level: {pod id: [run_start, idle_since, last_sample_at, last_util]}}``,
    times in ISO-8601 with full precision and offset (or null)."""

    def row(s: IdleState) -> list[object]:
        times = (s.run_start, s.idle_since, s.last_sample_at)
        return [*(None if t is None else t.isoformat() for t in times), s.last_util]

    data = {lv: {pid: row(s) for pid, s in states.items()} for lv, states in book.items()}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def idle_book_from_json(text: str | None) -> IdleBook:
    """The book stored by :func:`idle_book_to_json`; ``{}`` for None or empty.

    Raises ValueError when ``text`` is not such a book (the caller may log it
    and start from ``{}``: that only delays idle alerts by one ``for``).
    """
    if not text:
        return {}
    try:
        return {
            str(lv): {
                str(pid): IdleState(str(pid), _time(run), _time(since), _at(last), float(util))
                for pid, (run, since, last, util) in states.items()
            }
            for lv, states in json.loads(text).items()
        }
    except (TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not an idle book: {exc}") from exc


def _time(v: object) -> datetime | None:
    return None if v is None else _at(v)


def _at(v: object) -> datetime:
    t = datetime.fromisoformat(str(v))
    if t.tzinfo is None:
        raise ValueError("idle book time without a zone")
    return t
