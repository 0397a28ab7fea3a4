"""``kind: health`` notices, decided purely: once when a data source (billing,
pods, balance) of an account has been unusable for longer than
``health.after``, once when it recovers (contract "Balance": ``kind: health``
covers any data source the daemon cannot read).

The outage start of each source lives in the store's meta table, so a
restart does not forget an outage. :func:`health_notices` returns the alerts
and the meta updates to apply only after the alerts are safely in the
outbox: a cycle that dies in between decides the same notice again next time
(its id, ``ACCOUNT:health:unusable:SINCE`` for billing and
``ACCOUNT:health:SOURCE:unusable:SINCE`` for the others, is stable and the
outbox drops repeats), so no notice is lost and none is doubled.

A permanent failure (RunPod retired the API: 410; a key that no longer
works) is told at once rather than after ``health.after``: waiting cannot fix
it and a person has to act.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from daemon.core import payload as payloads
from daemon.core.model import Alert

Source = Literal["billing", "pods", "balance"]
SOURCES: tuple[Source, ...] = ("billing", "pods", "balance")


@dataclass(frozen=True, slots=True)
class Failure:
    """This cycle's failure of one source: a secret-free message and whether
    waiting can help."""

    message: str
    permanent: bool = False


def since_key(account: str, source: Source) -> str:
    """Meta key of a source's outage start (the billing key predates sources)."""
    return f"health:{account}:since" if source == "billing" else f"health:{account}:{source}:since"


def notice_id(
    state: Literal["unusable", "recovered"], account: str, source: Source, since: datetime
) -> str:
    """The health alert id; billing keeps the id it had before other sources."""
    return payloads.health_id(state, account, since, source)


def health_notices(
    accounts: Sequence[str],
    failures: Mapping[tuple[str, Source], Failure],
    stored: Callable[[str], str | None],
    told: Callable[[str, datetime], Collection[str]],
    *,
    watched: Collection[Source],
    after: timedelta,
    notify: Sequence[str],
    now: datetime,
    unread: Collection[tuple[str, Source]] = (),
) -> tuple[list[Alert], dict[str, str]]:
    """The health alerts of this cycle and the meta updates that go with them.

    ``failures`` holds this cycle's failed (account, source) pairs; ``stored``
    reads a meta value; ``told(account, since)`` gives the alert ids in the
    ledger since ``since`` (a recovery is only told for an outage that was);
    ``watched`` are the sources this config reads (no balance section: no
    balance health). ``unread`` holds (account, source) pairs not tried this
    cycle (pods are skipped when billing failed): their state stays as it
    is, since an outage that was not looked at has not been seen to end.
    """
    out: list[Alert] = []
    updates: dict[str, str] = {}
    for acc in accounts:
        for source in SOURCES:
            if source not in watched or (acc, source) in unread:
                continue
            key = since_key(acc, source)
            since_s = stored(key)
            failure = failures.get((acc, source))
            if failure is not None:
                since = datetime.fromisoformat(since_s) if since_s else now
                if not since_s:
                    updates[key] = since.isoformat()
                if notify and (failure.permanent or now - since >= after):
                    out.append(
                        _alert(
                            "unusable", account=acc, source=source, since=since,
                            error=failure.message, now=now, notify=notify,
                        )
                    )
            elif since_s:
                since = datetime.fromisoformat(since_s)
                if notify and notice_id("unusable", acc, source, since) in told(acc, since):
                    out.append(
                        _alert(
                            "recovered", account=acc, source=source, since=since,
                            error=None, now=now, notify=notify,
                        )
                    )
                updates[key] = ""
    return out, updates


def _alert(
    state: Literal["unusable", "recovered"],
    *,
    account: str,
    source: Source,
    since: datetime,
    error: str | None,
    now: datetime,
    notify: Sequence[str],
) -> Alert:
    record = payloads.HealthPayload(state, account, since, error, now, source)
    return payloads.to_alert(record, notify)
