"""Budgets and what they count (the contract's "What a budget counts").

A budget's scope family is decided by its ``match`` (pod, endpoint or volume
keys) or, without one, by ``per``; a budget with neither counts every
resource family of the account, narrowed by ``resources``. Rules that need
``api.version`` (v1 has no clusters, public endpoints nor per-volume spend)
live in ``daemon.config.references``, which sees the whole config.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from daemon.config.base import Loc, Strict, check_name, check_thresholds, fail, parse_duration

CALENDAR_WINDOWS = ("hour", "day", "week", "month")

ApiVersion = Literal["v2", "v1"]
ResourceName = Literal["pods", "serverless", "storage", "clusters", "public_endpoints"]
ScopeFamily = Literal["pods", "serverless", "storage"]
Per = Literal["pod", "gpu_type", "endpoint", "volume"]

RESOURCES: tuple[ResourceName, ...] = (
    "pods", "serverless", "storage", "clusters", "public_endpoints",
)
#: the resource families each API version reports
API_FAMILIES: dict[str, tuple[ResourceName, ...]] = {
    "v2": RESOURCES,
    "v1": ("pods", "serverless", "storage"),
}
#: match keys by the family they select
MATCH_KEYS: dict[ScopeFamily, tuple[str, ...]] = {
    "pods": ("pod_id", "pod_name", "gpu_type"),
    "serverless": ("endpoint_id", "endpoint_name"),
    "storage": ("volume_id", "volume_name"),
}
_KEY_FAMILY = {k: fam for fam, keys in MATCH_KEYS.items() for k in keys}
PER_FAMILY: dict[str, ScopeFamily] = {
    "pod": "pods", "gpu_type": "pods", "endpoint": "serverless", "volume": "storage",
}
FAMILY_WORDS: dict[str, str] = {
    "pods": "pods",
    "serverless": "serverless endpoints",
    "storage": "network volumes",
    "clusters": "Instant Clusters",
    "public_endpoints": "public endpoints",
}
_FAMILY_PER = {"pods": "pod or per: gpu_type", "serverless": "endpoint", "storage": "volume"}


class _ApiLike(Protocol):
    @property
    def families(self) -> tuple[ResourceName, ...]: ...


class _ConfigLike(Protocol):
    @property
    def api(self) -> _ApiLike: ...


class Match(Strict):
    """Scope filter. Lists are OR within a key; keys are AND together. Pod,
    endpoint and volume keys select different families and cannot be mixed."""

    gpu_type: list[str] | None = Field(
        default=None, description="GPU type names (case-insensitive, spaces folded)."
    )
    pod_id: list[str] | None = Field(default=None, description="Pod ids.")
    pod_name: str | None = Field(
        default=None, description='Shell-style glob on the pod name, e.g. "train-*".'
    )
    endpoint_id: list[str] | None = Field(default=None, description="Serverless endpoint ids.")
    endpoint_name: str | None = Field(
        default=None, description="Shell-style glob on the serverless endpoint name."
    )
    volume_id: list[str] | None = Field(default=None, description="Network volume ids.")
    volume_name: str | None = Field(
        default=None, description="Shell-style glob on the network volume name."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_family(cls, data: Any) -> Any:
        # Before validation, so the keys are in the order the user wrote them:
        # the first key decides the family, the others are the mistake.
        if not isinstance(data, dict):
            return data
        first: str | None = None
        errors: list[tuple[Loc, str]] = []
        for key in data:
            family = _KEY_FAMILY.get(key) if isinstance(key, str) else None
            if family is None:
                continue
            if first is None:
                first = key
            elif family != _KEY_FAMILY[first]:
                errors.append(
                    (
                        (key,),
                        f"{key} cannot be combined with {first}: pod, endpoint and volume "
                        "matches need separate budgets",
                    )
                )
        fail("Match", errors)
        return data

    @field_validator("gpu_type", "pod_id", "endpoint_id", "volume_id")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must list at least one value (or leave the key out)")
        if v is not None and any(not s.strip() for s in v):
            raise ValueError("values must not be empty")
        return v

    @property
    def family(self) -> ScopeFamily | None:
        """The family the keys select, or None for an empty match."""
        for key, family in _KEY_FAMILY.items():
            if getattr(self, key) is not None:
                return family
        return None

    def set_keys(self) -> list[str]:
        """The keys given, in declaration order."""
        return [k for k in _KEY_FAMILY if getattr(self, k) is not None]


class Enforce(Strict):
    """Stop pods when an instance reaches ``at`` percent of its limit.
    ``dry_run`` defaults to true: it only says what it would stop."""

    at: float = Field(
        gt=0, le=10000, allow_inf_nan=False, description="Percent of the limit to stop pods at."
    )
    dry_run: bool = Field(default=True, description="Only say what would be stopped.")


class Budget(Strict):
    """One budget: a spend limit over a window, for a scope, alerting at thresholds."""

    name: str = Field(description="Unique budget name.")
    window: str = Field(
        description="Calendar window (hour, day, week, month) or rolling length (6h, 24h, 7d)."
    )
    limit: float = Field(gt=0, allow_inf_nan=False, description="Limit in USD.")
    thresholds: list[float] | None = Field(
        default=None, description="Percents of the limit to alert at (default: defaults)."
    )
    forecast: bool | None = Field(
        default=None, description="Also alert when projected window-end spend reaches the limit."
    )
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )
    match: Match | None = Field(
        default=None,
        description="Only count matching pods, serverless endpoints or network volumes.",
    )
    per: Per | None = Field(
        default=None,
        description="One instance per pod, GPU type, serverless endpoint or network volume.",
    )
    resources: list[ResourceName] | None = Field(
        default=None,
        description="Resource families an unscoped budget counts (default: all of them).",
    )
    except_pods: list[str] = Field(
        default_factory=list, description="Pod ids never counted nor stopped."
    )
    enforce: Enforce | None = Field(default=None, description="Stop pods over the limit.")
    accounts: list[str] | None = Field(
        default=None, description="Account names (default: every account)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "budget name")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v in CALENDAR_WINDOWS:
            return v
        try:
            d = parse_duration(v)
        except ValueError:
            raise ValueError(
                f"{v!r} is not a window: use hour, day, week, month, "
                "or a rolling length like 6h, 24h, 7d"
            ) from None
        if d < timedelta(hours=1) or d.total_seconds() % 3600:
            raise ValueError(f"rolling window {v!r} must be a whole number of hours, at least 1h")
        if d > timedelta(days=31):
            raise ValueError(f"rolling window {v!r} is longer than 31d")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float] | None) -> list[float] | None:
        return check_thresholds(v)

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: list[ResourceName] | None) -> list[ResourceName] | None:
        if v is not None and not v:
            raise ValueError("must list at least one resource (or leave the key out)")
        if v is not None:
            dup = [r for i, r in enumerate(v) if r in v[:i]]
            if dup:
                raise ValueError(f"resource {dup[0]!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _scope(self) -> Budget:
        fail("Budget", scope_errors(self))
        return self

    @property
    def rolling(self) -> timedelta | None:
        """The rolling length, or None for a calendar window."""
        return None if self.window in CALENDAR_WINDOWS else parse_duration(self.window)

    @property
    def scope_family(self) -> ScopeFamily | None:
        """The family a scoped budget counts (from ``match``, else ``per``), or
        None for an unscoped budget (it counts ``families(config)``)."""
        family = self.match.family if self.match is not None else None
        if family is None and self.per is not None:
            family = PER_FAMILY[self.per]
        return family

    def families(self, config: _ConfigLike) -> tuple[ResourceName, ...]:
        """The resource families this budget counts under ``config``'s API
        version: its scope family, else ``resources``, else every family the
        API version reports."""
        if self.scope_family is not None:
            return (self.scope_family,)
        if self.resources is not None:
            return tuple(r for r in RESOURCES if r in self.resources)
        return config.api.families

    @property
    def can_contain_pods(self) -> bool:
        """True when pods may count here (so enforce and except_pods apply)."""
        family = self.scope_family
        if family is not None:
            return family == "pods"
        return self.resources is None or "pods" in self.resources


def scope_errors(b: Budget) -> list[tuple[Loc, str]]:
    """Scope rules of one budget that need no other part of the config, each
    at its key: resources only unscoped, per agreeing with the match family,
    except_pods and enforce only where pods count."""
    errors: list[tuple[Loc, str]] = []
    match_family = b.match.family if b.match is not None else None
    if b.resources is not None and (match_family is not None or b.per is not None):
        errors.append(
            (("resources",), "resources applies only to an unscoped budget (no match, no per)")
        )
    if b.per is not None and match_family is not None and PER_FAMILY[b.per] != match_family:
        errors.append(
            (
                ("per",),
                f"per: {b.per} does not fit a match on {FAMILY_WORDS[match_family]} "
                f"(use per: {_FAMILY_PER[match_family]})",
            )
        )
    elif not b.can_contain_pods:
        counted = _counted_words(b)
        if b.except_pods:
            errors.append(
                (("except_pods",), f"except_pods applies only to budgets that count pods, "
                 f"this one counts {counted}")
            )
        if b.enforce is not None:
            errors.append(
                (("enforce",), f"enforce stops pods, but this budget counts {counted}")
            )
    return errors


def _counted_words(b: Budget) -> str:
    family = b.scope_family
    if family is not None:
        return FAMILY_WORDS[family]
    return ", ".join(FAMILY_WORDS[r] for r in b.resources or ())

