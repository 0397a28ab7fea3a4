"""The one-shot commands: ``check``, ``status`` and ``test-notify``.

Each builds the runtime from the config, does its job, closes everything and
returns the contract's exit code. Output for people goes to stdout; logs go
to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from daemon.adapters.console_text import console_text
from daemon.app.runtime import Runtime, build_runtime
from daemon.core.model import InstanceStatus, instance_key, iso_z
from daemon.core.payload import alert_from_payload, test_payload
from daemon.core.ports import DeliveryError, LedgerEntry
from daemon.core.wording import group_label
from daemon.pipeline.cycle import CycleResult, run_cycle
from daemon.pipeline.enforcer import audit_line

EXIT_OK, EXIT_FAIL = 0, 1


def check(path: Path, env: Mapping[str, str], *, dry_run: bool, out: TextIO | None = None) -> int:
    """One cycle. 0 when it ran (alerts or not); 1 when billing was unusable."""
    out = out or sys.stdout
    rt = build_runtime(path, env, read_only=dry_run)
    try:
        print(api_line(rt), file=out, flush=True)
        result = run_cycle(rt.deps(), dry_run=dry_run, one_shot=True)
        consoles = {n for n, c in rt.config.notifiers.items() if c.type == "console"}
    finally:
        rt.close()
    print_cycle(result, out, dry_run=dry_run, consoles=consoles, zone=rt.config.zone)
    return EXIT_OK if result.billing_ok else EXIT_FAIL


def api_line(rt: Runtime) -> str:
    """Which RunPod API the command talks to, so a misspelt base URL shows."""
    bases = sorted({f"{api.version} at {api.base_url}" for api in rt.apis.values()})
    return f"RunPod API {', '.join(bases)}"


def print_cycle(
    result: CycleResult,
    out: TextIO,
    *,
    dry_run: bool,
    consoles: set[str] | None = None,
    zone: ZoneInfo | None = None,
) -> None:
    """What one cycle did, for people. An alert a console notifier printed
    already (a real run) is named by id only, not printed twice."""
    # a real run has queued the alert; the delivery lines below say how sending went
    verb = "would send to" if dry_run else "queued for"
    for acc, err in result.fetch_errors.items():
        print(f"billing API unusable for account {acc}: {err}", file=out)
    if not result.alerts:
        print("no new alerts", file=out)
    for a in result.alerts:
        who = ", ".join(a.notifiers) or "nobody"
        if not dry_run and consoles and set(a.notifiers) & consoles:
            print(f"{verb} {who}: {a.id}", file=out)
        else:
            print(f"{verb} {who}: {console_text(a.payload, zone or ZoneInfo('UTC'))}", file=out)
    for line in result.enforcement_log:
        print(line, file=out)
    for alert_id, notifier in result.delivery.delivered:
        print(f"delivered to {notifier}: {alert_id}", file=out)
    for alert_id, notifier, error, permanent in result.delivery.failed:
        kind = "permanently failed" if permanent else "failed, will retry"
        print(f"delivery to {notifier} {kind}: {alert_id}: {error}", file=out)


def _last_alerts(rt: Runtime, statuses: list[InstanceStatus]) -> dict[str, LedgerEntry]:
    """The newest ledger entry per instance key, for the status table."""
    if not statuses:
        return {}
    since = min(s.window.start for s in statuses)
    last: dict[str, LedgerEntry] = {}
    for acc in rt.config.accounts:
        for e in rt.store.ledger(acc.name, since):
            if e.kind not in ("threshold", "forecast"):
                continue  # enforcement and health rows have columns of their own
            key = instance_key(e.account, e.budget, e.group_key, e.window_start)
            if key not in last or e.created_at > last[key].created_at:
                last[key] = e
    return last


def status(path: Path, env: Mapping[str, str], *, out: TextIO | None = None) -> int:
    """Print every budget instance; 1 when the billing API is unusable."""
    out = out or sys.stdout
    console = Console(file=out, width=160, soft_wrap=False)
    rt = build_runtime(path, env, read_only=True)
    try:
        console.print(api_line(rt))
        # A dry cycle: fresh numbers without writing, sending or stopping anything.
        result = run_cycle(rt.deps(), dry_run=True)
        for acc, api_err in result.fetch_errors.items():
            console.print(
                f"STALE: RunPod billing unusable for account {acc} ({api_err}); "
                "the figures below are what the state held, not fresh",
                markup=False,
            )
        statuses = sorted(
            result.evaluation.statuses, key=lambda s: (s.account, s.budget, s.group.key)
        )
        last = _last_alerts(rt, statuses)
        table = Table(title="runpod-budget status", title_justify="left")
        for col in (
            "account",
            "budget",
            "group",
            "window",
            "spend",
            "limit",
            "%",
            "forecast",
            "last alert",
        ):
            table.add_column(
                col, justify="right" if col in ("spend", "limit", "%", "forecast") else "left"
            )
        for s in statuses:
            e = last.get(s.instance_key)
            last_txt = "-"
            if e is not None:
                level = f" {e.threshold}%" if e.threshold else ""
                last_txt = f"{e.kind}{level} at {iso_z(e.created_at)}"
            table.add_row(
                s.account,
                s.budget,
                group_label(s.group),
                f"{s.window.size} from {iso_z(s.window.start)}",
                f"${s.spend:,.2f}",
                f"${s.limit:,.2f}",
                f"{s.percent:.1f}",
                "-" if s.forecast is None else f"${s.forecast:,.2f}",
                last_txt,
            )
        console.print(table)
        for acc, budget, reason in result.evaluation.skipped:
            console.print(f"skipped {acc}/{budget}: {reason}")
        states = rt.store.delivery_states()
        if states:
            nt = Table(title="notifiers", title_justify="left")
            for col in ("notifier", "pending", "delivered", "failed", "last error"):
                nt.add_column(col)
            for d in states:
                err = (
                    "-"
                    if d.last_error is None
                    else f"{d.last_error} ({iso_z(d.last_error_at) if d.last_error_at else ''})"
                )
                nt.add_row(
                    d.notifier, str(d.pending), str(d.delivered), str(d.failed_permanent), err
                )
            console.print(nt)
        audit = rt.store.audit(10)
        if audit or result.enforcement_log:
            console.print("enforcement:")
            for line in result.enforcement_log:
                console.print(f"  now: {line}")
            for row in audit:
                console.print("  " + audit_line(row))
        for acc, api_err in result.fetch_errors.items():
            console.print(f"billing API unusable for account {acc}: {api_err}")
    finally:
        rt.close()
    return EXIT_OK if result.billing_ok else EXIT_FAIL


def test_notify(
    path: Path, env: Mapping[str, str], name: str | None, *, out: TextIO | None = None
) -> int:
    """Send a test message to every notifier (or ``name``), directly, not via
    the outbox: the point is to see now whether each one works."""
    out = out or sys.stdout
    rt = build_runtime(path, env)
    failed = 0
    try:
        targets = dict(rt.notifiers)
        if name is not None:
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none"
                print(f"{name}: no such notifier (configured: {known})", file=out)
                return EXIT_FAIL
            targets = {name: targets[name]}
        if not targets:
            print("no notifiers configured", file=out)
            return EXIT_FAIL
        for n, notifier in sorted(targets.items()):
            alert = alert_from_payload(test_payload(n, rt.clock()), [n])
            try:
                notifier.send(alert)
            except DeliveryError as e:
                failed += 1
                kind = "permanent" if e.permanent else "temporary"
                print(f"{n}: FAILED ({kind}): {e}", file=out)
            else:
                print(f"{n}: delivered", file=out)
    finally:
        rt.close()
    return EXIT_OK if failed == 0 else EXIT_FAIL
