"""Tables, migrations and the schema version kept in ``meta``.

The module-level tables describe the CURRENT schema and are what the queries
use. Migrations create tables as they were at their version: a table that a
later version changes is frozen in ``_history`` for the earlier migration.

Version 4 replaced the v1 billing cache (``points`` + one ``coverage`` range per
(account, grouping, gpu filter)) by ``spend_points`` + ``coverage_segments``
keyed by (account, family); the old cache is dropped, not converted: the daemon
refetches it. Alerts, outbox, enforcement and meta are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from daemon.adapters.store.engine import SCHEMA_NAME, UtcDateTime
from daemon.core.ports import StoreError

# Advisory lock keys (any distinct 64-bit numbers; "rpbudget" in ASCII + n).
LOCK_MIGRATE = 0x7270627564676501
LOCK_CLAIM = 0x7270627564676502

metadata = MetaData()
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

meta_t = Table(
    "meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

# Times in epoch seconds: 150,000 points read back without parsing a string each.
points_t = Table(
    "spend_points",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("family", String(32), primary_key=True),
    Column("time", BigInteger, primary_key=True),
    Column("resource", String(300), primary_key=True),
    Column("hours", Integer, nullable=False),
    Column("amount", Float, nullable=False),
    Index("ix_spend_points_time", "time"),  # prune_points
)

segments_t = Table(
    "coverage_segments",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("family", String(32), primary_key=True),
    Column("start_at", BigInteger, primary_key=True),
    Column("end_at", BigInteger, nullable=False),
    Column("hours", Integer, nullable=False),
)

alerts_t = Table(
    "alerts",
    metadata,
    Column("id", String(1000), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("account", String(200), nullable=False),
    Column("budget", String(200), nullable=False),
    Column("group_key", String(400), nullable=False),
    Column("threshold", String(32), nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_alerts_account_created", "account", "created_at"),
)


def _outbox(md: MetaData, *extra: Any) -> Table:
    return Table(
        "outbox",
        md,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("alert_id", String(1000), ForeignKey("alerts.id"), nullable=False),
        Column("notifier", String(200), nullable=False),
        Column("status", String(16), nullable=False),  # pending | delivered | failed
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", UtcDateTime, nullable=False),
        Column("lease_until", UtcDateTime, nullable=True),
        Column("lease_owner", String(64), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("last_error_at", UtcDateTime, nullable=True),
        Column("delivered_at", UtcDateTime, nullable=True),
        *extra,
        UniqueConstraint("alert_id", "notifier", name="uq_outbox_alert_notifier"),
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_outbox_notifier_seq", "notifier", "seq"),
        sqlite_autoincrement=True,  # seq never reused: order stays the order of decisions
    )


outbox_t = _outbox(metadata, Column("retry_after_at", UtcDateTime, nullable=True))


def pending_index(dialect: str) -> Index:
    """``ix_outbox_pending_head``: only pending rows, so the head of each
    notifier's queue is one index probe away however many delivered rows the
    table holds. A partial index is a dialect option (``sqlite_where``,
    ``postgresql_where``), built for the connection's dialect when it is
    created: declaring ``postgresql_where`` up front makes SQLAlchemy import
    its whole PostgreSQL dialect (asyncpg's included) in every SQLite daemon."""
    # a table of its own: an Index on outbox_t's columns would join outbox_t.indexes
    t = Table(
        "outbox",
        MetaData(),
        Column("notifier", String(200)),
        Column("seq", _SEQ),
        Column("status", String(16)),
    )
    where: dict[str, Any] = {f"{dialect}_where": t.c.status == "pending"}
    return Index("ix_outbox_pending_head", t.c.notifier, t.c.seq, **where)

enforcement_t = Table(
    "enforcement",
    metadata,
    Column("instance_id", String(1000), primary_key=True),
    Column("pod_id", String(200), primary_key=True),
    Column("intent_at", UtcDateTime, nullable=False),
    Column("result", String(200), nullable=True),
    Column("result_at", UtcDateTime, nullable=True),
    Column("detail", Text, nullable=False),  # JSON: the intent's detail
    Column("result_detail", Text, nullable=True),  # JSON: the result's detail
)

enforcement_log_t = Table(
    "enforcement_log",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("event", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_enforcement_log_at", "at"),
    sqlite_autoincrement=True,
)

pods_t = Table(
    "pods",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("pod_id", String(200), primary_key=True),
    Column("name", String(400), nullable=False),
    Column("gpu_type", String(200), nullable=True),
    Column("gpu_count", Integer, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("last_status", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
)

resources_t = Table(
    "resources",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("family", String(32), primary_key=True),
    Column("resource_id", String(300), primary_key=True),
    Column("name", String(400), nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
)

# --------------------------------------------------------------------------- history

_history = MetaData()
_v1_points = Table(
    "points",
    _history,
    Column("account", String(200), primary_key=True),
    Column("grouping", String(32), primary_key=True),
    Column("gpu_filter", String(200), primary_key=True),
    Column("time", UtcDateTime, primary_key=True),
    Column("grp", String(300), primary_key=True),
    Column("amount", Float, nullable=False),
)
_v1_coverage = Table(
    "coverage",
    _history,
    Column("account", String(200), primary_key=True),
    Column("grouping", String(32), primary_key=True),
    Column("gpu_filter", String(200), primary_key=True),
    Column("start_at", UtcDateTime, nullable=False),
    Column("end_at", UtcDateTime, nullable=False),
)
_v1_meta = meta_t.to_metadata(_history)
_v2_alerts = alerts_t.to_metadata(_history)
_v2_outbox = _outbox(_history)


def _m1_buckets(conn: Connection) -> None:
    _history.create_all(conn, tables=[_v1_meta, _v1_points, _v1_coverage], checkfirst=False)


def _m2_ledger_outbox(conn: Connection) -> None:
    _history.create_all(conn, tables=[_v2_alerts, _v2_outbox], checkfirst=False)


def _m3_enforcement(conn: Connection) -> None:
    metadata.create_all(conn, tables=[enforcement_t, enforcement_log_t], checkfirst=False)


def _m4_families_registry_guard(conn: Connection) -> None:
    _v1_coverage.drop(conn)
    _v1_points.drop(conn)
    metadata.create_all(
        conn, tables=[points_t, segments_t, pods_t, resources_t], checkfirst=False
    )
    kind = "VARCHAR(32)" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    conn.exec_driver_sql(f"ALTER TABLE outbox ADD COLUMN retry_after_at {kind}")
    pending_index(conn.dialect.name).create(conn)


Migration = Callable[[Connection], None]

#: Ordered: ``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Migration, ...] = (
    _m1_buckets,
    _m2_ledger_outbox,
    _m3_enforcement,
    _m4_families_registry_guard,
)
SCHEMA_VERSION = len(MIGRATIONS)


def dialect_insert(table: Table, postgres: bool) -> Any:
    """An INSERT with ON CONFLICT support for the backend. The PostgreSQL
    dialect is imported on use: a SQLite daemon need not carry it."""
    if postgres:
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite_dialect.insert(table)


def upsert_meta(conn: Connection, key: str, value: str) -> None:
    ins = dialect_insert(meta_t, conn.dialect.name == "postgresql").values(key=key, value=value)
    conn.execute(ins.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def _read_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("meta"):
        return 0
    raw = conn.execute(
        select(meta_t.c.value).where(meta_t.c.key == "schema_version")
    ).scalar_one_or_none()
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise StoreError(
            f"state database schema_version {raw!r} is not a number", permanent=True
        ) from None


def migrate(engine: Engine, *, target: int | None = None, create_schema: str | None = None) -> int:
    """Bring the schema to ``target`` (default: the latest) in one transaction.

    Returns the version now in place. Raises ``StoreError(permanent=True)`` when
    the database is newer than this build knows. ``create_schema`` (PostgreSQL)
    is created first if missing, under the same lock (SQLite: ``BEGIN IMMEDIATE``).
    """
    goal = SCHEMA_VERSION if target is None else target
    if create_schema is not None and not SCHEMA_NAME.match(create_schema):
        raise StoreError(
            f"state schema {create_schema!r} is not a plain identifier", permanent=True
        )
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(LOCK_MIGRATE)))
            if create_schema is not None:  # under the lock: concurrent CREATE SCHEMA races
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{create_schema}"')
        current = _read_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"state database schema version {current} is newer than this runpod-budget "
                f"understands ({SCHEMA_VERSION}); upgrade runpod-budget or point state at "
                "another database",
                permanent=True,
            )
        for version in range(current, goal):
            MIGRATIONS[version](conn)
        if goal > current:
            upsert_meta(conn, "schema_version", str(goal))
        return max(current, goal)
