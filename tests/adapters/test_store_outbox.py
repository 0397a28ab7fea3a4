"""The alert ledger and the outbox on SQLite and PostgreSQL: dedupe, claims of
the head of each notifier's queue in batches, owner-bound leases, backoff and
Retry-After, several replicas at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from daemon.adapters.store import SqlStore
from daemon.core.model import Alert
from tests.adapters.test_store_common import (
    T0,
    Backend,
    H,
    S,
    alert,
    backend,
    claim_all,
    run_together,
    store,
)

__all__ = ["backend", "store"]  # fixtures, used by name


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
    items = store.claim_due("me", T0, 60)
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
    assert claim_all(s1, T0, lease=60, owner="A") == [("a1", "ops")]
    assert claim_all(s2, T0 + 30 * S, owner="B") == []
    assert claim_all(s1, T0 + 59 * S, owner="C") == []
    # The first holder crashed mid-send: after the lease the row is sent again.
    assert claim_all(s2, T0 + 61 * S, owner="B") == [("a1", "ops")]


def test_delivered_rows_are_never_claimed_again(backend: Backend) -> None:
    s1 = backend.open()
    s1.enqueue([alert("a1"), alert("a2")], T0)
    for item in s1.claim_due("me", T0, 60):
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
    items = store.claim_due("me", T0, 60)
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
    (a4_finance,) = store.claim_due("me", T0 + timedelta(minutes=3), 60)
    assert (a4_finance.alert.id, a4_finance.notifier) == ("a4", "finance")
    store.mark_delivered(a4_finance.seq, T0 + timedelta(minutes=3))

    later = store.claim_due("me", T0 + timedelta(minutes=6), 60)
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
    assert claim_all(s1, T0, owner="A") == [("a1", "ops")]  # replica 1 is sending a1
    s2.enqueue([alert("a2"), alert("b1", notifiers=("finance",))], T0)
    assert claim_all(s2, T0 + timedelta(seconds=1), owner="B") == [("b1", "finance")]


def test_permanent_failure_is_final_and_shown_in_delivery_states(store: SqlStore) -> None:
    store.enqueue([alert("a1"), alert("a2")], T0)
    first, _second = store.claim_due("me", T0, 60)
    store.mark_failed(first.seq, T0, "channel_not_found", permanent=True, next_attempt_at=T0 + H)
    # a2's lease still runs; after it, a2 is not held back by the failed a1.
    assert claim_all(store, T0 + timedelta(minutes=2)) == [("a2", "ops")]
    assert store.pending_count() == 1
    (again,) = store.claim_due("me", T0 + 48 * H, 60)  # a2's lease ran out; a1 never comes back
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
    (stale,) = s1.claim_due("A", T0, 60)
    (fresh,) = s2.claim_due("B", T0 + timedelta(minutes=2), 60)  # s1's lease ran out
    s2.mark_delivered(fresh.seq, T0 + timedelta(minutes=2))
    s1.mark_failed(stale.seq, T0 + 3 * H, "timeout", permanent=False, next_attempt_at=T0 + 4 * H)
    assert claim_all(s1, T0 + 5 * H) == []
    assert s1.pending_count() == 0


NOTIFIERS = ("ops", "finance", "oncall")


def test_replicas_claiming_at_once_never_get_the_same_row(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]
    stores[0].enqueue([alert(f"a{i:03d}", notifiers=NOTIFIERS) for i in range(40)], T0)
    claimed: list[list[tuple[int, str, str]]] = [[] for _ in stores]

    def deliverer(k: int, store: SqlStore) -> Callable[[], None]:
        def run() -> None:
            idle = 0
            while idle < 3:
                items = store.claim_due(f"r{k}", T0, 600, per_notifier=4)
                idle = 0 if items else idle + 1
                for item in items:
                    claimed[k].append((item.seq, item.alert.id, item.notifier))
                    store.mark_delivered(item.seq, T0)

        return run

    run_together([deliverer(k, s) for k, s in enumerate(stores)])

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
                got[k].extend(i.seq for i in store.claim_due(f"r{k}", T0, 600, per_notifier=1))

        return run

    run_together([claim(1, s1), claim(2, s2)])
    assert set(got[1]).isdisjoint(got[2])
    claimed = set(got[1]) | set(got[2])
    # Nothing was delivered, so no notifier's later row overtook a leased one:
    # per notifier, the claimed rows are its oldest ones.
    for n in range(10):
        rows = [seq for seq in range(1, 51) if (seq - 1) % 10 == n]
        mine = sorted(seq for seq in claimed if seq in rows)
        assert mine and mine == rows[: len(mine)], (n, mine)
    assert len(claimed) < 50
    assert s1.claim_due("r3", T0 + timedelta(seconds=30), 600) == []


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

    run_together([enqueue(k, s) for k, s in enumerate(stores)])
    ids = [i for per_store in inserted for i in per_store]
    assert sorted(ids) == sorted(a.id for a in batch)
    assert stores[0].pending_count() == 60


def test_prune_alerts_forgets_old_settled_alerts_but_keeps_pending_ones(store: SqlStore) -> None:
    old_done, old_pending, recent = alert("old-done"), alert("old-pending"), alert("recent")
    store.enqueue([old_done, old_pending], T0)
    store.enqueue([recent], T0 + timedelta(days=100))
    for item in store.claim_due("me", T0 + timedelta(days=100), 60):
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
    due = store.claim_due("me", T0 + timedelta(days=102), 60)
    assert [i.alert.id for i in due] == ["old-pending"]
    assert {d.notifier: d.delivered for d in store.delivery_states()} == {"ops": 1}


# --------------------------------------------------------------------------- batches + leases


def test_a_claim_takes_a_batch_from_the_head_of_each_notifier(store: SqlStore) -> None:
    store.enqueue([alert(f"a{i}", notifiers=("ops", "hook")) for i in range(7)], T0)
    first = store.claim_due("me", T0, 60, per_notifier=3)
    assert [(i.alert.id, i.notifier) for i in first] == [
        ("a0", "ops"), ("a0", "hook"), ("a1", "ops"), ("a1", "hook"), ("a2", "ops"), ("a2", "hook"),
    ]
    assert all(i.created_at == T0 for i in first)
    # While they are leased, nothing behind them moves, for this owner or another.
    assert store.claim_due("me", T0 + S, 60, per_notifier=3) == []
    assert store.claim_due("other", T0 + S, 60, per_notifier=3) == []
    store.mark_delivered([i.seq for i in first], T0 + S)
    second = store.claim_due("me", T0 + 2 * S, 60, per_notifier=3)
    assert [i.alert.id for i in second if i.notifier == "ops"] == ["a3", "a4", "a5"]
    # A failure in the middle of a batch holds back what follows it.
    ops = [i for i in second if i.notifier == "ops"]
    store.mark_delivered(ops[0].seq, T0 + 3 * S)
    store.mark_failed(ops[1].seq, T0 + 3 * S, "503", permanent=False, next_attempt_at=T0 + H)
    store.release("me", [i.seq for i in second if i.seq not in (ops[0].seq, ops[1].seq)])
    third = store.claim_due("me", T0 + 4 * S, 60, per_notifier=3)
    assert [(i.alert.id, i.notifier) for i in third] == [
        ("a3", "hook"), ("a4", "hook"), ("a5", "hook"),
    ]


def test_a_crashed_owner_holds_the_head_for_at_most_its_lease(backend: Backend) -> None:
    dead, alive = backend.open(), backend.open()
    dead.enqueue([alert(f"a{i}") for i in range(3)], T0)
    dead.enqueue([alert("b1", notifiers=("finance",))], T0)
    assert len(dead.claim_due("dead", T0, 20, per_notifier=10)) == 4  # then it was killed
    assert claim_all(alive, T0 + 19 * S, owner="alive") == []
    # One lease later everything is free again, oldest first.
    assert claim_all(alive, T0 + 21 * S, owner="alive") == [
        ("a0", "ops"), ("a1", "ops"), ("a2", "ops"), ("b1", "finance"),
    ]
    # The dead owner's late renewal gets nothing: one sender per row.
    assert dead.renew("dead", [1, 2, 3, 4], T0 + 22 * S, 20) == set()


def test_the_owner_renews_its_lease_before_each_send(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    s1.enqueue([alert("a1"), alert("a2")], T0)
    a1, a2 = s1.claim_due("A", T0, 20)
    # A slow first send: the owner renews before sending a2, so nobody takes it.
    assert s1.renew("A", [a1.seq, a2.seq], T0 + 15 * S, 20) == {a1.seq, a2.seq}
    assert claim_all(s2, T0 + 30 * S, owner="B") == []
    s1.mark_delivered(a1.seq, T0 + 31 * S)
    assert s1.renew("A", [a1.seq, a2.seq], T0 + 31 * S, 20) == {a2.seq}  # a1 is done
    s1.mark_delivered(a2.seq, T0 + 32 * S)
    assert s1.pending_count() == 0
    # A lease that ran out unclaimed is still the owner's to renew.
    s1.enqueue([alert("a3")], T0)
    (a3,) = s1.claim_due("A", T0 + H, 20)
    assert s1.renew("A", [a3.seq], T0 + H + 60 * S, 20) == {a3.seq}


def test_one_shot_delivery_ignores_backoff_but_not_retry_after(store: SqlStore) -> None:
    store.enqueue([alert("a1", notifiers=("ops", "hook"))], T0)
    ops, hook = store.claim_due("me", T0, 20)
    store.mark_failed(ops.seq, T0, "503", permanent=False, next_attempt_at=T0 + H)
    store.mark_failed(hook.seq, T0, "429", permanent=False, next_attempt_at=T0 + H,
                      retry_after_at=T0 + 10 * 60 * S)
    assert claim_all(store, T0 + S) == []  # both are backing off
    (item,) = store.claim_due("me", T0 + S, 20, honour_backoff=False)
    assert (item.alert.id, item.notifier, item.attempts) == ("a1", "ops", 1)
    assert store.claim_due("me", T0 + 2 * S, 20, honour_backoff=False, exclude=("ops",)) == []
    # Once the Retry-After passed, the one-shot mode sends the other too.
    (late,) = store.claim_due("x", T0 + 11 * 60 * S, 20, honour_backoff=False, exclude=("ops",))
    assert (late.notifier, late.retry_after_at) == ("hook", T0 + 10 * 60 * S)


def test_draining_costs_a_number_of_queries_linear_in_the_rows(backend: Backend) -> None:
    """O(n) in all: the claim does not re-scan the queue per row it takes."""
    from sqlalchemy import event

    def queries_to_drain(n: int) -> int:
        store = backend.open()
        store.enqueue([alert(f"n{n}-{i:05d}", notifiers=("ops", "hook")) for i in range(n)], T0)
        count = 0

        def on_execute(*_: object) -> None:
            nonlocal count
            count += 1

        engine = store._engine
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            while items := store.claim_due("me", T0, 60, per_notifier=50):
                store.mark_delivered([i.seq for i in items], T0)
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
        assert store.pending_count() == 0
        store.close()
        return count

    small, large = queries_to_drain(100), queries_to_drain(400)
    assert large <= 4 * small + 10, (small, large)
    # Batches: far fewer statements than the 800 rows (claims and marks, 50 at a time).
    assert large < 200, large
