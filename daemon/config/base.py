"""Building blocks shared by the config models: durations, names, errors.

``parse_duration`` is the one parser of the contract's durations (``30s``,
``5m``, ``6h``, ``7d``, ``2w``); ``Duration`` is the annotated ``timedelta``
type every duration field uses, so the rest of the daemon never parses text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DURATION_PATTERN = r"^\s*\d+\s*[smhdw]\s*$"

Loc = tuple[str | int, ...]

#: error types of the problems raised by ``fail`` (the loader recognises the second)
CONFIG_ERROR_TYPE = "config"
REFERENCE_ERROR_TYPE = "config_reference"


def parse_duration(text: str) -> timedelta:
    """ "5m" -> 5 minutes. Units: s, m, h, d, w. Raises ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 6h, 7d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def format_duration(d: timedelta) -> str:
    """The canonical text of a duration: the largest of d, h, m, s that divides
    it exactly (``timedelta(hours=24)`` -> ``"1d"``, 90 minutes -> ``"90m"``).
    Stable for equal values, so it is safe in alert ids."""
    seconds = int(d.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def num(x: float) -> str:
    """A number as a user wrote it: 80.0 -> "80", 2.5 -> "2.5"."""
    return str(int(x)) if float(x).is_integer() else str(x)


def _to_timedelta(v: Any) -> Any:
    # Why a before-validator: pydantic's own timedelta parsing accepts ISO 8601
    # and bare seconds, which the contract does not; a bare number must say
    # how to write it.
    if isinstance(v, timedelta):
        return v
    if isinstance(v, bool):
        raise ValueError(f"{str(v).lower()} is not a duration like 30s, 5m, 6h, 7d")
    if isinstance(v, int | float):
        raise ValueError(
            f"{num(v)} is not a duration: write it with a unit, e.g. 30s, 5m, 6h, 7d"
        )
    if isinstance(v, str):
        return parse_duration(v)
    raise PydanticCustomError("string_type", "Input should be a valid string")


#: A duration field: written ``30s``/``5m``/``6h``/``7d``/``2w``, held as a timedelta.
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration with a unit: s, m, h, d or w (e.g. 30s, 5m, 6h, 7d).",
        }
    ),
]


def at_least(minimum: timedelta, message: str) -> AfterValidator:
    """An after-validator rejecting durations under ``minimum`` with ``message``."""

    def check(v: timedelta) -> timedelta:
        if v < minimum:
            raise ValueError(message)
        return v

    return AfterValidator(check)


def duration_field(default: str, description: str) -> Any:
    """A Field whose default is the duration ``default``; the JSON schema shows
    the text ("10s"), not pydantic's ISO 8601 rendering of a timedelta."""
    return Field(
        default=parse_duration(default),
        description=description,
        json_schema_extra={"default": default},
    )


def name_problem(v: object, what: str) -> str | None:
    """Why ``v`` is not a valid name of a ``what``, or None."""
    if not isinstance(v, str) or not _NAME.match(v):
        return (
            f"{what} {v!r} must start with a letter or digit and use only letters, digits, "
            "'_', '.', '-' (max 64)"
        )
    return None


def check_name(v: str, what: str) -> str:
    """Returns ``v``; raises ValueError when it is not a valid name."""
    problem = name_problem(v, what)
    if problem:
        raise ValueError(problem)
    return v


def check_thresholds(v: list[float] | None) -> list[float] | None:
    """Percent thresholds, sorted; raises ValueError for an empty list, a value
    out of (0, 1000] or a duplicate."""
    if v is None:
        return v
    if not v:
        raise ValueError("must list at least one threshold")
    for t in v:
        if not math.isfinite(t) or t <= 0 or t > 1000:
            raise ValueError(
                f"threshold {num(t)} is out of range: percents of the limit, above 0, at most 1000"
            )
    dup = sorted({t for t in v if v.count(t) > 1})
    if dup:
        raise ValueError(f"threshold {num(dup[0])} is listed twice")
    return sorted(v)


def fail(title: str, errors: Sequence[tuple[Loc, str]], kind: str = CONFIG_ERROR_TYPE) -> None:
    """Raise one ValidationError carrying several (location, message) pairs,
    relative to the model being validated (pydantic prefixes the outer loc).
    Returns normally when ``errors`` is empty."""
    if not errors:
        return
    raise ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{message}", {"message": msg}),
                loc=loc,
                input=None,
            )
            for loc, msg in errors
        ],
    )


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
