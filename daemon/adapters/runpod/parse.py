"""Strict validation of RunPod answers: the whole body at once, then the records.

One pydantic ``TypeAdapter`` per answer shape validates the raw bytes in Rust
(``validate_json``; no intermediate ``dict`` tree). Types are strict: an amount
is a JSON number (``"1.5"`` and ``true`` are refused), finite; a time is an RFC
3339 string with a zone (no zone-less times, no epoch numbers or strings). A
second pass (:class:`RecordChecker`) refuses amounts that are negative or above
:data:`MAX_AMOUNT`, records outside the requested range and duplicates, and
turns the rest into :class:`SpendRecord` objects, sharing one ``datetime`` per
distinct time string (100,000 records over a month hold ~700 of them).

Every refusal raises :class:`BadAnswer`: ``bad_body`` for the answer's shape
(not JSON, an HTML page, wrong top-level type), ``bad_record`` naming the record
index and field. Nothing of a refused answer is returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, TypeVar

from pydantic import ConfigDict, StringConstraints, TypeAdapter, ValidationError

from daemon.core.model import BucketLen, Family, SpendRecord, iso_z

#: No single billing record may exceed this (USD): a larger one is a bug or a
#: unit mix-up upstream, and would fire every budget at once.
MAX_AMOUNT: Final = 1_000_000.0
BUCKET_DELTA: Final[dict[str, timedelta]] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}

_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
#: an RFC 3339 time with a zone, kept as text until RecordChecker converts it
Time = Annotated[str, StringConstraints(pattern=_RFC3339)]
STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)
T = TypeVar("T")


class BadAnswer(Exception):
    """An answer refused by validation: ``reason`` is ``bad_body`` or ``bad_record``;
    the message says what and where (record index, field), never a secret."""

    def __init__(self, reason: str, message: str, *, retry: bool | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        #: a garbled body may come out right next time; a refused record will not
        self.retry = reason == "bad_body" if retry is None else retry


# ------------------------------------------------------------------ whole answer


def validate(adapter: TypeAdapter[T], body: bytes | bytearray, *, records: str | None) -> T:
    """Validate ``body`` with ``adapter``. ``records`` names the list of records
    inside the top-level object (``"records"``), None when the top level is the
    list. Returns the validated value; raises :class:`BadAnswer`."""
    try:
        return adapter.validate_json(body)
    except ValidationError as e:
        raise _bad_answer(e, body, records) from None


def _bad_answer(e: ValidationError, body: bytes | bytearray, records: str | None) -> BadAnswer:
    err = e.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    if err["type"] == "json_invalid":
        what = ("an HTML page instead of JSON" if bytes(body[:64]).lstrip()[:1] == b"<"
                else "malformed JSON")
        return BadAnswer("bad_body", f"returned {what} ({len(body)} bytes)")
    head = loc[1:] if records is not None and loc[:1] == (records,) else loc
    if not head or not isinstance(head[0], int):
        shape = (f"an object with a '{records}' array" if records is not None
                 else "a JSON array")
        where = ".".join(str(x) for x in loc) or "the top level"
        return BadAnswer("bad_body", f"returned an unexpected shape at {where}: expected "
                         f"{shape} ({err['msg']})")
    index, field = head[0], ".".join(str(x) for x in head[1:]) or "record"
    return BadAnswer("bad_record", f"bad record {index}: field '{field}': "
                     f"{explain(err['type'], err.get('input'), err['msg'])}")


def explain(kind: str, value: Any, msg: str) -> str:
    """One clear sentence per kind of refusal (pydantic's words as the fallback)."""
    shown = _short(value)
    if kind == "float_type":
        what = "a boolean" if isinstance(value, bool) else type(value).__name__
        if isinstance(value, str):
            what = "a string"
        return f"an amount must be a JSON number, got {what} {shown}"
    if kind == "finite_number":
        return "an amount must be a finite number (NaN/Infinity or an overflow like 1e400)"
    if kind == "string_pattern_mismatch":
        if isinstance(value, str) and _ZONELESS.match(value):
            return (f"time {shown} has no zone; RunPod times must be RFC 3339 with Z or an "
                    f"offset")
        return f"time {shown} is not an RFC 3339 time with a zone (e.g. 2026-11-24T14:00:00Z)"
    if kind == "string_type" and isinstance(value, (int, float)):
        return f"expected an RFC 3339 string, got the number {shown} (epoch times are refused)"
    if kind == "missing":
        return "missing"
    return msg + (f", got {shown}" if value is not None and kind != "model_type" else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------ records

_RESOURCE_WORD: Final[dict[str, str]] = {
    "account": "account", "pods": "pod", "serverless": "endpoint", "storage": "volume",
    "clusters": "cluster", "public_endpoints": "public endpoints",
}


class RecordChecker:
    """Second pass over validated records of one ``family`` request: range,
    duplicates, plausibility; builds :class:`SpendRecord` objects."""

    __slots__ = ("_ids", "_times", "bucket", "delta", "end", "family", "seen", "start")

    def __init__(self, family: Family, bucket: BucketLen, start: datetime, end: datetime) -> None:
        self.family = family
        self.bucket = bucket
        self.delta = BUCKET_DELTA[bucket]
        self.start = start.astimezone(UTC)
        self.end = end.astimezone(UTC)
        self.seen: dict[tuple[str, datetime], int] = {}
        self._times: dict[str, datetime] = {}
        # one str object per resource id, however many buckets it has (100k records
        # of 1,000 pods then hold 1,000 id strings, not 100,000)
        self._ids: dict[str, str] = {}

    def time(self, text: str) -> datetime:
        """The UTC datetime of an RFC 3339 string (validated by pattern already)."""
        t = self._times.get(text)
        if t is None:
            t = datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
            self._times[text] = t
        return t

    def amount(self, index: int, field: str, value: float) -> float:
        """``value`` when 0 <= value <= MAX_AMOUNT; raises BadAnswer otherwise."""
        if 0 <= value <= MAX_AMOUNT:  # NaN fails this too (pydantic refused it already)
            return value
        why = ("must not be negative" if value < 0 else
               f"is above the plausibility bound of ${MAX_AMOUNT:,.0f} for one record")
        raise BadAnswer("bad_record", f"bad record {index}: field '{field}': amount "
                        f"{value!r} {why}")

    def record(
        self,
        index: int,
        resource: str,
        start_text: str,
        end_text: str | None,
        amount: float,
        *,
        components: tuple[tuple[str, float], ...] = (),
    ) -> SpendRecord:
        """A checked record. ``end_text`` None means ``start + bucket`` (v1).

        Hot path (once per record): the label of a refusal is built only when
        one is raised."""
        start = self._times.get(start_text) or self.time(start_text)
        if end_text is None:
            end = start + self.delta
        else:
            end = self._times.get(end_text) or self.time(end_text)
            if end - start != self.delta:
                raise BadAnswer("bad_record", f"{self._label(index, resource, start)} ends at "
                                f"{iso_z(end)}: not one {self.bucket} bucket as requested")
        if not self.start <= start < self.end:
            raise BadAnswer("bad_record", f"{self._label(index, resource, start)} lies outside "
                            f"the requested range [{iso_z(self.start)}, {iso_z(self.end)})")
        resource = self._ids.setdefault(resource, resource)
        key = (resource, start)
        first = self.seen.setdefault(key, index)
        if first != index:
            raise BadAnswer("bad_record", f"{self._label(index, resource, start)} duplicates "
                            f"record {first} (same {_RESOURCE_WORD[self.family]} and bucket); "
                            f"refused, not summed")
        return SpendRecord(self.family, resource, start, end, amount, components)

    def _label(self, index: int, resource: str, start: datetime) -> str:
        word = _RESOURCE_WORD[self.family]
        who = f"{word} {resource!r}" if resource else word
        return f"bad record {index} ({who}, bucket {iso_z(start)})"


def check_all(items: list[Any], build: Callable[[int, Any], SpendRecord]) -> list[SpendRecord]:
    """``build`` every item in order; the item list is emptied as it goes so that
    the validated models and the result are not both held in full."""
    out: list[SpendRecord] = []
    items.reverse()  # pop() from the end is O(1): walk forwards by popping backwards
    index = 0
    while items:
        out.append(build(index, items.pop()))
        index += 1
    return out
