"""Plumbing shared by the API modules: the answer type, errors, query parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Query = dict[str, list[str]]


@dataclass
class Answer:
    """What a route answers: JSON-able ``data`` (None: no body) with ``status``.

    ``range_end`` is the end of the billing range asked for (for the
    ``out_of_range`` bad record); ``headers`` are added to the response.
    """

    data: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    range_end: datetime | None = None
    ctype: str = "application/json"


class Reply(Exception):
    """Raised by a route to answer with an error ``status`` (in the API's own shape)."""

    def __init__(self, status: int, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def last(q: Query, name: str) -> str | None:
    """The last value of query parameter ``name`` (None if absent)."""
    v = q.get(name)
    return v[-1] if v else None


def one_of(q: Query, name: str, allowed: tuple[str, ...], default: str) -> str:
    """Parameter ``name`` or ``default``; raises Reply(400) unless in ``allowed``."""
    v = last(q, name) or default
    if v not in allowed:
        raise Reply(400, f"invalid {name} {v!r}: expected one of {', '.join(allowed)}")
    return v


def time_param(q: Query, name: str, *, zone_required: bool = False) -> datetime | None:
    """An ISO-8601 parameter as aware UTC (a zoneless value is taken as UTC unless
    ``zone_required``); None when absent or empty; raises Reply(400) otherwise."""
    v = last(q, name)
    if v is None or v == "":
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise Reply(400, f"invalid {name} {v!r}: expected an ISO-8601 date-time") from None
    if t.tzinfo is None:
        if zone_required:
            raise Reply(400, f"invalid {name} {v!r}: expected an RFC 3339 date-time "
                             "with a zone")
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)
