"""The state store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

Modules: ``engine`` (URLs, engines, the time type, secret-free errors),
``schema`` (tables, migrations, schema version in ``meta``), and one mixin per
part of the ``Store`` port: ``spend`` (points + coverage), ``ledger`` (alerts),
``outbox`` (claims under owner leases), ``audit`` (enforcement), ``registry``
(pods, resources); ``base`` holds transactions and meta.

Every method takes and returns timezone-aware UTC datetimes (a naive one is a
``ValueError``) and is one transaction: ``BEGIN IMMEDIATE`` on SQLite, so two
processes on one file serialise; on PostgreSQL claims, per-series writes and
migrations take transaction-scoped advisory locks so replicas on one database
neither race nor send a row twice.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from daemon.adapters.store.audit import AuditMixin
from daemon.adapters.store.engine import (
    Redactor,
    first_line,
    is_busy_sqlite,
    make_engine,
    mask_url,
    parse_url,
)
from daemon.adapters.store.ledger import LedgerMixin
from daemon.adapters.store.outbox import OutboxMixin
from daemon.adapters.store.registry import RegistryMixin
from daemon.adapters.store.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    metadata,
    migrate,
    outbox_t,
    points_t,
    segments_t,
)
from daemon.adapters.store.spend import SpendMixin
from daemon.core.ports import Store, StoreError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SqlStore",
    "make_engine",
    "mask_url",
    "metadata",
    "migrate",
    "open_store",
    "outbox_t",
    "points_t",
    "segments_t",
]


class SqlStore(
    SpendMixin, RegistryMixin, LedgerMixin, OutboxMixin, AuditMixin
):
    """The ``daemon.core.ports.Store`` on SQLite or PostgreSQL. Use ``open_store``."""


def open_store(url: str, *, schema: str | None = None) -> SqlStore:
    """Open (and create or migrate) the state store at ``url``.

    ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``sqlite://``
    (memory), or ``postgresql://`` / ``postgres://`` / ``postgresql+psycopg://``.
    ``schema`` (PostgreSQL only) sets ``search_path`` and is created if missing;
    ``?options=-csearch_path%3Dx`` in the URL works too.

    Raises ``StoreError``: ``permanent`` for a corrupt SQLite file, a schema
    newer than this build, a bad URL; not permanent for an unreachable server.
    """
    parsed = parse_url(url)
    engine = make_engine(url, schema=schema)
    store = SqlStore(engine, display_url=mask_url(parsed), redact=Redactor(parsed))
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
    msg = store._redact(first_line(e))
    if url.get_backend_name() == "sqlite":
        return StoreError(
            f"cannot open the state file {url.database}: {_ownership(url.database) or msg}",
            permanent=not is_busy_sqlite(e),
        )
    if isinstance(e, (OperationalError, InterfaceError)):
        return StoreError(
            f"cannot reach the PostgreSQL state database {store.url}: {msg}", permanent=False
        )
    return StoreError(
        f"cannot create or migrate the state schema in {store.url}: {msg}", permanent=True
    )


def _ownership(database: str | None) -> str | None:
    """Say which uid must own the state directory when this process cannot
    write it (a bind mount owned by root, a unit without StateDirectory=)."""
    if not database or database == ":memory:":
        return None
    db = Path(database)
    d = db.parent
    uid, gid = os.geteuid(), os.getegid()
    blocked = (d.exists() and not os.access(d, os.W_OK | os.X_OK)) or (
        db.exists() and not os.access(db, os.R_OK | os.W_OK)
    )
    if not blocked:
        return None
    owner = d.stat().st_uid if d.exists() else "?"
    return (
        f"directory {d} is owned by uid {owner} and not writable by this process "
        f"(uid {uid}); make uid {uid} own it, e.g. install -d -o {uid} -g {gid} -m 0700 {d}"
    )


def _conforms(store: SqlStore) -> Store:
    """Never called: makes mypy check ``SqlStore`` against the ``Store`` protocol."""
    return store
