"""The state store on a real SQLite file and on the real PostgreSQL server.

Every behaviour test runs on both backends. PostgreSQL tests live in a schema
of their own (dropped afterwards) because other test runs share the database.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from daemon.adapters.store import (
    SCHEMA_VERSION,
    SqlStore,
    make_engine,
    mask_url,
    migrate,
    open_store,
    points_t,
)
from daemon.core.model import Alert, SeriesKey, SpendPoint
from daemon.core.ports import StoreError

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"

T0 = datetime(2026, 11, 24, tzinfo=UTC)
H = timedelta(hours=1)
PODS = SeriesKey("research", "podId")
GPUS = SeriesKey("research", "gpuTypeId")


def _pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_CONNINFO, connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable: {str(e).strip()}"


_PG_SKIP = _pg_unreachable()


@dataclass
class Backend:
    """One state database: ``open()`` gives a new store (a restart, a replica)."""

    name: str
    url: str
    schema: str | None
    opened: list[SqlStore]

    def open(self) -> SqlStore:
        store = open_store(self.url, schema=self.schema)
        self.opened.append(store)
        return store

    def sql(self, statement: str) -> list[Any]:
        """Run raw SQL on the state database (as an operator would)."""
        engine = make_engine(self.url, schema=self.schema)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement))
                return list(result.all()) if result.returns_rows else []
        finally:
            engine.dispose()


def _drop_schema(schema: str) -> None:
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    schema = f"rpb_store_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        _drop_schema(schema)


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        b = Backend("sqlite", f"sqlite:///{tmp_path}/state/state.db", None, [])
        schema = None
    else:
        if _PG_SKIP:
            pytest.skip(_PG_SKIP)
        schema = f"rpb_store_{uuid.uuid4().hex[:16]}"
        b = Backend("postgres", PG_URL, schema, [])
    try:
        yield b
    finally:
        for s in b.opened:
            s.close()
        if schema is not None:
            _drop_schema(schema)


@pytest.fixture
def store(backend: Backend) -> SqlStore:
    return backend.open()


def alert(
    aid: str,
    *,
    kind: str = "threshold",
    notifiers: tuple[str, ...] = ("ops",),
    account: str = "research",
    budget: str = "team",
    group: dict[str, Any] | None = None,
    window_start: str = "2026-11-24T00:00:00Z",
    threshold: float | None = 80,
) -> Alert:
    payload: dict[str, Any] = {
        "id": aid,
        "kind": kind,
        "account": account,
        "budget": budget,
        "group": group or {"pod_id": None, "pod_name": None, "gpu_type": None},
        "window": {"size": "day", "start": window_start, "end": "2026-11-25T00:00:00Z"},
        "spend_usd": 81.5,
        "limit_usd": 100.0,
        "percent": 81.5,
        "threshold_percent": threshold,
        "forecast_usd": None,
        "fired_at": "2026-11-24T14:05:12Z",
    }
    return Alert(aid, kind, notifiers, payload)  # type: ignore[arg-type]


def claim_all(store: SqlStore, now: datetime, lease: float = 60) -> list[tuple[str, str]]:
    return [(i.alert.id, i.notifier) for i in store.claim_due(now, lease)]


# --------------------------------------------------------------------------- lifecycle


def test_fresh_store_is_created_and_reopen_keeps_everything(backend: Backend) -> None:
    s1 = backend.open()
    assert s1.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert s1.coverage(PODS) is None
    s1.replace_points(PODS, T0, T0 + 2 * H, [SpendPoint(T0, "pod-a", 1.25)])
    assert s1.enqueue([alert("a1")], T0) == ["a1"]
    s1.set_meta("digest.last", "2026-11-24")
    assert s1.record_intent("inst", "pod-a", T0, {"why": "120%"})
    s1.close()

    s2 = backend.open()
    assert s2.points(PODS, T0, T0 + 2 * H) == [SpendPoint(T0, "pod-a", 1.25)]
    assert s2.coverage(PODS) is not None
    assert [e.id for e in s2.ledger("research", T0)] == ["a1"]
    assert s2.get_meta("digest.last") == "2026-11-24"
    assert not s2.record_intent("inst", "pod-a", T0 + H, {})
    assert claim_all(s2, T0) == [("a1", "ops")]


def test_sqlite_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert path.exists()
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()
    finally:
        store.close()


def test_times_come_back_as_aware_utc(store: SqlStore) -> None:
    berlin = datetime(2026, 11, 24, 10, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin")
    )
    store.replace_points(GPUS, berlin, berlin + H, [SpendPoint(berlin, "H100", 3.0)])
    (p,) = store.points(GPUS, T0, T0 + 24 * H)
    assert p.time == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert p.time.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="aware"):
        store.points(GPUS, datetime(2026, 11, 24), T0 + H)


# --------------------------------------------------------------------------- buckets


def test_replace_points_applies_revisions_including_a_vanished_group(store: SqlStore) -> None:
    store.replace_points(
        PODS,
        T0,
        T0 + 3 * H,
        [
            SpendPoint(T0 + 2 * H, "pod-b", 0.5),
            SpendPoint(T0, "pod-b", 2.0),
            SpendPoint(T0, "pod-a", 1.0),
            SpendPoint(T0 + H, "pod-a", 1.0),
            SpendPoint(T0 + H, "pod-b", 2.0),
        ],
    )
    store.replace_points(GPUS, T0, T0 + 3 * H, [SpendPoint(T0 + H, "H100", 3.0)])
    # Sorted by time, then group, whatever the insertion order.
    assert [(p.time, p.group) for p in store.points(PODS, T0, T0 + 3 * H)] == [
        (T0, "pod-a"),
        (T0, "pod-b"),
        (T0 + H, "pod-a"),
        (T0 + H, "pod-b"),
        (T0 + 2 * H, "pod-b"),
    ]

    # RunPod revised the last two hours: pod-b's spend there vanished, pod-a's grew.
    store.replace_points(PODS, T0 + H, T0 + 3 * H, [SpendPoint(T0 + H, "pod-a", 1.75)])
    assert store.points(PODS, T0, T0 + 3 * H) == [
        SpendPoint(T0, "pod-a", 1.0),
        SpendPoint(T0, "pod-b", 2.0),
        SpendPoint(T0 + H, "pod-a", 1.75),
    ]
    # The other series is untouched, and the range end is exclusive.
    assert store.points(GPUS, T0, T0 + 3 * H) == [SpendPoint(T0 + H, "H100", 3.0)]
    assert store.points(GPUS, T0, T0 + H) == []


def test_replace_points_sums_duplicates_and_rejects_points_outside_range(
    store: SqlStore,
) -> None:
    store.replace_points(
        PODS, T0, T0 + H, [SpendPoint(T0, "pod-a", 1.0), SpendPoint(T0, "pod-a", 0.5)]
    )
    assert store.points(PODS, T0, T0 + H) == [SpendPoint(T0, "pod-a", 1.5)]
    with pytest.raises(ValueError, match="outside"):
        store.replace_points(PODS, T0, T0 + H, [SpendPoint(T0 + H, "pod-a", 1.0)])
    # The failed call changed nothing.
    assert store.points(PODS, T0, T0 + 2 * H) == [SpendPoint(T0, "pod-a", 1.5)]


def test_coverage_extends_with_contiguous_and_overlapping_ranges(store: SqlStore) -> None:
    store.replace_points(PODS, T0 + 5 * H, T0 + 8 * H, [])
    cov = store.coverage(PODS)
    assert cov is not None and (cov.start, cov.end) == (T0 + 5 * H, T0 + 8 * H)

    store.replace_points(PODS, T0 + 8 * H, T0 + 9 * H, [])  # contiguous after
    store.replace_points(PODS, T0 + 2 * H, T0 + 6 * H, [])  # overlapping before
    store.replace_points(PODS, T0 + 6 * H, T0 + 7 * H, [])  # inside
    cov = store.coverage(PODS)
    assert cov is not None and (cov.start, cov.end) == (T0 + 2 * H, T0 + 9 * H)
    assert store.coverage(GPUS) is None
    assert store.coverage(SeriesKey("research", "podId", "NVIDIA H100 80GB HBM3")) is None

    # Disjoint: the later range wins (documented), an earlier one does not shrink it.
    store.replace_points(PODS, T0 + 20 * H, T0 + 21 * H, [])
    cov = store.coverage(PODS)
    assert cov is not None and (cov.start, cov.end) == (T0 + 20 * H, T0 + 21 * H)
    store.replace_points(PODS, T0, T0 + H, [])
    cov = store.coverage(PODS)
    assert cov is not None and (cov.start, cov.end) == (T0 + 20 * H, T0 + 21 * H)


def test_prune_points_drops_old_hours_and_trims_coverage(store: SqlStore) -> None:
    pts = [SpendPoint(T0 + i * H, "pod-a", 1.0) for i in range(6)]
    store.replace_points(PODS, T0, T0 + 6 * H, pts)
    store.replace_points(GPUS, T0, T0 + 2 * H, [SpendPoint(T0, "H100", 1.0)])
    assert store.prune_points(T0 + 4 * H) == 5
    assert [p.time for p in store.points(PODS, T0, T0 + 6 * H)] == [T0 + 4 * H, T0 + 5 * H]
    cov = store.coverage(PODS)
    assert cov is not None and (cov.start, cov.end) == (T0 + 4 * H, T0 + 6 * H)
    assert store.coverage(GPUS) is None  # all of it was older than the cutoff


# --------------------------------------------------------------------------- ledger + outbox


def test_ledger_lists_decided_alerts_since_for_one_account(store: SqlStore) -> None:
    pod = {"pod_id": "xedezhzb9la3ye", "pod_name": "train-1", "gpu_type": None}
    gpu = {"pod_id": None, "pod_name": None, "gpu_type": "NVIDIA H100 80GB HBM3"}
    store.enqueue([alert("old", threshold=50)], T0)
    store.enqueue(
        [
            alert("thr", group=pod, threshold=87.5, window_start="2026-11-24T06:00:00Z"),
            alert("fc", kind="forecast", group=gpu),
            alert("other", account="finance"),
        ],
        T0 + H,
    )
    digest = Alert(
        "digest:2026-11-24", "digest", ("ops",), {"kind": "digest", "account": "research"}
    )
    store.enqueue([digest], T0 + 2 * H)

    entries = {e.id: e for e in store.ledger("research", T0 + H)}
    assert set(entries) == {"thr", "fc", "digest:2026-11-24"}
    thr = entries["thr"]
    assert (thr.kind, thr.account, thr.budget) == ("threshold", "research", "team")
    assert (thr.group_key, thr.threshold) == ("pod=xedezhzb9la3ye", "87.5")
    assert thr.window_start == datetime(2026, 11, 24, 6, tzinfo=UTC)
    assert thr.created_at == T0 + H
    fc = entries["fc"]
    assert (fc.group_key, fc.threshold) == ("gpu=NVIDIA H100 80GB HBM3", "")
    d = entries["digest:2026-11-24"]
    assert (d.budget, d.group_key, d.threshold, d.window_start) == ("", "", "", T0 + 2 * H)
    assert store.ledger("research", T0)[0].id == "old"
    assert [e.threshold for e in store.ledger("research", T0) if e.id == "old"] == ["50"]
    assert [e.group_key for e in store.ledger("finance", T0)] == ["all"]


def test_enqueue_again_after_restart_or_on_a_replica_inserts_nothing(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    first = [alert("a1", notifiers=("ops", "finance")), alert("a2")]
    assert s1.enqueue(first, T0) == ["a1", "a2"]
    # The replica decided the same alerts (plus a new one) a moment later.
    assert s2.enqueue([*first, alert("a3")], T0 + timedelta(seconds=5)) == ["a3"]
    assert s2.enqueue([alert("a3"), alert("a3")], T0) == []
    assert s1.pending_count() == 4
    assert sorted(claim_all(s2, T0 + H)) == [
        ("a1", "finance"),
        ("a1", "ops"),
        ("a2", "ops"),
        ("a3", "ops"),
    ]
    # The ledger keeps the first decision's time.
    assert {e.id: e.created_at for e in s1.ledger("research", T0)}["a1"] == T0


def test_claimed_rows_rebuild_the_alert_from_the_stored_payload(store: SqlStore) -> None:
    original = alert("a1", notifiers=("ops", "finance"))
    store.enqueue([original], T0)
    items = store.claim_due(T0, 60)
    assert [(i.notifier, i.attempts, i.last_error) for i in items] == [
        ("ops", 0, None),
        ("finance", 0, None),
    ]
    for item in items:
        assert item.alert.id == "a1" and item.alert.kind == "threshold"
        assert item.alert.notifiers == (item.notifier,)
        assert item.alert.payload == original.payload
        assert item.next_attempt_at == T0


def test_a_lease_hides_rows_until_it_runs_out(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    s1.enqueue([alert("a1")], T0)
    assert claim_all(s1, T0, lease=60) == [("a1", "ops")]
    assert claim_all(s2, T0 + timedelta(seconds=30)) == []
    assert claim_all(s1, T0 + timedelta(seconds=59)) == []
    # The first holder crashed mid-send: after the lease the row is sent again.
    assert claim_all(s2, T0 + timedelta(seconds=61)) == [("a1", "ops")]


def test_delivered_rows_are_never_claimed_again(backend: Backend) -> None:
    s1 = backend.open()
    s1.enqueue([alert("a1"), alert("a2")], T0)
    for item in s1.claim_due(T0, 60):
        s1.mark_delivered(item.seq, T0)
    assert s1.pending_count() == 0
    s1.close()
    s2 = backend.open()
    assert claim_all(s2, T0 + 24 * H) == []
    assert s2.enqueue([alert("a1")], T0 + 24 * H) == []
    (state,) = s2.delivery_states()
    assert (state.notifier, state.pending, state.delivered, state.failed_permanent) == (
        "ops",
        0,
        2,
        0,
    )


def test_backoff_keeps_per_notifier_order(store: SqlStore) -> None:
    store.enqueue([alert("a1", notifiers=("ops", "finance"))], T0)
    store.enqueue([alert("a2", notifiers=("ops", "finance"))], T0)
    store.enqueue([alert("a3", notifiers=("ops",))], T0)
    items = store.claim_due(T0, 60)
    assert [(i.alert.id, i.notifier) for i in items] == [
        ("a1", "ops"),
        ("a1", "finance"),
        ("a2", "ops"),
        ("a2", "finance"),
        ("a3", "ops"),
    ]
    # ops is down: a1 fails and is due again in 5 minutes; a2/a3 stay unsent
    # (the deliverer stops at a notifier's first failure). finance works.
    by = {(i.alert.id, i.notifier): i.seq for i in items}
    store.mark_failed(
        by[("a1", "ops")],
        T0,
        "HTTP 503",
        permanent=False,
        next_attempt_at=T0 + timedelta(minutes=5),
    )
    store.mark_delivered(by[("a1", "finance")], T0)
    store.mark_delivered(by[("a2", "finance")], T0)

    # Leases of a2/a3 ran out, but a1 is not due yet: nothing overtakes it.
    assert claim_all(store, T0 + timedelta(minutes=2)) == []
    store.enqueue([alert("a4", notifiers=("ops", "finance"))], T0 + timedelta(minutes=3))
    (a4_finance,) = store.claim_due(T0 + timedelta(minutes=3), 60)
    assert (a4_finance.alert.id, a4_finance.notifier) == ("a4", "finance")
    store.mark_delivered(a4_finance.seq, T0 + timedelta(minutes=3))

    later = store.claim_due(T0 + timedelta(minutes=6), 60)
    assert [(i.alert.id, i.notifier) for i in later] == [
        ("a1", "ops"),
        ("a2", "ops"),
        ("a3", "ops"),
        ("a4", "ops"),
    ]
    assert (later[0].attempts, later[0].last_error) == (1, "HTTP 503")
    assert later[1].attempts == 0
    (ops,) = [s for s in store.delivery_states() if s.notifier == "ops"]
    assert (ops.pending, ops.last_error, ops.last_error_at) == (4, "HTTP 503", T0)


def test_a_row_being_sent_holds_back_the_notifiers_later_rows(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    s1.enqueue([alert("a1")], T0)
    assert claim_all(s1, T0) == [("a1", "ops")]  # replica 1 is sending a1
    s2.enqueue([alert("a2"), alert("b1", notifiers=("finance",))], T0)
    assert claim_all(s2, T0 + timedelta(seconds=1)) == [("b1", "finance")]


def test_permanent_failure_is_final_and_shown_in_delivery_states(store: SqlStore) -> None:
    store.enqueue([alert("a1"), alert("a2")], T0)
    first, _second = store.claim_due(T0, 60)
    store.mark_failed(first.seq, T0, "channel_not_found", permanent=True, next_attempt_at=T0 + H)
    # a2's lease still runs; after it, a2 is not held back by the failed a1.
    assert claim_all(store, T0 + timedelta(minutes=2)) == [("a2", "ops")]
    assert store.pending_count() == 1
    (again,) = store.claim_due(T0 + 48 * H, 60)  # a2's lease ran out; a1 never comes back
    store.mark_delivered(again.seq, T0 + 48 * H)
    assert claim_all(store, T0 + 96 * H) == []
    states = store.delivery_states()
    assert [(s.notifier, s.pending, s.delivered, s.failed_permanent) for s in states] == [
        ("ops", 0, 1, 1)
    ]
    assert (states[0].last_error, states[0].last_error_at) == ("channel_not_found", T0)
    assert store.pending_count() == 0


def test_a_late_failure_report_does_not_undo_a_delivery(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    s1.enqueue([alert("a1")], T0)
    (stale,) = s1.claim_due(T0, 60)
    (fresh,) = s2.claim_due(T0 + timedelta(minutes=2), 60)  # s1's lease ran out
    s2.mark_delivered(fresh.seq, T0 + timedelta(minutes=2))
    s1.mark_failed(stale.seq, T0 + 3 * H, "timeout", permanent=False, next_attempt_at=T0 + 4 * H)
    assert claim_all(s1, T0 + 5 * H) == []
    assert s1.pending_count() == 0


# --------------------------------------------------------------------------- meta + enforcement


def test_meta_upserts_and_survives_restart(backend: Backend) -> None:
    s1 = backend.open()
    assert s1.get_meta("health.notice") is None
    s1.set_meta("health.notice", "2026-11-24T00:00:00Z")
    s1.set_meta("health.notice", "")
    s1.set_meta("config.hash", "abc")
    s1.close()
    s2 = backend.open()
    assert (s2.get_meta("health.notice"), s2.get_meta("config.hash")) == ("", "abc")
    with pytest.raises(ValueError, match="schema_version"):
        s2.set_meta("schema_version", "99")


def test_an_intent_is_recorded_once_across_restarts_and_replicas(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    assert s1.record_intent(
        "research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0, {"pct": 121}
    )
    # Crash between intent and result: the restarted daemon and a replica do not stop again.
    assert not s2.record_intent("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0 + H, {})
    assert s2.record_intent("research:pod-daily:pod=p1:2026-11-25T00:00:00Z", "p1", T0 + H, {})
    s1.record_result(
        "research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0 + 2 * H, "stopped", {"http": 200}
    )
    s2.record_audit(T0 + 3 * H, "refused", {"pod_id": "p2", "reason": "dry_run"})

    log = s1.audit()
    assert [(e["event"], e["at"]) for e in log] == [
        ("refused", T0 + 3 * H),
        ("stop", T0 + 2 * H),
        ("stop", T0 + H),
    ]
    assert log[0]["detail"] == {"pod_id": "p2", "reason": "dry_run"}
    stopped = log[1]
    assert (stopped["pod_id"], stopped["result"], stopped["intent_at"]) == ("p1", "stopped", T0)
    assert stopped["detail"] == {"pct": 121, "http": 200}
    assert log[2]["result"] is None  # intent only: shown as such
    assert s2.enforcement_row("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1") == stopped
    assert s2.enforcement_row("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p2") is None
    assert len(s1.audit(limit=2)) == 2


# --------------------------------------------------------------------------- schema versions


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.sql("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(StoreError) as info:
        backend.open()
    assert info.value.permanent
    assert str(info.value) == (
        f"state database schema version 7 is newer than this runpod-budget understands "
        f"({SCHEMA_VERSION}); upgrade runpod-budget or point state at another database"
    )


def test_an_old_schema_is_migrated_forward_keeping_data(backend: Backend) -> None:
    engine = make_engine(backend.url, schema=backend.schema)
    assert migrate(engine, target=1, create_schema=backend.schema) == 1
    with engine.begin() as conn:
        conn.execute(
            points_t.insert().values(
                account="research", grouping="podId", gpu_filter="", time=T0, grp="p1", amount=2.5
            )
        )
    engine.dispose()
    assert backend.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]

    store = backend.open()
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert store.points(PODS, T0, T0 + H) == [SpendPoint(T0, "p1", 2.5)]
    assert store.enqueue([alert("a1")], T0) == ["a1"]
    assert store.record_intent("i", "p1", T0, {})


def test_two_replicas_creating_the_schema_at_once_both_start(backend: Backend) -> None:
    results: list[object] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        barrier.wait()
        try:
            results.append(backend.open())
        except Exception as e:
            results.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, SqlStore) for r in results), results
    assert backend.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


# --------------------------------------------------------------------------- bad state


def test_a_corrupt_sqlite_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is no database, " + os.urandom(8192))
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert info.value.permanent
    assert f"state file {path} is not a valid SQLite database" in str(info.value)


def test_an_unwritable_sqlite_location_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{blocker}/state.db")
    assert info.value.permanent
    assert str(blocker) in str(info.value)


def test_unreachable_postgres_is_a_transient_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://budget:hunter2-secret@127.0.0.1:1/state?connect_timeout=2")
    assert not info.value.permanent
    assert "hunter2-secret" not in str(info.value)
    assert "127.0.0.1:1/state" in str(info.value)


@pytest.mark.postgres
def test_password_never_in_repr_or_url(pg_schema: str) -> None:
    # Trust auth ignores the password, so this connects for real.
    store = open_store("postgres://postgres:hunter2-secret@127.0.0.1:5432/test", schema=pg_schema)
    try:
        assert "hunter2-secret" not in repr(store)
        assert "hunter2-secret" not in store.url
        assert "***" in repr(store)
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        store.close()
    assert "s3cr3t" not in mask_url("postgresql://u@h/db?password=s3cr3t&sslmode=require")


@pytest.mark.postgres
def test_search_path_from_url_options(pg_schema: str) -> None:
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    store = open_store(
        f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    )
    try:
        store.set_meta("where", "here")
    finally:
        store.close()
    with psycopg.connect(PG_CONNINFO) as conn:
        row = conn.execute(f"SELECT value FROM \"{pg_schema}\".meta WHERE key = 'where'").fetchone()
    assert row == ("here",)


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(StoreError, match="identifier") as info:
        open_store(PG_URL, schema='x"; DROP TABLE meta; --')
    assert info.value.permanent


def test_an_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(StoreError) as info:
        open_store("mysql://root:pw@localhost/db")
    assert info.value.permanent
    assert "pw@" not in str(info.value)
    with pytest.raises(StoreError) as info:
        open_store("postgresql//budget:hunter2-secret@db/state")  # a typo: no colon
    assert info.value.permanent
    assert "hunter2-secret" not in str(info.value)


# --------------------------------------------------------------------------- replicas

NOTIFIERS = ("ops", "finance", "oncall")


def _run_together(workers: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not errors, errors


def test_replicas_claiming_at_once_never_get_the_same_row(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    stores[0].enqueue([alert(f"a{i:03d}", notifiers=NOTIFIERS) for i in range(40)], T0)
    claimed: list[list[tuple[int, str, str]]] = [[] for _ in stores]

    def deliverer(k: int, store: SqlStore) -> Callable[[], None]:
        def run() -> None:
            idle = 0
            while idle < 3:
                items = store.claim_due(T0, 600, limit=4)
                idle = 0 if items else idle + 1
                for item in items:
                    claimed[k].append((item.seq, item.alert.id, item.notifier))
                    store.mark_delivered(item.seq, T0)

        return run

    _run_together([deliverer(k, s) for k, s in enumerate(stores)])

    every = [c for per_store in claimed for c in per_store]
    assert len(every) == 120
    duplicates = [seq for seq, n in Counter(seq for seq, _, _ in every).items() if n > 1]
    assert duplicates == []
    assert stores[0].pending_count() == 0
    # Each notifier got its alerts in the order they were decided.
    for notifier in NOTIFIERS:
        seqs = sorted((seq, aid) for seq, aid, n in every if n == notifier)
        assert [aid for _, aid in seqs] == [f"a{i:03d}" for i in range(40)]


def test_replicas_claiming_with_a_long_lease_split_the_rows(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    s1.enqueue([alert(f"a{i:03d}", notifiers=(f"n{i % 10}",)) for i in range(50)], T0)
    got: dict[int, list[int]] = {1: [], 2: []}

    def claim(k: int, store: SqlStore) -> Callable[[], None]:
        def run() -> None:
            for _ in range(10):
                got[k].extend(i.seq for i in store.claim_due(T0, 600, limit=3))

        return run

    _run_together([claim(1, s1), claim(2, s2)])
    assert set(got[1]).isdisjoint(got[2])
    claimed = set(got[1]) | set(got[2])
    # Nothing was delivered, so no notifier's later row overtook a leased one:
    # per notifier, the claimed rows are its oldest ones.
    for n in range(10):
        rows = [seq for seq in range(1, 51) if (seq - 1) % 10 == n]
        mine = sorted(seq for seq in claimed if seq in rows)
        assert mine and mine == rows[: len(mine)], (n, mine)
    assert len(claimed) < 50
    assert s1.claim_due(T0 + timedelta(seconds=30), 600) == []


def test_replicas_deciding_the_same_alerts_enqueue_them_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(3)]
    batch = [alert(f"a{i:03d}", notifiers=("ops", "finance")) for i in range(30)]
    inserted: list[list[str]] = [[] for _ in stores]

    def enqueue(k: int, store: SqlStore) -> Callable[[], None]:
        def run() -> None:
            # Each replica sees the alerts in its own order.
            order = batch[k:] + batch[:k] if k % 2 == 0 else list(reversed(batch))
            inserted[k].extend(store.enqueue(order, T0))

        return run

    _run_together([enqueue(k, s) for k, s in enumerate(stores)])
    ids = [i for per_store in inserted for i in per_store]
    assert sorted(ids) == sorted(a.id for a in batch)
    assert stores[0].pending_count() == 60


def test_prune_alerts_forgets_old_settled_alerts_but_keeps_pending_ones(store: SqlStore) -> None:
    old_done, old_pending, recent = alert("old-done"), alert("old-pending"), alert("recent")
    store.enqueue([old_done, old_pending], T0)
    store.enqueue([recent], T0 + timedelta(days=100))
    for item in store.claim_due(T0 + timedelta(days=100), 60):
        if item.alert.id in ("old-done", "recent"):
            store.mark_delivered(item.seq, T0 + timedelta(days=100))
        else:
            store.mark_failed(
                item.seq, T0 + timedelta(days=100), "down", permanent=False,
                next_attempt_at=T0 + timedelta(days=101),
            )
    assert store.prune_alerts(T0 + timedelta(days=90)) == 1
    ids = {e.id for e in store.ledger("research", T0 - timedelta(days=1))}
    assert ids == {"old-pending", "recent"}  # a message still owed is never forgotten
    # the forgotten alert's outbox row is gone with it; the pending one still goes out
    due = store.claim_due(T0 + timedelta(days=102), 60)
    assert [i.alert.id for i in due] == ["old-pending"]
    assert {d.notifier: d.delivered for d in store.delivery_states()} == {"ops": 1}
