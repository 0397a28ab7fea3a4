"""Several replicas on one state: each alert id reaches the receiver exactly once.

A "replica" is an independent ``Deps``: its own store object (own engine and
connections) on the same PostgreSQL schema or SQLite file, its own notifier
objects and its own RunPod client. Replicas run their cycles at the same time
(threads released together by a barrier) against one simulator whose FakeClock
both read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.core.ports import StoreError
from daemon.pipeline.digest import send_digest
from daemon.pipeline.outbox import LEASE_SECONDS, deliver_due
from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    HOOK,
    PG_URL,
    SLACK,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    make_config,
    sqlite_url,
)
from tests.support.receiver import Receiver

REPLICAS = 2


@dataclass
class State:
    url: str
    schema: str | None


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[State]:
    if request.param == "sqlite":
        yield State(sqlite_url(tmp_path), None)
    else:
        schema = request.getfixturevalue("pg_schema")
        yield State(PG_URL, schema)


def replicas(
    sim: Simulator, rx: Receiver, st: State, n: int = REPLICAS, **cfg: Any
) -> list[Daemon]:
    budgets = [
        day_budget(),
        day_budget("pod-daily", per="pod", limit=60),
        day_budget("forecast-daily", thresholds=[100], forecast=True, limit=150),
    ]
    config = make_config(rx, budgets, health={"after": "10m"}, **cfg)
    return [Daemon(sim, config, st.url, schema=st.schema) for _ in range(n)]


def together(fns: list[Callable[[], Any]], *, store_errors: bool = False) -> list[Any]:
    """Run ``fns`` in threads released at once; re-raise the first error.

    ``store_errors``: a ``StoreError`` (the one exception ``run_cycle`` may raise;
    the daemon logs it and tries again next tick) is returned in place of the
    result instead of raised."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fns[i]()
        except StoreError as e:
            if store_errors:
                results[i] = e
            else:
                errors.append(e)
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a replica's cycle did not finish"
    if errors:
        raise errors[0]
    return results


def test_concurrent_replicas_deliver_each_alert_exactly_once(
    growing: Simulator, rx: Receiver, state: State
) -> None:
    ds = replicas(growing, rx, state)
    decided: list[str] = []
    failed_cycles: list[StoreError] = []
    try:
        t = T0 + 20 * M
        outage = (T0 + 2 * H, T0 + 3 * H)  # billing fails: one health notice each way
        while t <= T0 + 16 * H:
            growing.clock.set(t)
            if t == outage[0]:
                growing.fail(ds[0].path("/billing"), status=500, times=1_000_000)
            if t == outage[1]:
                growing.clear_faults()
            for result in together([d.cycle for d in ds], store_errors=True):
                if isinstance(result, StoreError):
                    failed_cycles.append(result)  # see the xfail test below
                    continue
                decided += [a.id for a in result.alerts]
            t += 20 * M
        # a last pass lets any row a replica left behind go out
        growing.clock.advance(2 * H)
        for d in ds:
            deliver_due(d.store, d.notifiers, d.clock)
        ledger = {e.id for e in ds[0].store.ledger("default", T0 - 24 * H)}
        assert ds[0].store.pending_count() == 0
    finally:
        for d in ds:
            d.close()

    sent = Counter(r.headers["webhook-id"] for r in rx.requests_to(HOOK))
    assert {k: v for k, v in sent.items() if v != 1} == {}, "delivered more than once"
    assert set(sent) == ledger  # and nothing lost
    if not failed_cycles:  # a cycle that failed may have enqueued before it failed
        assert Counter(decided) == Counter(ledger)  # each decided by exactly one replica
    kinds = Counter(r.json["kind"] for r in rx.requests_to(HOOK))
    assert kinds["health"] == 2 and kinds["forecast"] == 1 and kinds["threshold"] >= 6
    assert len(rx.requests_to(SLACK)) == len(ledger)


def test_replicas_sharing_a_backlog_deliver_it_once(
    growing: Simulator, rx: Receiver, state: State
) -> None:
    """A notifier was down; two replicas drain its backlog at the same time."""
    ds = replicas(growing, rx, state, notify=("hook",))
    try:
        rx.set_down(True)
        for hours in (1, 5, 8, 10, 12):
            growing.clock.set(T0 + hours * H)
            together([d.cycle for d in ds], store_errors=True)
        pending = ds[0].store.pending_count()
        assert pending >= 5
        rx.set_down(False)
        rx.clear()
        for _ in range(10):
            if ds[0].store.pending_count() == 0:
                break
            growing.clock.advance(2 * H)
            together([lambda d=d: deliver_due(d.store, d.notifiers, d.clock) for d in ds])
        assert ds[0].store.pending_count() == 0
    finally:
        for d in ds:
            d.close()
    ids = [r.headers["webhook-id"] for r in rx.requests_to(HOOK)]
    assert len(ids) == pending
    assert len(set(ids)) == len(ids), Counter(ids).most_common(3)


