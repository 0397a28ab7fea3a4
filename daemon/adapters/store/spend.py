"""Spend points per (account, family) series and the coverage the planner reads.

Times are whole epoch seconds in both tables, so a bulk read builds each
distinct bucket start once instead of parsing a string per row. A write
compares with what is stored and rewrites only the buckets that changed (a
steady poll re-sends settled hours), in one transaction: ``COPY`` on
PostgreSQL, one ``executemany`` on SQLite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware, epoch
from daemon.adapters.store.schema import points_t, segments_t
from daemon.core.model import SeriesKey, SpendPoint
from daemon.core.ports import Coverage

RESOLUTIONS = (1, 24)
_COLUMNS = "INSERT INTO spend_points (account, family, time, resource, hours, amount) "
_INSERT_QMARK = _COLUMNS + "VALUES (?, ?, ?, ?, ?, ?)"  # sqlite3
_INSERT_FORMAT = _COLUMNS + "VALUES (%s, %s, %s, %s, %s, %s)"  # psycopg
_COPY = "COPY spend_points (account, family, time, resource, hours, amount) FROM STDIN"
_READ = (
    "SELECT time, resource, amount, hours FROM spend_points "
    "WHERE account = {0} AND family = {0} AND time >= {0} AND time < {0} "
    "ORDER BY time, resource"
)
_SELECT_QMARK = _READ.format("?")
_SELECT_FORMAT = _READ.format("%s")


def _bulk_insert(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert points through the driver directly: ``COPY`` on PostgreSQL, one
    ``executemany`` on SQLite. These are plain ints, floats and strings, and
    SQLAlchemy's per-row processing would cost more than the insert itself."""
    if conn.dialect.paramstyle == "qmark":
        conn.exec_driver_sql(_INSERT_QMARK, rows)
        return
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.exec_driver_sql(_INSERT_FORMAT, rows)


def _to_points(rows: Iterable[tuple[int, str, float, int]]) -> list[SpendPoint]:
    """``SpendPoint`` objects of ``(time, resource, amount, hours)`` rows (the
    columns are typed: REAL and INTEGER come back as float and int); one
    datetime per distinct bucket start, which many resources share."""
    times: dict[int, datetime] = {}
    out: list[SpendPoint] = []
    add = out.append
    new = tuple.__new__  # SpendPoint(...) without its generated __new__'s call
    for t, resource, amount, hours in rows:
        when = times.get(t)
        if when is None:
            when = times[t] = datetime.fromtimestamp(t, UTC)
        add(new(SpendPoint, (when, resource, amount, hours)))
    return out


#: the points of one bucket start: resource -> (amount, hours)
Bucket = dict[str, tuple[float, int]]


def _by_bucket(
    points: Sequence[SpendPoint], lo: int, hi: int, hours: int, span: tuple[datetime, datetime]
) -> dict[int, Bucket]:
    """``points`` by bucket start (epoch seconds), duplicates summed; a point
    outside ``[lo, hi)`` or of another resolution is a ``ValueError``."""
    out: dict[int, Bucket] = {}
    epochs: dict[datetime, int] = {}  # thousands of points share a few bucket starts
    for p in points:
        t = epochs.get(p.time)
        if t is None:
            t = epochs[p.time] = epoch(p.time, "point time")
        if not lo <= t < hi:
            raise ValueError(f"point at {p.time.isoformat()} is outside [{span[0]}, {span[1]})")
        if p.hours != hours:
            raise ValueError(f"point at {p.time.isoformat()} has hours={p.hours}, not {hours}")
        bucket = out.setdefault(t, {})
        had = bucket.get(p.resource)
        bucket[p.resource] = (float(p.amount) + (had[0] if had else 0.0), hours)
    return out


def _stored_buckets(conn: Connection, series: SeriesKey, lo: int, hi: int) -> dict[int, Bucket]:
    """The stored points of ``series`` in ``[lo, hi)`` by bucket start."""
    out: dict[int, Bucket] = {}
    for t, resource, amount, hours in _read(conn, series, lo, hi):
        out.setdefault(t, {})[resource] = (amount, hours)
    return out


def _read(
    conn: Connection, series: SeriesKey, lo: int, hi: int
) -> Iterator[tuple[int, str, float, int]]:
    """``(time, resource, amount, hours)`` of the points of ``series`` in
    ``[lo, hi)``, sorted, through the driver's own cursor in batches: a week of
    2,000 pods is 40,000 rows, and SQLAlchemy rows, a fetched list of them, or
    psycopg's row-by-row iteration would each cost as much again as building
    the points. psycopg reads them in binary (no text to parse per value)."""
    raw: Any = conn.connection.dbapi_connection
    qmark = conn.dialect.paramstyle == "qmark"
    cur = raw.cursor(binary=True) if conn.dialect.name == "postgresql" else raw.cursor()
    try:
        cur.execute(_SELECT_QMARK if qmark else _SELECT_FORMAT,
                    (series.account, series.family, lo, hi))
        while batch := cur.fetchmany(_BATCH):
            yield from batch
    finally:
        cur.close()


_BATCH = 4096


Segment = tuple[int, int, int]  # (start, end, hours), epoch seconds


