"""The plumbing every part of the store shares: transactions, errors, meta."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from daemon.adapters.store.engine import first_line, is_corrupt_sqlite
from daemon.adapters.store.schema import dialect_insert, meta_t, upsert_meta
from daemon.core.ports import StoreError


class StoreBase:
    """Engine, one-transaction-per-method, secret-free errors; and ``meta``."""

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

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        """One transaction (SQLite: ``BEGIN IMMEDIATE``). Raises ``StoreError``:
        permanent for a corrupt SQLite file, transient otherwise."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except StoreError:
            raise
        except (DBAPIError, SQLAlchemyError, sqlite3.Error) as e:
            raise self._error(e, what) from None

    def _error(self, e: BaseException, what: str) -> StoreError:
        msg = self._redact(first_line(e))
        if self._engine.dialect.name == "sqlite" and is_corrupt_sqlite(e):
            return StoreError(
                f"state file {self._engine.url.database} is not a valid SQLite database "
                f"({msg}); move it away or point state at another file",
                permanent=True,
            )
        return StoreError(
            f"state store ({self._display_url}): {what} failed: {msg}", permanent=False
        )

    def _insert(self, table: Table) -> Any:
        return dialect_insert(table, self._pg)

    # -- meta

    def get_meta(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        with self._tx("reading meta") as conn:
            value = conn.execute(
                select(meta_t.c.value).where(meta_t.c.key == key)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Upsert ``key``; ``schema_version`` belongs to migrations (``ValueError``)."""
        if key == "schema_version":
            raise ValueError("schema_version is managed by migrations")
        with self._tx("writing meta") as conn:
            upsert_meta(conn, key, value)

    def close(self) -> None:
        self._engine.dispose()
