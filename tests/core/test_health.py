"""Pure health notices: when an outage of billing, pods or balance is told,
when its recovery is, and which ids they carry (contract "Balance": ``kind:
health`` covers any data source the daemon cannot read)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta

from daemon.core.health import SOURCES, Failure, Source, health_notices, since_key
from daemon.core.model import Alert

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
AFTER = timedelta(minutes=15)


class Daemon:
    """The state health_notices reads between cycles: meta values and the
    ledger of told alert ids (the outbox drops an id it already holds)."""

    def __init__(self, watched: Collection[Source] = SOURCES, notify: tuple[str, ...] = ("ops",)):
        self.meta: dict[str, str] = {}
        self.ledger: dict[str, datetime] = {}
        self.watched = watched
        self.notify = notify

    def told(self, account: str, since: datetime) -> list[str]:
        return [i for i, at in self.ledger.items() if i.startswith(f"{account}:") and at >= since]

    def cycle(
        self,
        now: datetime,
        failures: Mapping[tuple[str, Source], Failure] | None = None,
        *,
        apply: bool = True,
    ) -> list[Alert]:
        alerts, updates = health_notices(
            ["acc", "b2"],
            failures or {},
            self.meta.get,
            self.told,
            watched=self.watched,
            after=AFTER,
            notify=self.notify,
            now=now,
        )
        if apply:
            new = [a for a in alerts if a.id not in self.ledger]
            for a in new:
                self.ledger[a.id] = now
            self.meta.update(updates)
            return new
        return alerts


def down(
    message: str = "503 from GET /billing",
    permanent: bool = False,
    source: Source = "billing",
    account: str = "acc",
) -> dict[tuple[str, Source], Failure]:
    return {(account, source): Failure(message, permanent)}


def test_transient_failure_is_told_after_health_after_with_a_stable_billing_id() -> None:
    d = Daemon()
    assert d.cycle(T0, down()) == []
    assert d.meta[since_key("acc", "billing")] == T0.isoformat()
    assert d.meta == {"health:acc:since": T0.isoformat()}  # the billing key predates sources
    assert d.cycle(T0 + 14 * M, down()) == []
    [a] = d.cycle(T0 + 15 * M, down())
    assert a.id == "acc:health:unusable:2026-11-24T12:00:00Z"  # unchanged since v1
    assert a.kind == "health" and a.notifiers == ("ops",)
    assert a.payload["state"] == "unusable" and a.payload["source"] == "billing"
    assert a.payload["last_error"] == "503 from GET /billing"
    # every later cycle decides the same id; the outbox drops the repeat
    again = d.cycle(T0 + 30 * M, down(), apply=False)
    assert [x.id for x in again] == [a.id]


def test_permanent_failure_is_told_at_once() -> None:
    d = Daemon()
    [a] = d.cycle(T0, down("410 Gone: API retired", permanent=True))
    assert a.id == "acc:health:unusable:2026-11-24T12:00:00Z"
    assert a.payload["last_error"] == "410 Gone: API retired"


def test_recovery_is_told_only_when_the_outage_was() -> None:
    d = Daemon()
    d.cycle(T0, down())
    assert d.cycle(T0 + 5 * M) == []  # back before health.after: nobody was told
    assert d.meta["health:acc:since"] == ""
    d.cycle(T0 + 10 * M, down())
    [told] = d.cycle(T0 + 25 * M, down())
    assert told.id == "acc:health:unusable:2026-11-24T12:10:00Z"
    [rec] = d.cycle(T0 + 26 * M)
    assert rec.id == "acc:health:recovered:2026-11-24T12:10:00Z"
    assert rec.payload["state"] == "recovered"
    assert d.cycle(T0 + 27 * M) == []  # told once


def test_other_sources_have_their_own_ids_and_text() -> None:
    d = Daemon()
    [a] = d.cycle(T0, down("401", permanent=True, source="pods"))
    assert a.id == "acc:health:pods:unusable:2026-11-24T12:00:00Z"
    assert a.payload["source"] == "pods" and "pod list" in a.payload["text"]
    assert d.meta == {"health:acc:pods:since": T0.isoformat()}
    [rec] = d.cycle(T0 + M)
    assert rec.id == "acc:health:pods:recovered:2026-11-24T12:00:00Z"


def test_outage_start_survives_a_restart() -> None:
    d = Daemon()
    d.cycle(T0, down())
    restarted = Daemon()
    restarted.meta = dict(d.meta)  # the meta table is in the store
    [a] = restarted.cycle(T0 + 20 * M, down())
    assert a.id.endswith(":2026-11-24T12:00:00Z")


def test_unwatched_source_and_no_notifiers_tell_nothing() -> None:
    d = Daemon(watched=("billing", "pods"))  # no balance section in the config
    assert d.cycle(T0, down(permanent=True, source="balance")) == []
    assert d.meta == {}
    quiet = Daemon(notify=())
    assert quiet.cycle(T0, down(permanent=True)) == []
    assert quiet.meta == {"health:acc:since": T0.isoformat()}  # the outage is still tracked


def test_accounts_are_independent() -> None:
    d = Daemon()
    [a] = d.cycle(T0, down(permanent=True, account="b2"))
    assert a.id.startswith("b2:health:unusable:") and a.payload["account"] == "b2"
    assert "health:acc:since" not in d.meta
