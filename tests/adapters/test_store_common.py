"""Shared fixtures and helpers of the store tests (no tests here).

Every behaviour test runs on a real SQLite file and on the real PostgreSQL
server; PostgreSQL tests live in a schema of their own (dropped afterwards)
because other test runs share the database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from daemon.adapters.store import SqlStore, make_engine, open_store
from daemon.core.model import Alert, SeriesKey

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"

T0 = datetime(2026, 11, 24, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)
PODS = SeriesKey("research", "pods")
ACCOUNT = SeriesKey("research", "account")


def _pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_CONNINFO, connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable: {str(e).strip()}"


PG_SKIP = _pg_unreachable()


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


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    schema = f"rpb_store_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        drop_schema(schema)


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
        if PG_SKIP:
            pytest.skip(PG_SKIP)
        schema = f"rpb_store_{uuid.uuid4().hex[:16]}"
        b = Backend("postgres", PG_URL, schema, [])
    try:
        yield b
    finally:
        for s in b.opened:
            s.close()
        if schema is not None:
            drop_schema(schema)


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


def claim_all(
    store: SqlStore, now: datetime, lease: float = 60, owner: str = "me"
) -> list[tuple[str, str]]:
    return [(i.alert.id, i.notifier) for i in store.claim_due(owner, now, lease)]


def run_together(workers: list[Callable[[], None]]) -> None:
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
