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


def entry_for(finding: Finding, now: datetime, alert_id: str | None = None) -> LedgerEntry:
    """The ledger entry recording that ``finding`` was decided at ``now``."""
    s = finding.status
    return LedgerEntry(
        id=alert_id if alert_id is not None else finding.alert_id,
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


_Key = tuple[str, str, str, str]  # (kind, account, budget, group key)


class _Seen:
    """The ledger indexed for :func:`decide`: by id, and per instance (kind,
    account, budget, group) with each entry's window start, creation time and
    threshold, so a finding is checked against its own instance's few
    entries, not against the whole ledger (O(findings + ledger))."""

    def __init__(self, ledger: Sequence[LedgerEntry]) -> None:
        self.ids: set[str] = set()
        self.by: dict[_Key, list[tuple[datetime, datetime, float | None]]] = {}
        for e in ledger:
            self.add(e)

    def add(self, e: LedgerEntry) -> None:
        self.ids.add(e.id)
        key = (e.kind, e.account, e.budget, e.group_key)
        self.by.setdefault(key, []).append((e.window_start, e.created_at, _threshold_of(e)))

    def covers(self, f: Finding, alert_id: str, now: datetime) -> bool:
        """Whether the ledger makes ``f`` a repeat (module doc)."""
        if alert_id in self.ids:
            return True
        s = f.status
        rows = self.by.get((f.kind, s.account, s.budget, s.group.key), ())
        length = s.window.end - s.window.start
        for window_start, created_at, prev in rows:
            if s.window.rolling:
                if created_at <= now - length:
                    continue
            elif window_start != s.window.start:
                continue
            if f.kind == "forecast":
                return True
            if prev is not None and f.threshold is not None and prev >= f.threshold:
                return True
        return False


def decide(
    findings: Sequence[Finding], ledger: Sequence[LedgerEntry], now: datetime
) -> list[Finding]:
    """The findings that are new, in their original order."""
    seen = _Seen(ledger)
    out: list[Finding] = []
    for f in findings:
        alert_id = f.alert_id
        if seen.covers(f, alert_id, now):
            continue
        out.append(f)
        seen.add(entry_for(f, now, alert_id))
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
