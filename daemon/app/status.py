"""``runpod-budget status``: what the account stands at, for people.

One dry cycle (nothing written, sent or stopped) gives fresh numbers; the
command prints the budgets, then the balance (burn and runway), the pods
idle or past their uptime, the spend split by resource family for today,
week and month to date, the notifiers and the enforcement audit. Times are
in the configured ``timezone``. Exit 0, or 1 when billing was unusable (the
figures are then marked STALE).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from daemon.app import heap
from daemon.app.commands import EXIT_FAIL, EXIT_OK, api_line
from daemon.app.runtime import Runtime, build_runtime
from daemon.config.models import Config, Digest
from daemon.core.digest import family_split
from daemon.core.guards import idle_book_from_json
from daemon.core.model import TOTAL, InstanceStatus, Pod, SeriesKey, instance_key
from daemon.core.ports import LedgerEntry
from daemon.core.scopes import UNKNOWN_GPU, pod_facts, pod_label
from daemon.core.spend import SpendData
from daemon.core.windows import window_at
from daemon.core.wording import group_label
from daemon.pipeline.cycle import CycleResult, run_cycle
from daemon.pipeline.enforcer import audit_line
from daemon.pipeline.watch import guard_rule, idle_key

FAMILY_LABELS = {
    "pods": "pods",
    "serverless": "serverless",
    "storage": "storage",
    "clusters": "clusters",
    "public_endpoints": "public endpoints",
}
PERIODS = (("today", "day"), ("week", "week"), ("month", "month"))


def local(t: datetime, zone: ZoneInfo) -> str:
    """``2026-11-28 21:30 CET``: a time as the user reads their clock."""
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def span(td: timedelta) -> str:
    """``3h 05m`` / ``12m`` / ``2d 4h``: a duration for a table cell."""
    minutes = max(int(td.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins:02d}m" if hours else f"{mins}m"


def overview_config(config: Config) -> Config:
    """The config with the digest's windows fetched too, so the spend split
    covers today, week and month to date whatever the budgets read. Only the
    fetch plan sees it: a dry cycle sends no digest."""
    if config.digest is not None:
        return config
    return config.model_copy(update={"digest": Digest(cron="0 0 * * *", notify=[])})


def status(path: Path, env: Mapping[str, str], *, out: TextIO | None = None) -> int:
    """Print the account's standing; 0, or 1 when the billing API is unusable."""
    out = out or sys.stdout
    console = Console(file=out, width=160, soft_wrap=False)
    rt = build_runtime(path, env, read_only=True)
    heap.settle()
    try:
        console.print(api_line(rt), markup=False)
        deps = rt.deps()
        deps.config = overview_config(rt.config)
        result = run_cycle(deps, dry_run=True)  # fresh numbers; writes, sends, stops nothing
        for acc, api_err in result.fetch_errors.items():
            console.print(
                f"STALE: RunPod billing unusable for account {acc} ({api_err}); "
                "the figures below are what the state held, not fresh",
                markup=False,
            )
        print_budgets(console, rt, result)
        print_balance(console, result)
        print_pods(console, rt.config, result, rt.store.get_meta)
        print_spend(console, rt.config, result)
        print_delivery_and_audit(console, rt, result)
        for acc, api_err in result.fetch_errors.items():
            console.print(f"billing API unusable for account {acc}: {api_err}", markup=False)
    finally:
        rt.close()
    return EXIT_OK if result.billing_ok else EXIT_FAIL


def _last_alerts(rt: Runtime, statuses: Sequence[InstanceStatus]) -> dict[str, LedgerEntry]:
    """The newest threshold/forecast ledger entry per budget instance."""
    if not statuses:
        return {}
    since = min(s.window.start for s in statuses)
    last: dict[str, LedgerEntry] = {}
    for acc in rt.config.accounts:
        for e in rt.store.ledger(acc.name, since):
            if e.kind not in ("threshold", "forecast"):
                continue  # enforcement and health rows have sections of their own
            key = instance_key(e.account, e.budget, e.group_key, e.window_start)
            if key not in last or e.created_at > last[key].created_at:
                last[key] = e
    return last


def print_budgets(console: Console, rt: Runtime, result: CycleResult) -> None:
    zone = rt.config.zone
    statuses = sorted(result.evaluation.statuses, key=lambda s: (s.account, s.budget, s.group.key))
    last = _last_alerts(rt, statuses)
    table = Table(title=f"runpod-budget status ({rt.config.timezone})", title_justify="left")
    cols = ("account", "budget", "group", "window", "spend", "limit", "%", "forecast", "last alert")
    for col in cols:
        table.add_column(
            col, justify="right" if col in ("spend", "limit", "%", "forecast") else "left"
        )
    for s in statuses:
        e = last.get(s.instance_key)
        last_txt = "-"
        if e is not None:
            level = f" {e.threshold}%" if e.threshold else ""
            last_txt = f"{e.kind}{level} at {local(e.created_at, zone)}"
        table.add_row(
            s.account, s.budget, group_label(s.group),
            f"{s.window.size} from {local(s.window.start, zone)}",
            f"${s.spend:,.2f}", f"${s.limit:,.2f}", f"{s.percent:.1f}",
            "-" if s.forecast is None else f"${s.forecast:,.2f}", last_txt,
        )  # fmt: skip
    console.print(table)
    for acc, budget, reason in result.evaluation.skipped:
        console.print(f"skipped {acc}/{budget}: {reason}", markup=False)


