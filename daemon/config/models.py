"""The YAML config as pydantic models (the contract's "Config (YAML)" section).

Every model forbids unknown keys so a typo is an error, not a silently ignored
setting. ``${VAR}`` substitution happens in the loader before validation; these
models only see final values. Secrets are ``SecretStr`` so they never show in a
``repr``, a log line or a validation message, and no validator here ever puts a
secret's value into a message.

Errors that concern one key are raised with that key's location (see
``fail``), so the loader can point at the right line of the YAML.

This module holds the top-level ``Config`` and its small sections and
re-exports the rest, so ``from daemon.config.models import X`` keeps working:
budgets and scopes live in ``budgets``, guards/balance/grouping in
``guards``, notifiers in ``notifiers``, whole-config checks in
``references``, durations and names in ``base``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from daemon.config.base import (
    CONFIG_ERROR_TYPE,
    REFERENCE_ERROR_TYPE,
    Duration,
    Loc,
    Strict,
    at_least,
    check_name,
    check_thresholds,
    duration_field,
    fail,
    format_duration,
    parse_duration,
)
from daemon.config.budgets import (
    API_FAMILIES,
    CALENDAR_WINDOWS,
    RESOURCES,
    ApiVersion,
    Budget,
    Enforce,
    Match,
    ResourceName,
    ScopeFamily,
)
from daemon.config.guards import Balance, Grouping, Guard, GuardStop, Idle
from daemon.config.notifiers import (
    NOTIFIER_TYPES,
    ConsoleNotifier,
    NotifierConfig,
    SlackNotifier,
    WebhookNotifier,
)
from daemon.config.references import reference_errors

__all__ = [
    "API_FAMILIES",
    "CALENDAR_WINDOWS",
    "CONFIG_ERROR_TYPE",
    "DEFAULT_BASE_URLS",
    "NOTIFIER_TYPES",
    "REFERENCE_ERROR_TYPE",
    "RESOURCES",
    "Account",
    "Api",
    "ApiVersion",
    "Balance",
    "Budget",
    "Config",
    "ConsoleNotifier",
    "Defaults",
    "Digest",
    "Enforce",
    "Enforcement",
    "Grouping",
    "Guard",
    "GuardStop",
    "Health",
    "Http",
    "Idle",
    "Loc",
    "Match",
    "NotifierConfig",
    "ResourceName",
    "ScopeFamily",
    "SlackNotifier",
    "WebhookNotifier",
    "format_duration",
    "looks_like_api_key",
    "parse_duration",
    "reference_errors",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#L-]+$")
_STATE_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")
_SECOND = timedelta(seconds=1)

#: the default RUNPOD_API_BASE_URL of each API version (it includes the version)
DEFAULT_BASE_URLS: dict[str, str] = {
    "v2": "https://api.runpod.io/v2",
    "v1": "https://rest.runpod.io/v1",
}


# --------------------------------------------------------------------------- accounts


class Account(Strict):
    """A RunPod account. The key is read from the environment variable
    ``api_key_env`` (or ``<api_key_env>_FILE``, or systemd's credential of that
    name), never from the YAML itself."""

    name: str = Field(description="Account name, used in alert ids and messages.")
    api_key_env: str = Field(
        default="RUNPOD_API_KEY",
        description="Environment variable holding the API key (also read from "
        "<NAME>_FILE or the systemd credential <NAME>).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "account name")

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, v: str) -> str:
        # never echo the value: people paste the key itself here
        if looks_like_api_key(v):
            raise ValueError(
                "this looks like an API key: put the key in an environment variable "
                "and name that variable here"
            )
        if not _ENV_NAME.fullmatch(v):
            raise ValueError("must be an environment variable name, e.g. RUNPOD_API_KEY_RESEARCH")
        return v


def looks_like_api_key(v: str) -> bool:
    """True for a RunPod API key pasted where a variable name belongs."""
    return v.lower().startswith("rpa_") or len(v) > 64


# --------------------------------------------------------------------------- sections


class Defaults(Strict):
    """Settings every budget inherits unless it sets its own."""

    notify: list[str] = Field(default_factory=list, description="Notifier names.")
    thresholds: list[float] = Field(
        default_factory=lambda: [80.0, 100.0], description="Percents of the limit."
    )
    forecast: bool = Field(default=False, description="Forecast alerts.")

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        out = check_thresholds(v)
        assert out is not None
        return out


class Digest(Strict):
    """A periodic summary of every budget."""

    cron: str = Field(description='5-field cron in `timezone`, e.g. "0 9 * * *".')
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )
    top: int = Field(
        default=5, ge=1, le=50, description="How many pods and GPU types the digest lists."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(
                f"{v!r} is not a 5-field cron expression (minute hour day month weekday)"
            )
        return v


class Health(Strict):
    """Tell people when the billing API has been unusable for ``after``."""

    after: Duration = duration_field("15m", "How long a data source may fail first.")
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )


class Http(Strict):
    """The /healthz, /readyz and /metrics endpoint."""

    enabled: bool = Field(default=True, description="Serve the endpoint.")
    listen: str = Field(default="127.0.0.1:9464", description="HOST:PORT to listen on.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{v!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
        return v


class Enforcement(Strict):
    """Global limits on enforcement."""

    max_stops_per_cycle: int = Field(
        default=5, ge=0, le=1000, description="At most this many real pod stops per poll."
    )


class Api(Strict):
    """How long RunPod API calls may take. ``timeout`` bounds one HTTP attempt;
    ``deadline`` bounds a call with all its retries (429, 5xx, timeouts), so a
    hung or failing API cannot hold a poll cycle for longer than that."""

    version: ApiVersion = Field(
        default="v2", description="RunPod REST API version: v2 (default) or v1 (retiring)."
    )
    timeout: Annotated[Duration, at_least(_SECOND, "must be at least 1s")] = duration_field(
        "10s", "One HTTP attempt at most."
    )
    deadline: Annotated[Duration, at_least(_SECOND, "must be at least 1s")] = duration_field(
        "60s", "One call with its retries at most."
    )

    @model_validator(mode="after")
    def _order(self) -> Api:
        if self.deadline < self.timeout:
            raise ValueError("deadline must not be shorter than timeout")
        return self

    @property
    def families(self) -> tuple[ResourceName, ...]:
        """The resource families this API version reports spend for."""
        return API_FAMILIES[self.version]

    @property
    def reports_gpu_util(self) -> bool:
        """True when pods carry GPU utilisation (idle guards need it)."""
        return self.version == "v2"

    @property
    def default_base_url(self) -> str:
        """RUNPOD_API_BASE_URL's default for this version."""
        return DEFAULT_BASE_URLS[self.version]


