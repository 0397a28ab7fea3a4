"""The guard and balance stages: idle and long-running pods, and the prepaid
balance (contract "Guards" and "Balance").

Both decide purely in the core (:mod:`daemon.core.guards`,
:mod:`daemon.core.balance`) from state kept in the store's meta table (the
idle book, the balance arming) and hand back alerts, the meta updates that
must follow them into the store, and the guards' stop requests, which the
enforcement planner treats like a budget's (dry run, locked, the cap).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from daemon.config.models import Config, Guard, format_duration
from daemon.core.balance import BalanceArming, BalanceRule, evaluate_balance
from daemon.core.enforce import StopRequest
from daemon.core.guards import (
    GuardFinding,
    GuardRule,
    IdleRule,
    PodMatch,
    idle_book_from_json,
    idle_book_to_json,
    run_guards,
)
from daemon.core.health import Failure
from daemon.core.model import Alert, Balance, Group, InstanceStatus, Pod, Window
from daemon.core.payload import PayloadError, to_alert
from daemon.core.payload_pods import BalanceLevel, balance_payload, idle_payload, uptime_payload
from daemon.core.ports import ApiError, BalanceApi

log = structlog.get_logger("daemon.watch")

MetaReader = Callable[[str], str | None]  # the store's get_meta: the stages only read meta


def idle_key(account: str) -> str:
    return f"guards:{account}:idle"


def arming_key(account: str) -> str:
    return f"balance:{account}:arming"


def guard_rule(g: Guard) -> GuardRule:
    """The core's view of one configured guard."""
    m = g.match
    return GuardRule(
        name=g.name,
        idle=None if g.idle is None else IdleRule(g.idle.gpu_util_below, g.idle.for_),
        uptime_over=g.uptime_over,
        match=None
        if m is None
        else PodMatch(
            tuple(m.pod_id) if m.pod_id is not None else None,
            m.pod_name,
            tuple(m.gpu_type) if m.gpu_type else None,
        ),
        except_pods=tuple(g.except_pods),
        accounts=tuple(g.accounts) if g.accounts is not None else None,
        stop=g.stop is not None,
        dry_run=g.stop.dry_run if g.stop is not None else True,
    )


@dataclass
class Watched:
    """What the guard and balance stages decided this cycle."""

    alerts: list[Alert] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    requests: list[StopRequest] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)  # balance, by account
    idle: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    balances: dict[str, Balance | None] = field(default_factory=dict)


def stage_guards(
    config: Config,
    get_meta: MetaReader,
    pods: Mapping[str, Sequence[Pod] | None],
    now: datetime,
    out: Watched,
) -> None:
    """Idle and uptime findings of every account whose pods were listed. An
    account without a listing keeps its idle book: the next listing sees a
    gap and starts every stretch over (no pod is called idle on data the
    daemon does not have)."""
    if not config.guards:
        return
    guards = {g.name: g for g in config.guards}
    rules = [guard_rule(g) for g in config.guards]
    max_gap = 2 * config.poll_interval
    for acc in config.accounts:
        listing = pods.get(acc.name)
        if listing is None:
            continue
        try:
            book = idle_book_from_json(get_meta(idle_key(acc.name)))
        except ValueError as e:
            log.warning("guards.state_unreadable", account=acc.name, error=str(e))
            book = {}
        findings, book = run_guards(rules, acc.name, listing, book, now, max_gap=max_gap)
        out.meta[idle_key(acc.name)] = idle_book_to_json(book)
        by_id = {p.id: p for p in listing}
        for rule in rules:
            idle = [f for f in findings if f.guard == rule.name and f.kind == "idle"]
            out.idle[(acc.name, rule.name)] = (len(idle), sum(f.cost_per_hr for f in idle))
        for f in findings:
            pod = by_id[f.pod_id]
            guard = guards[f.guard]
            alert = _guard_alert(config, guard, f, pod, now)
            if alert is None:
                continue
            out.alerts.append(alert)
            if f.stop:
                out.requests.append(_stop_request(f, pod, now))