def test_replicas_send_one_digest_per_day(
    growing: Simulator, rx: Receiver, state: State
) -> None:
    ds = replicas(growing, rx, state, digest={"cron": "0 9 * * *"})
    try:
        growing.clock.set(T0 + 9 * H)
        together([d.cycle for d in ds], store_errors=True)
        queued = together([lambda d=d: send_digest(d.deps) for d in ds])
        assert sorted(map(len, queued)) == [0, 1]  # one replica queued it, the other saw it
    finally:
        for d in ds:
            d.close()
    digests = [r for r in rx.requests_to(HOOK) if r.json["kind"] == "digest"]
    assert [r.headers["webhook-id"] for r in digests] == ["digest:all:2026-11-24"]


def test_a_replica_does_not_send_rows_whose_lease_ran_out_during_a_slow_batch(
    growing: Simulator, rx: Receiver, state: State
) -> None:
    """Replica A claims a backlog of 4 rows for one notifier (leased for the
    webhook's timeout plus a margin, ``lease_for``) and sends them one by one
    to a slow endpoint. By the time its first
    send returns the lease has run out (modelled by moving the shared clock
    past it); replica B then claims the remaining rows. A must not go on sending
    rows it no longer holds."""
    budgets = [day_budget(f"b{i}", thresholds=[50]) for i in range(4)]
    config = make_config(rx, budgets, notify=("hook",))
    a, b = (Daemon(growing, config, state.url, schema=state.schema) for _ in range(2))
    try:
        growing.clock.set(T0 + 6 * H)
        backlog = a.cycle(dry_run=True).alerts
        assert len(backlog) == 4
        a.store.enqueue(backlog, growing.clock())
        rx.delay(HOOK, 1.0)  # a slow endpoint: each POST takes a second

        reports: list[Any] = []
        sender = threading.Thread(
            target=lambda: reports.append(deliver_due(a.store, a.notifiers, a.clock))
        )
        sender.start()
        rx.wait_for(1, timeout=10, path=HOOK)  # A is sending its first row
        growing.clock.advance(timedelta(seconds=LEASE_SECONDS + 1))
        deadline = time.monotonic() + 10
        while _delivered(a) < 1:  # A recorded the first row
            assert time.monotonic() < deadline, "replica A never recorded its first row"
            time.sleep(0.02)
        report_b = deliver_due(b.store, b.notifiers, b.clock)
        sender.join(timeout=30)
        assert not sender.is_alive()
    finally:
        a.close()
        b.close()
    # Whether B sent some rows or found A's next claim in its way depends on
    # timing; what must hold is that every row went out, and only once.
    assert len(report_b.delivered) + sum(len(r.delivered) for r in reports) == len(backlog)
    ids = Counter(r.headers["webhook-id"] for r in rx.requests_to(HOOK))
    assert set(ids) == {x.id for x in backlog}
    assert {k: v for k, v in ids.items() if v > 1} == {}, "sent twice"


@pytest.mark.postgres
def test_concurrent_cycles_on_postgresql_do_not_fail(
    growing: Simulator, rx: Receiver, pg_schema: str
) -> None:
    ds = replicas(growing, rx, State(PG_URL, pg_schema), n=3)
    try:
        for k in range(1, 13):
            growing.clock.set(T0 + k * 20 * M)
            for result in together([d.cycle for d in ds]):
                assert result.billing_ok
    finally:
        for d in ds:
            d.close()


def _delivered(d: Daemon) -> int:
    return sum(s.delivered for s in d.store.delivery_states())


class StaleMeta:
    """The real store, except that ``get_meta`` answers what the state held
    before another replica's overlapping cycle wrote it: the interleaving of
    two replicas whose cycles run at the same time, made deterministic."""

    def __init__(self, store: Any, before: dict[str, str | None]) -> None:
        self._store = store
        self._before = before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_meta(self, key: str) -> str | None:
        if key in self._before:
            return self._before[key]
        return self._store.get_meta(key)


def test_overlapping_replicas_send_a_balance_crossing_once(
    rx: Receiver, tmp_path: Path
) -> None:
    from daemon.pipeline.cycle import run_cycle
    from daemon.pipeline.watch import arming_key
    from daemon.simulator import FakeClock
    from tests.pipeline.test_watch import DRAINING
    from tests.support.simulator import running_simulator

    config = make_config(rx, [day_budget(limit=1000)], balance={"below_usd": [50]})
    with running_simulator(DRAINING, clock=FakeClock(T0)) as sim:
        sim.clock.set(T0 + 2 * H)  # 40 USD left: under 50
        a, b = (Daemon(sim, config, sqlite_url(tmp_path)) for _ in range(2))
        try:
            before = {arming_key("default"): a.store.get_meta(arming_key("default"))}
            a.cycle()  # replica A decides the crossing at 02:00:00Z ...
            deps = b.deps  # ... B, one second later, read the arming before A wrote it
            deps.store = StaleMeta(b.store, before)
            deps.clock = lambda: sim.clock() + timedelta(seconds=1)
            run_cycle(deps)
        finally:
            a.close()
            b.close()
    balance = [r.json["id"] for r in rx.requests_to(HOOK) if r.json["kind"] == "balance"]
    assert len(balance) == 1, balance
