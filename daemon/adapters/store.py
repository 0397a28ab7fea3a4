"""The state store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

Tables (see ``docs/architecture.md``):

- ``meta``: ``schema_version`` and small daemon key/values.
- ``points`` + ``coverage``: the hourly billing cache, one coverage range per series.
- ``alerts`` (the ledger, unique id) + ``outbox`` (one row per alert x notifier,
  leased for delivery).
- ``enforcement`` (one intent/result row per (instance, pod)) and
  ``enforcement_log`` (an append-only audit of refusals and other events).

Times are stored as UTC: ``timestamptz`` on PostgreSQL, fixed-width ISO-8601 text
(``2026-11-24T00:00:00.000000+00:00``, which sorts as time does) on SQLite. Every
method takes and returns timezone-aware UTC datetimes; a naive datetime is a
programming error (``ValueError``).

Every method is one transaction. SQLite transactions are ``BEGIN IMMEDIATE`` so
two processes on one file serialise instead of failing on lock upgrades; on
PostgreSQL, claiming outbox rows and migrating take transaction-scoped advisory
locks so several replicas on one database neither race nor send a row twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    event,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from daemon.core.model import Alert, Group, SeriesKey, SpendPoint, fmt_num
from daemon.core.ports import (
    Coverage,
    DeliveryState,
    LedgerEntry,
    OutboxItem,
    Store,
    StoreError,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SqlStore",
    "make_engine",
    "mask_url",
    "migrate",
    "open_store",
]

# Advisory lock keys (any two distinct 64-bit numbers; "rpbudget" in ASCII + n).
_LOCK_MIGRATE = 0x7270627564676501
_LOCK_CLAIM = 0x7270627564676502


def _series_lock(series: SeriesKey) -> int:
    """A signed 64-bit advisory lock id for one billing series."""
    digest = hashlib.blake2b(
        f"points\0{series.account}\0{series.grouping}\0{series.gpu_filter}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


# --------------------------------------------------------------------------- types


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; ``timestamptz`` on PostgreSQL, ISO text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --------------------------------------------------------------------------- schema
#
# The module-level tables describe the CURRENT schema and are what the queries use.
# Migrations create tables as they were at that version: when a later version
# changes a table, add a migration with ALTER statements and freeze the earlier
# migration's definition (do not let it pick up the new column from here).

metadata = MetaData()

meta_t = Table(
    "meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

points_t = Table(
    "points",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("grouping", String(32), primary_key=True),
    Column("gpu_filter", String(200), primary_key=True),
    Column("time", UtcDateTime, primary_key=True),
    Column("grp", String(300), primary_key=True),
    Column("amount", Float, nullable=False),
)

coverage_t = Table(
    "coverage",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("grouping", String(32), primary_key=True),
    Column("gpu_filter", String(200), primary_key=True),
    Column("start_at", UtcDateTime, nullable=False),
    Column("end_at", UtcDateTime, nullable=False),
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

outbox_t = Table(
    "outbox",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
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
    UniqueConstraint("alert_id", "notifier", name="uq_outbox_alert_notifier"),
    Index("ix_outbox_status_due", "status", "next_attempt_at"),
    Index("ix_outbox_notifier_seq", "notifier", "seq"),
    sqlite_autoincrement=True,  # seq never reused: order stays the order of decisions
)

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
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("event", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_enforcement_log_at", "at"),
    sqlite_autoincrement=True,
)


def _m1_buckets(conn: Connection) -> None:
    metadata.create_all(conn, tables=[meta_t, points_t, coverage_t], checkfirst=False)


def _m2_ledger_outbox(conn: Connection) -> None:
    metadata.create_all(conn, tables=[alerts_t, outbox_t], checkfirst=False)


def _m3_enforcement(conn: Connection) -> None:
    metadata.create_all(conn, tables=[enforcement_t, enforcement_log_t], checkfirst=False)


Migration = Callable[[Connection], None]

#: Ordered: ``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Migration, ...] = (_m1_buckets, _m2_ledger_outbox, _m3_enforcement)
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- urls + errors


def mask_url(url: str | URL) -> str:
    """The URL with any password (in the authority or the query) shown as ``***``."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable state URL>"
    hidden = [k for k in u.query if k.lower() == "password"]
    if hidden:
        u = u.difference_update_query(hidden)
    text = u.render_as_string(hide_password=True)
    if hidden:
        text += ("&" if u.query else "?") + "password=***"
    return text


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Redactor:
    """Removes a URL's password from any text (driver messages may echo conninfo)."""

    def __init__(self, url: URL) -> None:
        found: list[str] = []
        for value in (url.password, url.query.get("password")):
            if isinstance(value, tuple):
                found.extend(str(v) for v in value if v)
            elif value:
                found.append(str(value))
        self._secrets = found

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text


