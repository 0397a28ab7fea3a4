"""Guards (idle and long-running pods), balance alerts and alert grouping:
the contract's "Guards: idle and long-running pods" and "Balance" sections.

Rules that need another part of the config (notifier and account names,
``api.version``) live in ``daemon.config.references``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from daemon.config.base import (
    Duration,
    Loc,
    Strict,
    at_least,
    check_name,
    fail,
    format_duration,
    num,
)
from daemon.config.budgets import _KEY_FAMILY, Match

_MINUTE = timedelta(minutes=1)
MinuteOrMore = Annotated[Duration, at_least(_MINUTE, "must be at least 1m")]
# Idle needs two samples ``for`` apart; seconds are allowed so a demo or a
# short poll interval can show it (less than poll_interval acts like it).
SecondOrMore = Annotated[Duration, at_least(timedelta(seconds=1), "must be at least 1s")]


class Idle(Strict):
    """A pod is idle when every GPU stays under ``gpu_util_below`` percent for ``for``."""

    gpu_util_below: float = Field(
        gt=0, le=100, allow_inf_nan=False, description="Percent GPU utilisation (0 < x <= 100)."
    )
    for_: SecondOrMore = Field(
        alias="for",
        description="How long every GPU must stay under the level (at least 1s; "
        "less than poll_interval acts like poll_interval).",
    )


class GuardStop(Strict):
    """Stop the pod when the guard fires; ``dry_run`` (the default) only says so."""

    dry_run: bool = Field(default=True, description="Only say what would be stopped.")


class Guard(Strict):
    """Watches RUNNING pods: idle for a while, or up for too long."""

    name: str = Field(description="Unique guard name.")
    idle: Idle | None = Field(default=None, description="Alert on pods whose GPUs sit idle.")
    uptime_over: MinuteOrMore | None = Field(
        default=None, description="Alert on pods running longer than this since they started."
    )
    match: Match | None = Field(
        default=None, description="Only these pods (pod_id, pod_name, gpu_type)."
    )
    except_pods: list[str] = Field(default_factory=list, description="Pod ids never watched.")
    accounts: list[str] | None = Field(
        default=None, description="Account names (default: every account)."
    )
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )
    stop: GuardStop | None = Field(default=None, description="Also stop the pod.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "guard name")

    @model_validator(mode="after")
    def _checks(self) -> Guard:
        errors: list[tuple[Loc, str]] = []
        if self.idle is None and self.uptime_over is None:
            errors.append(((), "needs idle or uptime_over (or both)"))
        for key in self.match.set_keys() if self.match is not None else []:
            if _KEY_FAMILY[key] != "pods":
                errors.append(
                    (
                        ("match", key),
                        f"guards watch pods: match on pod_id, pod_name or gpu_type, not {key}",
                    )
                )
        fail("Guard", errors)
        return self

    @property
    def stops(self) -> bool:
        """True when the guard really stops pods (``stop`` without dry run)."""
        return self.stop is not None and not self.stop.dry_run


def _amount(v: Any) -> Any:
    # Why strict: "25$" or "twenty" must name the item, not pass through float().
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{v!r} is not an amount: write a number of USD, e.g. 25")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{num(v)} is not an amount above 0")
    return float(v)


Amount = Annotated[
    float,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]


class Balance(Strict):
    """Alert when the prepaid balance, or the runway it buys at the current
    burn, falls under each level. Levels are kept sorted, most urgent last."""

    below_usd: list[Amount] | None = Field(
        default=None, description="Alert when the balance falls under each amount (USD)."
    )
    runway_below: list[MinuteOrMore] | None = Field(
        default=None,
        description="Alert when balance / current spend per hour falls under each duration.",
    )
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )

    @field_validator("below_usd")
    @classmethod
    def _amounts(cls, v: list[float] | None) -> list[float] | None:
        return _levels(v, "amount", "amount", num)

    @field_validator("runway_below")
    @classmethod
    def _runways(cls, v: list[timedelta] | None) -> list[timedelta] | None:
        return _levels(v, "duration", "runway", format_duration)

    @model_validator(mode="after")
    def _some_level(self) -> Balance:
        if self.below_usd is None and self.runway_below is None:
            fail("Balance", [((), "needs below_usd or runway_below (or both)")])
        return self


class Grouping(Strict):
    """When one cycle decides more alerts than ``max_individual`` for one
    Slack or console notifier, they are sent as one summary message."""

    max_individual: int = Field(
        default=10, ge=1, description="At most this many single alerts per notifier per cycle."
    )


_Level = TypeVar("_Level", float, timedelta)


def _levels(
    v: list[_Level] | None, noun: str, label: str, show: Callable[[_Level], str]
) -> list[_Level] | None:
    """Balance levels, highest first; an empty or repeated list is an error."""
    if v is None:
        return v
    if not v:
        raise ValueError(f"must list at least one {noun} (or leave the key out)")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"{label} {show(dup[0])} is listed twice")
    return sorted(v, reverse=True)