def _guard_alert(
    config: Config, guard: Guard, f: GuardFinding, pod: Pod, now: datetime
) -> Alert | None:
    try:
        if f.kind == "idle":
            assert f.idle_since is not None and f.gpu_util is not None
            record = idle_payload(
                account=f.account, guard=f.guard, pod=pod, gpu_util=f.gpu_util,
                idle_since=f.idle_since, fired_at=now,
            )  # fmt: skip
            return to_alert(record, config.effective_notify(guard))
        over = format_duration(guard.uptime_over) if guard.uptime_over else ""
        up = uptime_payload(
            account=f.account, guard=f.guard, pod=pod, uptime_over=over, fired_at=now
        )
        return to_alert(up, config.effective_notify(guard))
    except (PayloadError, ValueError) as e:
        log.error("alert.render_failed", alert_id=f.id, error=str(e))
        return None


def _stop_request(f: GuardFinding, pod: Pod, now: datetime) -> StopRequest:
    """A guard's stop as the planner sees it: the budget instance is the
    guard on this pod's run (so a stop is attempted once per run)."""
    start = pod.started_at or now
    hours = max((now - start).total_seconds() / 3600, 0.0)
    status = InstanceStatus(
        account=f.account,
        budget=f.guard,
        group=Group(pod_id=pod.id, pod_name=pod.name or None, gpu_type=pod.gpu_type),
        window=Window(size=f.kind, start=start, end=now, rolling=False),
        spend=round(pod.cost_per_hr * hours, 2),
        limit=0.0,
        forecast=None,
        thresholds=(),
        forecast_enabled=False,
    )
    return StopRequest(f.account, status.instance_key, pod.id, f.dry_run, status)


def stage_balance(
    config: Config,
    apis: Mapping[str, BalanceApi],
    get_meta: MetaReader,
    now: datetime,
    out: Watched,
) -> None:
    """Read each account's balance (GraphQL ``myself``) once and decide
    ``kind: balance`` alerts. A failed read is a ``balance`` health failure;
    every other check of the cycle goes on."""
    section = config.balance
    if section is None:
        return
    rule = BalanceRule(
        below_usd=tuple(section.below_usd or ()),
        runway_below=tuple(format_duration(td) for td in section.runway_below or ()),
    )
    notify = config.balance_notify()
    step = max(int(config.poll_interval.total_seconds()), 1)
    slot = datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)
    for acc in config.accounts:
        api = apis.get(acc.name)
        if api is None:
            continue
        try:
            balance = api.balance()
        except ApiError as e:
            out.failures[acc.name] = Failure(str(e), e.permanent)
            out.balances[acc.name] = None
            log.warning("balance.fetch_failed", account=acc.name, reason=e.reason, error=str(e))
            continue
        out.balances[acc.name] = balance
        try:
            armed = BalanceArming.from_json(get_meta(arming_key(acc.name)))
        except ValueError as e:
            log.warning("balance.state_unreadable", account=acc.name, error=str(e))
            armed = BalanceArming()
        # A crossing is dated by the poll slot it was seen in, not by this
        # process's clock: replicas deciding the same crossing a moment apart
        # then name it with the same id, and the outbox keeps one.
        findings, armed = evaluate_balance(rule, acc.name, balance, armed, slot)
        out.meta[arming_key(acc.name)] = armed.to_json()
        for f in findings:
            level = BalanceLevel(f.level.type, f.level.value)
            try:
                record = balance_payload(
                    account=acc.name, balance=balance, level=level, crossed_at=f.crossed_at,
                    fired_at=now,
                )  # fmt: skip
            except (PayloadError, ValueError) as e:
                log.error("alert.render_failed", alert_id=f.id, error=str(e))
                continue
            out.alerts.append(to_alert(record, notify))