def _is_corrupt_sqlite(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    t = str(orig).lower()
    return "not a database" in t or "malformed" in t


def _is_busy_sqlite(exc: BaseException) -> bool:
    t = str(getattr(exc, "orig", exc)).lower()
    return "locked" in t or "busy" in t


# --------------------------------------------------------------------------- engine


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for a ``sqlite:///path`` or ``postgresql://`` state URL.

    SQLite: parent directories are created; WAL, ``busy_timeout``, foreign keys,
    ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` transactions. PostgreSQL: the
    psycopg 3 driver; ``schema`` sets ``search_path`` (and is created if missing
    by ``open_store``). No connection is made here.
    """
    try:
        u = make_url(url)
    except ArgumentError:
        # The parser's message repeats the URL, password and all: say less.
        raise StoreError(
            "state URL is not a valid database URL (expected sqlite:///PATH or "
            "postgresql://USER@HOST/DB)",
            permanent=True,
        ) from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise StoreError("state: `schema` applies to PostgreSQL only", permanent=True)
        return _sqlite_engine(u)
    if backend in {"postgresql", "postgres"}:
        return _pg_engine(u, schema)
    raise StoreError(
        f"state URL {mask_url(u)!s} is neither sqlite:///PATH nor postgresql://…", permanent=True
    )


def _sqlite_engine(u: URL) -> Engine:
    db = u.database or ""
    memory = db in {"", ":memory:"} or db.startswith("file::memory:")
    if not memory:
        path = Path(db)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the directory of the state file {path}: {e.strerror or e}",
                permanent=True,
            ) from None
        if path.is_dir():
            raise StoreError(f"state file {path} is a directory", permanent=True)
        engine = sa.create_engine(u.set(drivername="sqlite+pysqlite"))
    else:
        engine = sa.create_engine(
            "sqlite+pysqlite://",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _enable_wal(cur)
            cur.execute("PRAGMA synchronous = FULL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enable_wal(cur: Any) -> None:
    """``PRAGMA journal_mode = WAL``, retried: switching a new file to WAL while
    another process or thread opens it returns "database is locked" at once,
    without waiting for ``busy_timeout``."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _pg_engine(u: URL, schema: str | None) -> Engine:
    u = u.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in u.query:
        connect_args["connect_timeout"] = 10
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"state schema {schema!r} is not a plain identifier (letters, digits, _)",
                permanent=True,
            )
        options = u.query.get("options", "")
        if isinstance(options, tuple):
            options = " ".join(options)
        connect_args["options"] = f"{options} -csearch_path={schema}".strip()
    return sa.create_engine(u, pool_pre_ping=True, connect_args=connect_args)


# --------------------------------------------------------------------------- migrations


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
    is created first if missing, under the same lock.
    """
    goal = SCHEMA_VERSION if target is None else target
    if create_schema is not None and not _SCHEMA_NAME.match(create_schema):
        raise StoreError(
            f"state schema {create_schema!r} is not a plain identifier", permanent=True
        )
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_LOCK_MIGRATE)))
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
            _upsert_meta(conn, "schema_version", str(goal))
        return max(current, goal)


def _dialect_insert(table: Table, postgres: bool) -> Any:
    """An INSERT with ON CONFLICT support for the backend. The PostgreSQL
    dialect is imported on use: a SQLite daemon need not carry it."""
    if postgres:
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite_dialect.insert(table)


def _upsert_meta(conn: Connection, key: str, value: str) -> None:
    ins = _dialect_insert(meta_t, conn.dialect.name == "postgresql").values(key=key, value=value)
    conn.execute(ins.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


# --------------------------------------------------------------------------- helpers


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {t!r}")
    return t.astimezone(UTC)


def _json_default(o: object) -> Any:
    if isinstance(o, datetime):
        return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def _dumps(d: Any) -> str:
    return json.dumps(d, default=_json_default, ensure_ascii=False)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


_GROUP_FIELDS = ("pod_id", "pod_name", "gpu_type")


@dataclass(frozen=True, slots=True)
class _LedgerFields:
    account: str
    budget: str
    group_key: str
    threshold: str
    window_start: datetime


def _ledger_fields(alert: Alert, created_at: datetime) -> _LedgerFields:
    """The dedupe columns of an alert, taken from its contract payload.

    Kinds without a budget instance (digest, test, health) store ``""`` and
    ``created_at`` for what they lack.
    """
    p = alert.payload
    group = p.get("group")
    group_key = ""
    if isinstance(group, dict):
        group_key = Group(**{k: group.get(k) for k in _GROUP_FIELDS}).key
    window = p.get("window")
    window_start = _parse_time(window.get("start")) if isinstance(window, dict) else None
    tp = p.get("threshold_percent")
    threshold = "" if alert.kind == "forecast" or not isinstance(tp, int | float) else fmt_num(tp)
    return _LedgerFields(
        account=str(p.get("account") or ""),
        budget=str(p.get("budget") or ""),
        group_key=group_key,
        threshold=threshold,
        window_start=window_start or created_at,
    )


# --------------------------------------------------------------------------- the store


class SqlStore:
    """The ``daemon.core.ports.Store`` on SQLite or PostgreSQL. Use ``open_store``."""

    def __init__(self, engine: Engine, *, display_url: str, redact: Callable[[str], str]) -> None:
        self._engine = engine
        self._display_url = display_url
        self._redact = redact
        self._pg = engine.dialect.name == "postgresql"

    def __repr__(self) -> str:
        return f"SqlStore({self._display_url!r})"

    @property
    def url(self) -> str:
        """The state URL with any password masked."""
        return self._display_url

    # -- plumbing

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except StoreError:
            raise
        except (DBAPIError, SQLAlchemyError, sqlite3.Error) as e:
            raise self._error(e, what) from None

    def _error(self, e: BaseException, what: str) -> StoreError:
        msg = self._redact(_first_line(e))
        if self._engine.dialect.name == "sqlite" and _is_corrupt_sqlite(e):
            return StoreError(
                f"state file {self._engine.url.database} is not a valid SQLite database "
                f"({msg}); move it away or point state at another file",
                permanent=True,
            )
        return StoreError(
            f"state store ({self._display_url}): {what} failed: {msg}", permanent=False
        )

    def _insert(self, table: Table) -> Any:
        return _dialect_insert(table, self._pg)

    # -- buckets

    @staticmethod
    def _series_where(table: Table, series: SeriesKey) -> Any:
        return and_(
            table.c.account == series.account,
            table.c.grouping == series.grouping,
            table.c.gpu_filter == series.gpu_filter,
        )

    def coverage(self, series: SeriesKey) -> Coverage | None:
        with self._tx("reading coverage") as conn:
            row = conn.execute(
                select(coverage_t.c.start_at, coverage_t.c.end_at).where(
                    self._series_where(coverage_t, series)
                )
            ).one_or_none()
        return None if row is None else Coverage(start=row.start_at, end=row.end_at)

    def replace_points(
        self, series: SeriesKey, start: datetime, end: datetime, points: Sequence[SpendPoint]
    ) -> None:
        """Atomically replace every point of ``series`` in ``[start, end)`` and
        extend the series' coverage to include that range.

        Points with the same (time, group) are summed. A point outside
        ``[start, end)`` is a ``ValueError``. Coverage is one range per series:
        the union when the new range touches or overlaps the stored one; when
        the two are disjoint, the later of the two is kept (the planner only
        asks for contiguous ranges, so that happens only after a long outage,
        and recent hours matter more).
        """
        start, end = _aware(start, "start"), _aware(end, "end")
        if end < start:
            raise ValueError(f"replace_points: end {end} is before start {start}")
        merged: dict[tuple[datetime, str], float] = {}
        for p in points:
            t = _aware(p.time, "point time")
            if not start <= t < end:
                raise ValueError(f"point at {t.isoformat()} is outside [{start}, {end})")
            merged[(t, p.group)] = merged.get((t, p.group), 0.0) + float(p.amount)
        key = {
            "account": series.account,
            "grouping": series.grouping,
            "gpu_filter": series.gpu_filter,
        }
        with self._tx("replacing points") as conn:
            if self._pg:
                # Replicas fetch the same series each poll: without this lock two
                # delete-then-insert transactions interleave and one fails on the
                # primary key. SQLite serialises writers by itself.
                conn.execute(select(func.pg_advisory_xact_lock(_series_lock(series))))
            conn.execute(
                points_t.delete().where(
                    self._series_where(points_t, series),
                    points_t.c.time >= start,
                    points_t.c.time < end,
                )
            )
            if merged:
                conn.execute(
                    points_t.insert(),
                    [{**key, "time": t, "grp": g, "amount": a} for (t, g), a in merged.items()],
                )
            row = conn.execute(
                select(coverage_t.c.start_at, coverage_t.c.end_at).where(
                    self._series_where(coverage_t, series)
                )
            ).one_or_none()
            if row is None:
                conn.execute(coverage_t.insert().values(**key, start_at=start, end_at=end))
                return
            old_start, old_end = row.start_at, row.end_at
            if start <= old_end and old_start <= end:  # touching or overlapping
                new_start, new_end = min(start, old_start), max(end, old_end)
            elif start > old_end:
                new_start, new_end = start, end
            else:
                new_start, new_end = old_start, old_end
            conn.execute(
                coverage_t.update()
                .where(self._series_where(coverage_t, series))
                .values(start_at=new_start, end_at=new_end)
            )

    def points(self, series: SeriesKey, start: datetime, end: datetime) -> list[SpendPoint]:
        """Stored points of ``series`` in ``[start, end)`` sorted by time, group."""
        start, end = _aware(start, "start"), _aware(end, "end")
        with self._tx("reading points") as conn:
            rows = conn.execute(
                select(points_t.c.time, points_t.c.grp, points_t.c.amount)
                .where(
                    self._series_where(points_t, series),
                    points_t.c.time >= start,
                    points_t.c.time < end,
                )
                .order_by(points_t.c.time, points_t.c.grp)
            ).all()
        return [SpendPoint(time=r.time, group=r.grp, amount=float(r.amount)) for r in rows]

    def prune_points(self, before: datetime) -> int:
        """Delete points older than ``before`` and trim coverage to match.

        Returns the number of points deleted.
        """
        before = _aware(before, "before")
        with self._tx("pruning points") as conn:
            deleted = conn.execute(points_t.delete().where(points_t.c.time < before)).rowcount
            conn.execute(coverage_t.delete().where(coverage_t.c.end_at <= before))
            conn.execute(
                coverage_t.update().where(coverage_t.c.start_at < before).values(start_at=before)
            )
        return int(deleted or 0)

    # -- ledger + outbox

    def prune_alerts(self, before: datetime) -> int:
        """Forget alerts created before ``before`` whose deliveries are all settled
        (delivered or failed), with their outbox rows. Pending ones are kept,
        however old. Returns the number of alerts deleted."""
        before = _aware(before, "before")
        pending = (
            exists()
            .where(outbox_t.c.alert_id == alerts_t.c.id, outbox_t.c.status == "pending")
            .correlate(alerts_t)
        )
        settled_old = select(alerts_t.c.id).where(alerts_t.c.created_at < before, ~pending)
        with self._tx("pruning alerts") as conn:
            conn.execute(outbox_t.delete().where(outbox_t.c.alert_id.in_(settled_old)))
            deleted = conn.execute(
                alerts_t.delete().where(alerts_t.c.created_at < before, ~pending)
            ).rowcount
        return int(deleted or 0)

    def ledger(self, account: str, since: datetime) -> list[LedgerEntry]:
        """Every decided alert of ``account`` created at or after ``since``."""
        since = _aware(since, "since")
        with self._tx("reading the alert ledger") as conn:
            rows = conn.execute(
                select(alerts_t)
                .where(alerts_t.c.account == account, alerts_t.c.created_at >= since)
                .order_by(alerts_t.c.created_at, alerts_t.c.id)
            ).all()
        return [
            LedgerEntry(
                id=r.id,
                kind=r.kind,
                account=r.account,
                budget=r.budget,
                group_key=r.group_key,
                threshold=r.threshold,
                window_start=r.window_start,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def enqueue(self, alerts: Sequence[Alert], now: datetime) -> list[str]:
        """Insert alerts and one outbox row per notifier, all in one transaction.

        An alert whose id exists already (another replica, a restart, a repeat
        in ``alerts``) is skipped with its outbox rows. Returns the ids actually
        inserted, in the order given.
        """
        now = _aware(now, "now")
        # Insert in id order so two replicas enqueuing overlapping sets cannot deadlock.
        order = sorted(range(len(alerts)), key=lambda i: alerts[i].id)
        inserted: set[int] = set()
        with self._tx("enqueuing alerts") as conn:
            for i in order:
                alert = alerts[i]
                f = _ledger_fields(alert, now)
                res = conn.execute(
                    self._insert(alerts_t)
                    .values(
                        id=alert.id,
                        kind=alert.kind,
                        account=f.account,
                        budget=f.budget,
                        group_key=f.group_key,
                        threshold=f.threshold,
                        window_start=f.window_start,
                        created_at=now,
                        payload=_dumps(alert.payload),
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(alerts_t.c.id)
                )
                if res.first() is None:  # decided before: another replica, a restart
                    continue
                inserted.add(i)
                notifiers = list(dict.fromkeys(alert.notifiers))
                if notifiers:
                    conn.execute(
                        outbox_t.insert(),
                        [
                            {
                                "alert_id": alert.id,
                                "notifier": n,
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": now,
                            }
                            for n in notifiers
                        ],
                    )
        return [alerts[i].id for i in sorted(inserted)]

    def claim_due(self, now: datetime, lease_seconds: float, limit: int = 100) -> list[OutboxItem]:
        """Lease due, pending outbox rows, oldest first, so that no other store
        (replica, process) gets them while the lease runs.

        Per notifier, rows come in ``seq`` order, and a row is held back while an
        earlier row of the same notifier is pending and not yet due or leased
        (still being sent): a notifier that was down gets its backlog in order.
        """
        now = _aware(now, "now")
        lease_until = now + timedelta(seconds=lease_seconds)
        owner = secrets.token_hex(16)
        o = outbox_t
        earlier = outbox_t.alias("earlier")
        blocked = exists().where(
            earlier.c.notifier == o.c.notifier,
            earlier.c.seq < o.c.seq,
            earlier.c.status == "pending",
            or_(
                earlier.c.next_attempt_at > now,
                and_(earlier.c.lease_until.is_not(None), earlier.c.lease_until >= now),
            ),
        )
        query = (
            select(
                o.c.seq,
                o.c.alert_id,
                o.c.notifier,
                o.c.attempts,
                o.c.next_attempt_at,
                o.c.last_error,
                alerts_t.c.kind,
                alerts_t.c.payload,
            )
            .join(alerts_t, alerts_t.c.id == o.c.alert_id)
            .where(
                o.c.status == "pending",
                o.c.next_attempt_at <= now,
                or_(o.c.lease_until.is_(None), o.c.lease_until < now),
                ~blocked,
            )
            .order_by(o.c.seq)
            .limit(limit)
        )
        items: list[OutboxItem] = []
        with self._tx("claiming outbox rows") as conn:
            if self._pg:
                # Serialise claims across replicas: each sees the others' leases.
                conn.execute(select(func.pg_advisory_xact_lock(_LOCK_CLAIM)))
            for r in conn.execute(query).all():
                res = conn.execute(
                    o.update()
                    .where(
                        o.c.seq == r.seq,
                        o.c.status == "pending",
                        or_(o.c.lease_until.is_(None), o.c.lease_until < now),
                    )
                    .values(lease_until=lease_until, lease_owner=owner)
                )
                if res.rowcount != 1:
                    continue
                items.append(
                    OutboxItem(
                        seq=int(r.seq),
                        alert=Alert(
                            id=r.alert_id,
                            kind=r.kind,
                            notifiers=(r.notifier,),
                            payload=json.loads(r.payload),
                        ),
                        notifier=r.notifier,
                        attempts=int(r.attempts),
                        next_attempt_at=r.next_attempt_at,
                        last_error=r.last_error,
                    )
                )
        return items

    def mark_delivered(self, seq: int, now: datetime) -> None:
        """The row was delivered: it is never claimed again."""
        now = _aware(now, "now")
        with self._tx("marking a delivery") as conn:
            conn.execute(
                outbox_t.update()
                .where(outbox_t.c.seq == seq, outbox_t.c.status != "delivered")
                .values(status="delivered", delivered_at=now, lease_until=None, lease_owner=None)
            )

    def mark_failed(
        self, seq: int, now: datetime, error: str, *, permanent: bool, next_attempt_at: datetime
    ) -> None:
        """A delivery attempt failed. ``permanent``: status ``failed``, never retried;
        otherwise the row stays pending, due again at ``next_attempt_at``.

        A row delivered meanwhile (by a replica whose lease ran on) stays delivered.
        ``error`` is stored as given: callers pass secret-free text.
        """
        now = _aware(now, "now")
        next_attempt_at = _aware(next_attempt_at, "next_attempt_at")
        values: dict[str, Any] = {
            "attempts": outbox_t.c.attempts + 1,
            "last_error": error,
            "last_error_at": now,
            "lease_until": None,
            "lease_owner": None,
        }
        if permanent:
            values["status"] = "failed"
        else:
            values["next_attempt_at"] = next_attempt_at
        with self._tx("marking a failed delivery") as conn:
            conn.execute(
                outbox_t.update()
                .where(outbox_t.c.seq == seq, outbox_t.c.status == "pending")
                .values(**values)
            )

    def delivery_states(self) -> list[DeliveryState]:
        """Per notifier (sorted by name): counts by status and the latest error."""
        o = outbox_t
        counts = (
            select(
                o.c.notifier,
                func.sum(sa.case((o.c.status == "pending", 1), else_=0)).label("pending"),
                func.sum(sa.case((o.c.status == "delivered", 1), else_=0)).label("delivered"),
                func.sum(sa.case((o.c.status == "failed", 1), else_=0)).label("failed"),
            )
            .group_by(o.c.notifier)
            .order_by(o.c.notifier)
        )
        errors = (
            select(o.c.notifier, o.c.last_error, o.c.last_error_at)
            .where(o.c.last_error_at.is_not(None))
            .order_by(o.c.notifier, o.c.last_error_at.desc(), o.c.seq.desc())
        )
        with self._tx("reading delivery states") as conn:
            rows = conn.execute(counts).all()
            last: dict[str, tuple[str | None, datetime | None]] = {}
            for r in conn.execute(errors):
                last.setdefault(r.notifier, (r.last_error, r.last_error_at))
        return [
            DeliveryState(
                notifier=r.notifier,
                pending=int(r.pending or 0),
                delivered=int(r.delivered or 0),
                failed_permanent=int(r.failed or 0),
                last_error=last.get(r.notifier, (None, None))[0],
                last_error_at=last.get(r.notifier, (None, None))[1],
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        """Outbox rows not yet delivered nor failed for good."""
        with self._tx("counting pending rows") as conn:
            n = conn.execute(
                select(func.count()).select_from(outbox_t).where(outbox_t.c.status == "pending")
            ).scalar_one()
        return int(n)

    # -- meta

    def get_meta(self, key: str) -> str | None:
        with self._tx("reading meta") as conn:
            value = conn.execute(
                select(meta_t.c.value).where(meta_t.c.key == key)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise ValueError("schema_version is managed by migrations")
        with self._tx("writing meta") as conn:
            _upsert_meta(conn, key, value)

    # -- enforcement

    def record_intent(
        self, instance_id: str, pod_id: str, now: datetime, detail: dict[str, Any]
    ) -> bool:
        """Write the intent to stop ``pod_id`` for ``instance_id`` before the call.
        Returns False if an intent for (instance_id, pod_id) exists already."""
        now = _aware(now, "now")
        with self._tx("recording an enforcement intent") as conn:
            res = conn.execute(
                self._insert(enforcement_t)
                .values(
                    instance_id=instance_id, pod_id=pod_id, intent_at=now, detail=_dumps(detail)
                )
                .on_conflict_do_nothing(index_elements=["instance_id", "pod_id"])
                .returning(enforcement_t.c.pod_id)
            )
            inserted = res.first() is not None
        return inserted

    def record_result(
        self, instance_id: str, pod_id: str, now: datetime, result: str, detail: dict[str, Any]
    ) -> None:
        """Record the outcome of a stop (``stopped``, ``failed``, ``dry_run`` …).
        Without an earlier intent, the row is created with ``intent_at = now``."""
        now = _aware(now, "now")
        with self._tx("recording an enforcement result") as conn:
            res = conn.execute(
                enforcement_t.update()
                .where(enforcement_t.c.instance_id == instance_id, enforcement_t.c.pod_id == pod_id)
                .values(result=result, result_at=now, result_detail=_dumps(detail))
            )
            if res.rowcount == 0:
                conn.execute(
                    enforcement_t.insert().values(
                        instance_id=instance_id,
                        pod_id=pod_id,
                        intent_at=now,
                        result=result,
                        result_at=now,
                        detail="{}",
                        result_detail=_dumps(detail),
                    )
                )

    def record_audit(self, now: datetime, event: str, detail: dict[str, Any]) -> None:
        """Append an enforcement event that is not a stop (a refusal and why)."""
        now = _aware(now, "now")
        with self._tx("recording an audit event") as conn:
            conn.execute(
                enforcement_log_t.insert().values(at=now, event=event, detail=_dumps(detail))
            )

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        """Enforcement history, newest first.

        Stops: ``{"at", "event": "stop", "instance_id", "pod_id", "intent_at",
        "result" (None while only the intent exists), "result_at", "detail"}``
        where ``detail`` is the intent's detail updated with the result's.
        Other events (``record_audit``): ``{"at", "event", "detail"}``.
        """
        e, log = enforcement_t, enforcement_log_t
        with self._tx("reading the enforcement audit") as conn:
            stops = conn.execute(
                select(e)
                .order_by(sa.func.coalesce(e.c.result_at, e.c.intent_at).desc())
                .limit(limit)
            ).all()
            events = conn.execute(
                select(log).order_by(log.c.at.desc(), log.c.seq.desc()).limit(limit)
            ).all()
        out: list[tuple[datetime, int, dict[str, Any]]] = []
        for r in stops:
            row = _stop_row(r)
            out.append((row["at"], 0, row))
        for r in events:
            out.append(
                (r.at, int(r.seq), {"at": r.at, "event": r.event, "detail": json.loads(r.detail)})
            )
        out.sort(key=lambda x: (x[0], x[1]), reverse=True)
        return [d for _, _, d in out[:limit]]

    def enforcement_row(self, instance_id: str, pod_id: str) -> dict[str, Any] | None:
        """The intent/result row of (instance_id, pod_id) as in ``audit()``, or None."""
        e = enforcement_t
        with self._tx("reading an enforcement row") as conn:
            r = conn.execute(
                select(e).where(e.c.instance_id == instance_id, e.c.pod_id == pod_id)
            ).one_or_none()
        return None if r is None else _stop_row(r)

    def close(self) -> None:
        self._engine.dispose()


def _stop_row(r: Any) -> dict[str, Any]:
    """An ``enforcement`` row as an audit dict (``detail``: intent's, updated by result's)."""
    detail = dict(json.loads(r.detail))
    if r.result_detail:
        detail.update(json.loads(r.result_detail))
    return {
        "at": r.result_at or r.intent_at,
        "event": "stop",
        "instance_id": r.instance_id,
        "pod_id": r.pod_id,
        "intent_at": r.intent_at,
        "result": r.result,
        "result_at": r.result_at,
        "detail": detail,
    }


# --------------------------------------------------------------------------- open


def open_store(url: str, *, schema: str | None = None) -> SqlStore:
    """Open (and create or migrate) the state store at ``url``.

    ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``sqlite://``
    (memory), or ``postgresql://`` / ``postgres://`` / ``postgresql+psycopg://``.
    ``schema`` (PostgreSQL only) sets ``search_path`` and is created if missing;
    ``?options=-csearch_path%3Dx`` in the URL works too.

    Raises ``StoreError``: ``permanent`` for a corrupt SQLite file, a schema
    newer than this build, a bad URL; not permanent for an unreachable server.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            "state URL is not a valid database URL (expected sqlite:///PATH or "
            "postgresql://USER@HOST/DB)",
            permanent=True,
        ) from None
    display = mask_url(parsed)
    redact = _Redactor(parsed)
    engine = make_engine(url, schema=schema)
    store = SqlStore(engine, display_url=display, redact=redact)
    try:
        migrate(engine, create_schema=schema)
    except StoreError:
        engine.dispose()
        raise
    except (DBAPIError, SQLAlchemyError, sqlite3.Error) as e:
        engine.dispose()
        raise _open_error(e, store, parsed) from None
    return store


def _open_error(e: BaseException, store: SqlStore, url: URL) -> StoreError:
    """Why the store cannot be opened, as the user should read it."""
    err = store._error(e, "opening")
    if err.permanent:
        return err
    msg = store._redact(_first_line(e))
    if url.get_backend_name() == "sqlite":
        return StoreError(
            f"cannot open the state file {url.database}: {msg}",
            permanent=not _is_busy_sqlite(e),
        )
    if isinstance(e, (OperationalError, InterfaceError)):
        return StoreError(
            f"cannot reach the PostgreSQL state database {store.url}: {msg}", permanent=False
        )
    return StoreError(
        f"cannot create or migrate the state schema in {store.url}: {msg}", permanent=True
    )


def _conforms(store: SqlStore) -> Store:
    """Never called: makes mypy check ``SqlStore`` against the ``Store`` protocol."""
    return store
