"""The one-shot commands ``check`` and ``test-notify`` (``status``: :mod:`daemon.app.status`).

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

from daemon.adapters.console_text import console_text
from daemon.app import heap
from daemon.app.runtime import Runtime, build_runtime
from daemon.core.model import Alert
from daemon.core.payload import alert_from_payload, test_payload
from daemon.core.ports import DeliveryError
from daemon.pipeline.cycle import CycleResult, run_cycle

EXIT_OK, EXIT_FAIL = 0, 1


def check(path: Path, env: Mapping[str, str], *, dry_run: bool, out: TextIO | None = None) -> int:
    """One cycle. 0 when it ran (alerts or not); 1 when billing was unusable."""
    out = out or sys.stdout
    rt = build_runtime(path, env, read_only=dry_run)
    heap.settle()
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
    """What one cycle did, for people, each thing once: an alert a console
    notifier printed already (a real run) is named by id only, and so is a
    billing health notice whose error the "billing API unusable" line says
    (or that line is left out when a console printed the notice)."""
    # a real run has queued the alert; the delivery lines below say how sending went
    verb = "would send to" if dry_run else "queued for"
    printed = set(consoles or ()) if not dry_run else set()
    for acc, err in result.fetch_errors.items():
        if not any(_billing_notice(a, acc) and set(a.notifiers) & printed for a in result.alerts):
            print(f"billing API unusable for account {acc}: {err}", file=out)
    if not result.alerts:
        print("no new alerts", file=out)
    for a in result.alerts:
        who = ", ".join(a.notifiers) or "nobody"
        told = any(_billing_notice(a, acc) for acc in result.fetch_errors)
        if set(a.notifiers) & printed or told:
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


def _billing_notice(alert: Alert, account: str) -> bool:
    """Whether ``alert`` is the notice that ``account``'s billing is unusable."""
    p = alert.payload
    return (
        alert.kind == "health"
        and p.get("source", "billing") == "billing"
        and p.get("state") == "unusable"
        and p.get("account") == account
    )


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
