"""Alert dedupe: which findings become alerts, given the ledger (a pure nflog).

Calendar windows. An instance is (account, budget, group, window start). A
finding is dropped when the ledger already has

* an entry with the same alert id, or
* (threshold) a threshold entry for the same instance whose threshold is >= this
  one: a lower threshold never fires after a higher one has (spend revised
  down and up again, or 50% first seen after 100% fired), or
* (forecast) any forecast entry for the same instance: at most once per instance.

Rolling windows. The window start moves every hour, so an instance is
(account, budget, group) and a ledger entry counts while it is younger than the
window length (``entry.created_at > now - length``): a rolling instance fires a
given threshold (or a forecast) at most once per window length.

Findings of one call are checked against each other too, as if each accepted
one had been appended to the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from daemon.config.models import Config
from daemon.core.model import Finding, fmt_num
from daemon.core.ports import LedgerEntry
from daemon.core.windows import floor_hour, window_at

LEDGER_SLACK = timedelta(hours=1)


def entry_for(finding: Finding, now: datetime) -> LedgerEntry:
    """The ledger entry recording that ``finding`` was decided at ``now``."""
    s = finding.status
    return LedgerEntry(
        id=finding.alert_id,
        kind=finding.kind,
        account=s.account,
        budget=s.budget,
        group_key=s.group.key,
        threshold=fmt_num(finding.threshold) if finding.kind == "threshold" else "",
        window_start=s.window.start,
        created_at=now,
    )


def _threshold_of(entry: LedgerEntry) -> float | None:
    try:
        return float(entry.threshold)
    except ValueError:
        return None


def _covers(entry: LedgerEntry, finding: Finding, now: datetime) -> bool:
    """Whether ``entry`` makes ``finding`` a repeat."""
    s = finding.status
    if entry.id == finding.alert_id:
        return True
    if (
        entry.kind != finding.kind
        or entry.account != s.account
        or entry.budget != s.budget
        or entry.group_key != s.group.key
    ):
        return False
    if s.window.rolling:
        length = s.window.end - s.window.start
        if entry.created_at <= now - length:
            return False
    elif entry.window_start != s.window.start:
        return False
    if finding.kind == "forecast":
        return True
    prev = _threshold_of(entry)
    return prev is not None and finding.threshold is not None and prev >= finding.threshold


def decide(
    findings: Sequence[Finding], ledger: Sequence[LedgerEntry], now: datetime
) -> list[Finding]:
    """The findings that are new, in their original order."""
    seen: list[LedgerEntry] = list(ledger)
    out: list[Finding] = []
    for f in findings:
        if any(_covers(e, f, now) for e in seen):
            continue
        out.append(f)
        seen.append(entry_for(f, now))
    return out


def ledger_since(config: Config, now: datetime, slack: timedelta = LEDGER_SLACK) -> datetime:
    """How far back the ledger must be loaded for :func:`decide` at ``now``: the
    earliest current window start among the budgets (for a rolling window,
    ``now`` minus its length), minus ``slack`` (clock skew between replicas)."""
    starts: Iterable[datetime] = (
        window_at(b.window, now, config.zone).start for b in config.budgets
    )
    rolling = (now - r for b in config.budgets if (r := b.rolling) is not None)
    earliest = min([*starts, *rolling], default=floor_hour(now))
    return earliest - slack
