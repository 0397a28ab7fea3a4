"""Fault injection: what a proxy, an overloaded API or a buggy API would answer instead.

Faults are version-aware: under ``/v2`` error bodies are RFC 9457 problems
(``application/problem+json``), under ``/graphql`` GraphQL ``{"errors": [...]}``,
under ``/v1`` v1's ``{"error", "status"}``. A ``bad_record`` spoils record 0
of a billing answer (v1: the list; v2: ``records``) in one of ``BAD_RECORDS``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

FAULT_KINDS = ("status", "rate_limit", "delay", "garbage", "truncated", "html",
               "bad_record", "huge")
BAD_RECORDS = (
    "missing_amount", "nan_amount", "inf_amount", "negative_amount", "bad_time",
    "missing_time",
    # for strict-parsing tests (both versions)
    "string_amount",  # "1.5"
    "bool_amount",  # true
    "huge_amount",  # 1e308
    "naive_time",  # 2026-11-24T00:00:00 (no zone)
    "epoch_time",  # 1795478400 (an integer)
    "out_of_range",  # bucket two days after the requested range's end
    "year_2000",  # bucket in the year 2000
    "duplicate",  # a second record for the same resource and bucket
)
_HTML = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
         b"<body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>")
PROBLEM = "application/problem+json"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
           404: "Not Found", 409: "Conflict", 410: "Gone", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Fault:
    """What the next ``times`` requests whose path starts with ``path`` get.

    kinds: ``status`` (``status`` + optional ``body``), ``rate_limit`` (429 with
    ``Retry-After: retry_after``, seconds or an HTTP-date string), ``delay``
    (sleep ``delay`` s, then answer normally; ``delay`` also combines with any
    kind), ``garbage`` (200 with malformed JSON), ``truncated`` (Content-Length
    larger than the bytes sent, then the connection is cut), ``html`` (an HTML
    error page with ``status``, default 200), ``bad_record`` (the real answer
    with record 0 spoiled per ``record``: one of ``BAD_RECORDS``), ``huge``
    (valid JSON of ``size`` bytes: ``[ ... ]`` on v1, ``{"records":[ ... ]}``
    elsewhere; ``declare_length=False`` omits Content-Length and ends the body
    by closing the connection).
    """

    path: str
    kind: str = "status"
    times: int = 1
    status: int | None = None
    body: str | None = None
    retry_after: str | int | float | None = None
    delay: float = 0.0
    record: str = "missing_amount"
    size: int = 1 << 20
    declare_length: bool = True
    method: str | None = None


def api_of(path: str) -> str:
    """``v1``, ``v2``, ``graphql`` or ``""`` for a request path."""
    for api in ("v1", "v2"):
        if path == f"/{api}" or path.startswith(f"/{api}/"):
            return api
    return "graphql" if path.rstrip("/") == "/graphql" else ""


def error_body(api: str, status: int, detail: str,
               errors: list[str] | None = None) -> tuple[bytes, str]:
    """(body, content type) of an error in ``api``'s own shape."""
    if api == "v2":
        doc: dict[str, Any] = {"title": _TITLES.get(status, "Error"), "status": status,
                               "detail": detail}
        if errors:
            doc["errors"] = errors
        return json.dumps(doc).encode(), PROBLEM
    if api == "graphql":
        return json.dumps({"errors": [{"message": detail}]}).encode(), "application/json"
    return json.dumps({"error": detail, "status": status}).encode(), "application/json"


def apply(f: Fault, api: str, status: int, body: bytes,
          ctype: str) -> tuple[int, bytes, str, dict[str, str]]:
    """The answer after a proxy-like fault (status, rate_limit, html, garbage)."""
    extra: dict[str, str] = {}
    if f.kind == "status":
        status = f.status or 500
        if f.body is not None:
            body = f.body.encode()
        else:
            body, ctype = error_body(api, status, f"simulated failure {status}")
    elif f.kind == "rate_limit":
        status = 429
        body, ctype = error_body(api, 429, "rate limit exceeded")
        if f.retry_after is not None:
            extra["Retry-After"] = str(f.retry_after)
    elif f.kind == "html":
        status, body, ctype = f.status or 200, _HTML, "text/html; charset=utf-8"
    elif f.kind == "garbage":
        status, ctype = 200, "application/json"
        body = (b'[{"amount": 1.5, "time": "2026-11-24T00:00:00Z"' if api == "v1" else
                b'{"records": [{"totalAmount": 1.5, "startTime": "2026-11-24T00:00:00Z"')
    return status, body, ctype, extra