def _series_lock(series: SeriesKey) -> int:
    """A signed 64-bit advisory lock id for one series."""
    digest = hashlib.blake2b(
        f"spend\0{series.account}\0{series.family}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def apply_segment(segments: Sequence[Segment], new: Segment) -> list[Segment]:
    """``segments`` (disjoint) with ``new`` laid over them: whatever they held in
    ``[start, end)`` is cut away, then adjacent segments of one resolution merge."""
    start, end, _ = new
    out: list[Segment] = []
    for s, e, h in segments:
        if e <= start or s >= end:
            out.append((s, e, h))
            continue
        if s < start:
            out.append((s, start, h))
        if e > end:
            out.append((end, e, h))
    out.append(new)
    out.sort()
    merged: list[Segment] = []
    for s, e, h in out:
        if merged and merged[-1][2] == h and merged[-1][1] >= s:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e), h)
        else:
            merged.append((s, e, h))
    return merged


class SpendMixin(StoreBase):
    """``SpendStore`` on SQL."""

    def coverage(self, series: SeriesKey) -> list[Coverage]:
        """Segments held for ``series``, sorted by start: adjacent ones of one
        resolution are merged, so hour and day ranges alternate at most."""
        s = segments_t
        with self._tx("reading coverage") as conn:
            rows = conn.execute(
                select(s.c.start_at, s.c.end_at, s.c.hours)
                .where(s.c.account == series.account, s.c.family == series.family)
                .order_by(s.c.start_at)
            ).all()
        return [
            Coverage(
                start=datetime.fromtimestamp(r.start_at, UTC),
                end=datetime.fromtimestamp(r.end_at, UTC),
                hours=int(r.hours),
            )
            for r in rows
        ]

    def replace_points(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        hours: int,
        points: Sequence[SpendPoint],
    ) -> None:
        """Atomically replace every point of ``series`` whose time is in
        ``[start, end)`` (of either resolution) by ``points`` and record that
        range as held at ``hours`` resolution (1 or 24), cutting any coverage
        of the other resolution there.

        Points with the same (time, resource) are summed. A point outside the
        range or of another resolution is a ``ValueError`` and changes nothing.
        Raises ``StoreError``.

        Only the buckets whose points differ from the stored ones are written:
        a steady poll asks again for hours that are settled, and rewriting
        them would cost more than comparing.
        """
        if hours not in RESOLUTIONS:
            raise ValueError(f"replace_points: hours must be 1 or 24, got {hours!r}")
        lo, hi = epoch(start, "start"), epoch(end, "end")
        if hi < lo:
            raise ValueError(f"replace_points: end {end} is before start {start}")
        fresh = _by_bucket(points, lo, hi, hours, (start, end))
        acc, fam = series.account, series.family
        pt, sg = points_t, segments_t
        with self._tx("replacing points") as conn:
            if self._pg:
                # Replicas fetch the same series each poll: without this lock two
                # delete-then-insert transactions interleave and one fails on the
                # primary key. SQLite serialises writers by itself.
                conn.execute(select(func.pg_advisory_xact_lock(_series_lock(series))))
            held = _stored_buckets(conn, series, lo, hi)
            stale = sorted(t for t in held.keys() | fresh.keys() if held.get(t) != fresh.get(t))
            rewrite = [t for t in stale if t in held]
            if len(rewrite) == len(held):
                conn.execute(
                    pt.delete().where(
                        pt.c.account == acc, pt.c.family == fam, pt.c.time >= lo, pt.c.time < hi
                    )
                )
            elif rewrite:
                conn.execute(
                    pt.delete().where(
                        pt.c.account == acc, pt.c.family == fam, pt.c.time == bindparam("t")
                    ),
                    [{"t": t} for t in rewrite],
                )
            rows = [
                (acc, fam, t, r, h, a) for t in stale for r, (a, h) in fresh.get(t, {}).items()
            ]
            if rows:
                _bulk_insert(conn, rows)
            if hi == lo:
                return
            where = (sg.c.account == acc, sg.c.family == fam)
            old = [
                (r.start_at, r.end_at, r.hours)
                for r in conn.execute(
                    select(sg.c.start_at, sg.c.end_at, sg.c.hours)
                    .where(*where)
                    .order_by(sg.c.start_at)
                )
            ]
            new = apply_segment(old, (lo, hi, hours))
            if new == old:
                return
            conn.execute(sg.delete().where(*where))
            conn.execute(
                sg.insert(),
                [
                    {"account": acc, "family": fam, "start_at": s, "end_at": e, "hours": h}
                    for s, e, h in new
                ],
            )

    def points(self, series: SeriesKey, start: datetime, end: datetime) -> list[SpendPoint]:
        """Stored points of ``series`` with ``start <= time < end``, sorted by
        time, then resource. Raises ``StoreError``."""
        lo, hi = epoch(start, "start"), epoch(end, "end")
        with self._tx("reading points") as conn:
            return _to_points(_read(conn, series, lo, hi))

    def prune_points(self, before: datetime) -> int:
        """Delete points older than ``before`` and trim coverage to match.
        Returns the number of points deleted. Raises ``StoreError``."""
        cut = epoch(aware(before, "before"), "before")
        with self._tx("pruning points") as conn:
            deleted = conn.execute(points_t.delete().where(points_t.c.time < cut)).rowcount
            conn.execute(segments_t.delete().where(segments_t.c.end_at <= cut))
            # start_at is part of the key: a trimmed segment stays unique because
            # segments of one series are disjoint, so at most one straddles ``cut``.
            conn.execute(
                segments_t.update().where(segments_t.c.start_at < cut).values(start_at=cut)
            )
        return int(deleted or 0)