class Config(Strict):
    """runpod-budget configuration (version 1)."""

    version: Literal[1] = Field(description="Config format version; must be 1.")
    timezone: str = Field(default="UTC", description="IANA zone calendar windows are cut in.")
    state: SecretStr | None = Field(
        default=None,
        description="sqlite:///PATH or postgresql://… (default: "
        "sqlite:///$STATE_DIRECTORY/state.db, else ./state/state.db).",
    )
    poll_interval: Annotated[
        Duration, at_least(_SECOND, "poll_interval must be at least 1s")
    ] = duration_field("5m", "How often billing is fetched.")
    accounts: list[Account] = Field(
        default_factory=lambda: [Account(name="default")],
        description='RunPod accounts (default: one named "default" using RUNPOD_API_KEY).',
    )
    notifiers: dict[str, NotifierConfig] = Field(
        default_factory=dict, description="Named notifiers."
    )
    defaults: Defaults = Field(default_factory=Defaults, description="Budget defaults.")
    budgets: list[Budget] = Field(default_factory=list, description="The budgets.")
    digest: Digest | None = Field(default=None, description="Periodic summary.")
    health: Health = Field(default_factory=Health, description="Billing API health alerts.")
    http: Http = Field(default_factory=Http, description="Health and metrics endpoint.")
    enforcement: Enforcement = Field(default_factory=Enforcement, description="Enforcement limits.")
    api: Api = Field(default_factory=Api, description="RunPod API version and timeouts.")
    guards: list[Guard] = Field(default_factory=list, description="Idle and uptime guards.")
    balance: Balance | None = Field(default=None, description="Prepaid balance alerts.")
    grouping: Grouping = Field(
        default_factory=Grouping, description="Summarise a burst of alerts per notifier."
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{v!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
            ) from None
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: SecretStr | None) -> SecretStr | None:
        # never show the value: a PostgreSQL URL may carry a password
        if v is not None and not v.get_secret_value().startswith(_STATE_SCHEMES):
            raise ValueError("must be a sqlite:///PATH or postgresql://… URL")
        return v

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, v: list[Account]) -> list[Account]:
        if not v:
            raise ValueError("list at least one account (or leave the key out)")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Config:
        # Names and cross-references, each error at its own key.
        fail("Config", reference_errors(self.model_dump(by_alias=True)), REFERENCE_ERROR_TYPE)
        return self

    # ------------------------------------------------------------------ resolved views

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def poll(self) -> timedelta:
        """``poll_interval`` (kept for callers written before it was typed)."""
        return self.poll_interval

    def effective_notify(self, b: Budget | Guard) -> list[str]:
        """A budget's or guard's notifiers: its own, else defaults.notify."""
        return list(b.notify) if b.notify is not None else list(self.defaults.notify)

    def effective_thresholds(self, b: Budget) -> list[float]:
        return list(b.thresholds) if b.thresholds is not None else list(self.defaults.thresholds)

    def effective_forecast(self, b: Budget) -> bool:
        return b.forecast if b.forecast is not None else self.defaults.forecast

    def budget_accounts(self, b: Budget | Guard) -> list[str]:
        """A budget's or guard's accounts: its own, else every account."""
        return list(b.accounts) if b.accounts is not None else [a.name for a in self.accounts]

    def digest_notify(self) -> list[str]:
        if self.digest is None:
            return []
        return (
            list(self.digest.notify)
            if self.digest.notify is not None
            else list(self.defaults.notify)
        )

    def health_notify(self) -> list[str]:
        return (
            list(self.health.notify)
            if self.health.notify is not None
            else list(self.defaults.notify)
        )

    def balance_notify(self) -> list[str]:
        """Who balance alerts go to (empty without a balance section)."""
        if self.balance is None:
            return []
        if self.balance.notify is not None:
            return list(self.balance.notify)
        return list(self.defaults.notify)

    def budget_families(self, b: Budget) -> tuple[ResourceName, ...]:
        """The resource families ``b`` counts under this config's API version."""
        return b.families(self)
