"""Engines for the state URL, the time type, and secret-free errors.

SQLite: WAL, ``busy_timeout``, foreign keys, ``synchronous=FULL`` and ``BEGIN
IMMEDIATE`` transactions, so two processes on one file serialise instead of
failing on lock upgrades. PostgreSQL: psycopg 3, an optional ``search_path``.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import DateTime, String, event
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from daemon.core import wording
from daemon.core.ports import StoreError

SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BAD_URL = (
    "state URL is not a valid database URL (expected sqlite:///PATH or "
    "postgresql://USER@HOST/DB)"
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; ``timestamptz`` on PostgreSQL, fixed-width
    ISO text on SQLite (``2026-11-24T00:00:00.000000+00:00`` sorts as time does)."""

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
            return _parse_utc(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _parse_utc(text: str) -> datetime:
    """SQLite's text of a time as an aware UTC datetime. Cached: a poll reads
    ~10,000 ledger rows that share a few window starts and creation times."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


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


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Redactor:
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


def is_corrupt_sqlite(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    t = str(orig).lower()
    return "not a database" in t or "malformed" in t


def is_busy_sqlite(exc: BaseException) -> bool:
    t = str(getattr(exc, "orig", exc)).lower()
    return "locked" in t or "busy" in t


# --------------------------------------------------------------------------- engine


def parse_url(url: str) -> URL:
    """The parsed URL; raises ``StoreError(permanent=True)`` without echoing it
    (the parser's message repeats the URL, password and all)."""
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError(BAD_URL, permanent=True) from None


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for a ``sqlite:///path`` or ``postgresql://`` state URL.

    ``schema`` (PostgreSQL only) sets ``search_path``. No connection is made
    here. Raises ``StoreError(permanent=True)`` for a bad URL or schema name.
    """
    u = parse_url(url)
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
        if not SCHEMA_NAME.match(schema):
            raise StoreError(
                f"state schema {schema!r} is not a plain identifier (letters, digits, _)",
                permanent=True,
            )
        options = u.query.get("options", "")
        if isinstance(options, tuple):
            options = " ".join(options)
        connect_args["options"] = f"{options} -csearch_path={schema}".strip()
    return sa.create_engine(u, pool_pre_ping=True, connect_args=connect_args)


# --------------------------------------------------------------------------- values


def aware(t: datetime, name: str) -> datetime:
    """``t`` in UTC; a naive datetime is a programming error (``ValueError``)."""
    if t.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {t!r}")
    return t.astimezone(UTC)


def epoch(t: datetime, name: str) -> int:
    """Whole epoch seconds of an aware datetime (the points and coverage tables
    store integers: no per-row parsing on read)."""
    return int(aware(t, name).timestamp())


def _json_default(o: object) -> Any:
    if isinstance(o, datetime):
        return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def dumps(d: Any) -> str:
    # strict JSON: a NaN or infinity in a stored payload would not be JSON
    return json.dumps(d, default=_json_default, ensure_ascii=False, allow_nan=False)


def parse_time(value: Any) -> datetime | None:
    """A stored ISO-8601 text as aware UTC (a naive one is taken as UTC); None
    for anything else."""
    t = wording.parse_time(value) if isinstance(value, str) else None
    return None if t is None else t.astimezone(UTC)