def print_balance(console: Console, result: CycleResult) -> None:
    """One line per account with ``balance:`` configured (none without)."""
    w = result.watched
    for acc in sorted(set(w.balances) | set(w.failures)):
        b = w.balances.get(acc)
        if b is None:
            why = w.failures.get(acc)
            console.print(
                f"balance {acc}: unknown ({why.message if why else 'not read'})", markup=False
            )
            continue
        runway = "-" if b.runway_hours is None else span(timedelta(hours=b.runway_hours))
        console.print(
            f"balance {acc}: ${b.balance:,.2f} · burn ${b.spend_per_hr:,.2f}/h · runway {runway}",
            markup=False,
        )


def print_pods(
    console: Console, config: Config, result: CycleResult, get_meta: Callable[[str], str | None]
) -> None:
    """Pods idle now (and for how long) and pods past a guard's ``uptime_over``."""
    now, zone = result.now, config.zone
    rows: list[tuple[str, ...]] = []
    for acc, listing in sorted(result.pods.items()):
        pods = {p.id: p for p in listing or () if p.running}
        text = result.watched.meta.get(idle_key(acc))
        if text is None:  # no guard ran this cycle: what the daemon last stored
            text = get_meta(idle_key(acc))
        try:
            book = idle_book_from_json(text)
        except ValueError:
            book = {}
        since: dict[str, datetime] = {}
        for states in book.values():
            for pid, st in states.items():
                if st.idle_since is not None and pid in pods:
                    since[pid] = min(since.get(pid, st.idle_since), st.idle_since)
        for pid, t in sorted(since.items(), key=lambda x: x[1]):
            p = pods[pid]
            rows.append(
                (
                    "idle",
                    acc,
                    pod_label(p.id, p.name),
                    f"{span(now - t)} (since {local(t, zone)})",
                    f"${p.cost_per_hr:,.2f}/h",
                )
            )
        rows += _over_uptime(config, acc, list(pods.values()), now, zone)
    if not rows:
        return
    table = Table(title="pods", title_justify="left")
    for col in ("state", "account", "pod", "for", "burn"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def _over_uptime(
    config: Config, acc: str, pods: Iterable[Pod], now: datetime, zone: ZoneInfo
) -> list[tuple[str, ...]]:
    """Running pods in a guard's scope that have run longer than its ``uptime_over``."""
    out: list[tuple[str, ...]] = []
    for g in config.guards:
        if g.uptime_over is None:
            continue
        rule = guard_rule(g)
        for p in pods:
            if p.started_at is None or not rule.watches(acc, p):
                continue
            if now - p.started_at > g.uptime_over:
                out.append(
                    (
                        f"up > {span(g.uptime_over)} ({g.name})",
                        acc,
                        pod_label(p.id, p.name),
                        f"{span(now - p.started_at)} (since {local(p.started_at, zone)})",
                        f"${p.cost_per_hr:,.2f}/h",
                    )
                )
    return out


def spend_rows(
    config: Config, data: SpendData, pods: Mapping[str, Sequence[Pod] | None], now: datetime
) -> list[tuple[str, list[float]]]:
    """Rows ``(label, [today, week, month])``: the total, each family, pods by
    GPU type and serverless by endpoint (indented under their family)."""
    accounts = [a.name for a in config.accounts]
    windows = [window_at(size, now, config.zone) for _, size in PERIODS]
    splits = [family_split(data, accounts, w.start, w.end) for w in windows]
    live = {a: {p.id: p for p in ps or ()} for a, ps in pods.items()}
    by_gpu: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(windows))
    by_ep: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(windows))
    for acc in accounts:
        reg = data.registry.get(acc, {})
        names = data.names.get((acc, "serverless"), {})
        for i, w in enumerate(windows):
            for pid, amount in data.view(SeriesKey(acc, "pods")).window(w.start, w.end).items():
                by_gpu[pod_facts(pid, live.get(acc, {}), reg).gpu_type or UNKNOWN_GPU][i] += amount
            for ep, amount in (
                data.view(SeriesKey(acc, "serverless")).window(w.start, w.end).items()
            ):
                by_ep[pod_label(ep, names.get(ep))][i] += amount
    rows: list[tuple[str, list[float]]] = [("total", [s[TOTAL] for s in splits])]
    subs = {"pods": by_gpu, "serverless": by_ep}
    for fam, label in FAMILY_LABELS.items():
        rows.append((label, [s.get(fam, 0.0) for s in splits]))
        for name, amounts in sorted(subs.get(fam, {}).items(), key=lambda x: -x[1][-1]):
            rows.append((f"  {name}", amounts))
    return rows


def print_spend(console: Console, config: Config, result: CycleResult) -> None:
    now = result.now.astimezone(config.zone)
    table = Table(title=f"spend to date ({now:%a %d %b %H:%M %Z})", title_justify="left")
    table.add_column("resource")
    for label, _ in PERIODS:
        table.add_column(label, justify="right")
    for label, amounts in spend_rows(config, result.data, result.pods, result.now):
        table.add_row(label, *(f"${a:,.2f}" for a in amounts))
    console.print(table)


def print_delivery_and_audit(console: Console, rt: Runtime, result: CycleResult) -> None:
    zone = rt.config.zone
    states = rt.store.delivery_states()
    if states:
        nt = Table(title="notifiers", title_justify="left")
        for col in ("notifier", "pending", "delivered", "failed", "last error"):
            nt.add_column(col)
        for d in states:
            err = (
                "-"
                if d.last_error is None
                else (f"{d.last_error} ({local(d.last_error_at, zone) if d.last_error_at else ''})")
            )
            nt.add_row(d.notifier, str(d.pending), str(d.delivered), str(d.failed_permanent), err)
        console.print(nt)
    audit = rt.store.audit(10)
    if audit or result.enforcement_log:
        console.print("enforcement:")
        for line in result.enforcement_log:
            console.print(f"  now: {line}", markup=False)
        for row in audit:
            console.print("  " + audit_line(row), markup=False)