def huge_frame(api: str) -> tuple[bytes, bytes]:
    """Opening and closing bytes of a ``huge`` answer."""
    return (b"[", b"]") if api == "v1" else (b'{"records":[', b"]}")


def _parse(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _move(rec: dict[str, Any], keys: tuple[str, ...], to: datetime) -> None:
    """Shift the bucket of ``rec`` to begin at ``to``, keeping its length."""
    start, end = _parse(rec.get(keys[0])), _parse(rec.get(keys[-1]))
    length = (end - start) if start and end and len(keys) > 1 else timedelta(hours=1)
    rec[keys[0]] = _iso(to)
    if len(keys) > 1:
        rec[keys[1]] = _iso(to + length)


def _spoil_one(rec: dict[str, Any], how: str, amount: str, times: tuple[str, ...],
               range_end: datetime | None) -> None:
    values: dict[str, Any] = {"nan_amount": float("nan"), "inf_amount": float("inf"),
                              "negative_amount": -1.25, "string_amount": "1.5",
                              "bool_amount": True, "huge_amount": 1e308}
    if how in values:
        rec[amount] = values[how]
    elif how == "missing_amount":
        rec.pop(amount, None)
    elif not times:
        return
    elif how == "bad_time":
        rec[times[0]] = "yesterday-ish"
    elif how == "missing_time":
        rec.pop(times[0], None)
    elif how == "naive_time":
        for k in times:
            rec[k] = str(rec.get(k, "2026-11-24T00:00:00Z")).removesuffix("Z")
    elif how == "epoch_time":
        for k in times:
            t = _parse(rec.get(k)) or datetime(2026, 11, 24, tzinfo=UTC)
            rec[k] = int(t.timestamp())
    elif how == "out_of_range":
        _move(rec, times, (range_end or datetime.now(UTC)) + timedelta(days=2))
    elif how == "year_2000":
        _move(rec, times, datetime(2000, 1, 1, tzinfo=UTC))


def _spoil_other(data: dict[str, Any], how: str) -> dict[str, Any]:
    """v2 pods (pod 0: ``cost``, ``startedAt``) and GraphQL (``clientBalance``)."""
    doc = copy.deepcopy(data)
    if doc.get("pods"):
        pods: list[dict[str, Any]] = doc["pods"]
        if how == "duplicate":
            pods.insert(1, dict(pods[0]))
        else:
            _spoil_one(pods[0], how, "cost", ("startedAt",), None)
    elif "data" in doc and isinstance(doc["data"], dict) and "myself" in doc["data"]:
        _spoil_one(doc["data"]["myself"], how, "clientBalance", (), None)
    elif "status" in doc and "actions" in doc:  # one pod
        _spoil_one(doc, how, "cost", ("startedAt",), None)
    return doc


def spoil(data: Any, how: str, api: str, range_end: datetime | None) -> Any:
    """``data`` with record 0 spoiled (a record is made up when there is none).

    Billing answers spoil a record's amount/time; v2 pod answers spoil pod 0's
    ``cost``/``startedAt``; GraphQL spoils ``clientBalance`` (amount kinds only).
    """
    if isinstance(data, dict) and "records" not in data:
        return _spoil_other(data, how)
    if api == "v2" and isinstance(data, dict) and "records" in data:
        doc = copy.deepcopy(data)
        recs: list[dict[str, Any]] = doc["records"]
        q = doc.get("metadata", {}).get("query", {})
        if not recs:
            rec: dict[str, Any] = {"startTime": q.get("startTime", "2026-11-24T00:00:00Z"),
                                   "endTime": q.get("endTime", "2026-11-25T00:00:00Z")}
            for k in ("podId", "serverlessId", "networkVolumeId", "clusterId"):
                if k in q:
                    rec[k] = q[k] or "spoiled-resource"
            rec["totalAmount"] = 1.0
            recs.append(rec)
        end = _parse(q.get("endTime")) or range_end
        if how == "duplicate":
            recs.insert(1, dict(recs[0]))
        else:
            _spoil_one(recs[0], how, "totalAmount", ("startTime", "endTime"), end)
        return doc
    items = data if isinstance(data, list) else [data]
    items = [dict(x) for x in items] or [
        {"amount": 1.0, "time": "2026-11-24T00:00:00Z", "gpuTypeId": "NVIDIA L4"}]
    if how == "duplicate":
        return [items[0], dict(items[0]), *items[1:]]
    _spoil_one(items[0], how, "amount", ("time",), range_end)
    return items
