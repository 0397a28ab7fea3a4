"""The YAML config as pydantic models (the contract's "Config (YAML)" section).

Every model forbids unknown keys so a typo is an error, not a silently ignored
setting. ``${VAR}`` substitution happens in the loader before validation; these
models only see final values. Secrets are ``SecretStr`` so they never show in a
``repr``, a log line or a validation message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

CALENDAR_WINDOWS = ("hour", "day", "week", "month")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_duration(text: str) -> timedelta:
    """"5m" -> 5 minutes. Units: s, m, h, d, w. Raises ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 6h, 7d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def _check_name(v: str, what: str) -> str:
    if not _NAME.match(v):
        raise ValueError(
            f"{what} {v!r} must start with a letter or digit and use only letters, digits, '_', '.', '-' (max 64)"
        )
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- accounts


class Account(Strict):
    """A RunPod account. The key is read from the environment variable
    ``api_key_env`` (or ``<api_key_env>_FILE``, or systemd's credential of that
    name), never from the YAML itself."""

    name: str
    api_key_env: str = "RUNPOD_API_KEY"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "account name")

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v


# --------------------------------------------------------------------------- notifiers


class SlackNotifier(Strict):
    """Slack: an incoming webhook (``webhook_url``) or a bot ``token`` + ``channel``."""

    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    console_url: str = "https://console.runpod.io/pods"
    timeout: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_way(self) -> SlackNotifier:
        if self.webhook_url is None and self.token is None:
            raise ValueError("needs either webhook_url, or token and channel")
        if self.webhook_url is not None and self.token is not None:
            raise ValueError("set webhook_url or token, not both")
        if self.token is not None and not self.channel:
            raise ValueError("token needs a channel")
        if self.webhook_url is not None and not self.webhook_url.get_secret_value().startswith(
            ("https://", "http://")
        ):
            raise ValueError("webhook_url must be an http(s) URL")
        return self


class WebhookNotifier(Strict):
    """A JSON POST of the contract's payload, signed per Standard Webhooks when
    ``secret`` is set. ``secrets`` (a list) allows two secrets during rotation."""

    type: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = None
    secrets: list[SecretStr] = Field(default_factory=list, max_length=2)
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("url must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> WebhookNotifier:
        if self.secret is not None and self.secrets:
            raise ValueError("set secret or secrets, not both")
        return self

    def signing_secrets(self) -> list[SecretStr]:
        return [self.secret] if self.secret is not None else list(self.secrets)


class ConsoleNotifier(Strict):
    """Prints alerts on standard output (the demo uses it)."""

    type: Literal["console"]


NotifierConfig = Annotated[
    SlackNotifier | WebhookNotifier | ConsoleNotifier, Field(discriminator="type")
]


# --------------------------------------------------------------------------- budgets


class Match(Strict):
    """Scope filter. Lists are OR within a key; keys are AND together."""

    gpu_type: list[str] | None = None
    pod_id: list[str] | None = None
    pod_name: str | None = None  # shell-style glob, e.g. "train-*"

    @field_validator("gpu_type", "pod_id")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must list at least one value (or leave the key out)")
        if v is not None and any(not s.strip() for s in v):
            raise ValueError("values must not be empty")
        return v


class Enforce(Strict):
    """Stop pods when an instance reaches ``at`` percent of its limit.
    ``dry_run`` defaults to true: it only says what it would stop."""

    at: float = Field(gt=0, le=10000)
    dry_run: bool = True


class Budget(Strict):
    name: str
    window: str
    limit: float = Field(gt=0)
    thresholds: list[float] | None = None
    forecast: bool | None = None  # default: defaults.forecast
    notify: list[str] | None = None
    match: Match | None = None
    per: Literal["pod", "gpu_type"] | None = None
    except_pods: list[str] = Field(default_factory=list)
    enforce: Enforce | None = None
    accounts: list[str] | None = None  # default: every account

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "budget name")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v in CALENDAR_WINDOWS:
            return v
        try:
            d = parse_duration(v)
        except ValueError:
            raise ValueError(
                f"{v!r} is not a window: use hour, day, week, month, or a rolling length like 6h, 24h, 7d"
            ) from None
        if d < timedelta(hours=1) or d.total_seconds() % 3600:
            raise ValueError(f"rolling window {v!r} must be a whole number of hours, at least 1h")
        if d > timedelta(days=31):
            raise ValueError(f"rolling window {v!r} is longer than 31d")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float] | None) -> list[float] | None:
        return _check_thresholds(v)

    @property
    def rolling(self) -> timedelta | None:
        """The rolling length, or None for a calendar window."""
        return None if self.window in CALENDAR_WINDOWS else parse_duration(self.window)


def _check_thresholds(v: list[float] | None) -> list[float] | None:
    if v is None:
        return v
    if not v:
        raise ValueError("must list at least one threshold")
    if any(t <= 0 or t > 1000 for t in v):
        raise ValueError("thresholds are percents of the limit, above 0 and at most 1000")
    if len(set(v)) != len(v):
        raise ValueError("thresholds must not repeat")
    return sorted(v)


class Defaults(Strict):
    notify: list[str] = Field(default_factory=list)
    thresholds: list[float] = Field(default_factory=lambda: [80.0, 100.0])
    forecast: bool = False

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        out = _check_thresholds(v)
        assert out is not None
        return out


class Digest(Strict):
    cron: str
    notify: list[str] | None = None
    top: int = Field(default=5, ge=1, le=50)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5:
            raise ValueError(f"{v!r} is not a 5-field cron expression (minute hour day month weekday)")
        return v


class Health(Strict):
    """Tell people when the billing API has been unusable for ``after``."""

    after: str = "15m"
    notify: list[str] | None = None

    @field_validator("after")
    @classmethod
    def _after(cls, v: str) -> str:
        parse_duration(v)
        return v


class Http(Strict):
    """The /healthz, /readyz and /metrics endpoint."""

    enabled: bool = True
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{v!r} is not HOST:PORT")
        return v


class Enforcement(Strict):
    max_stops_per_cycle: int = Field(default=5, ge=0, le=1000)


class Config(Strict):
    version: Literal[1]
    timezone: str = "UTC"
    state: SecretStr | None = None  # a PostgreSQL URL may carry a password
    poll_interval: str = "5m"
    accounts: list[Account] = Field(default_factory=lambda: [Account(name="default")])
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    budgets: list[Budget] = Field(default_factory=list)
    digest: Digest | None = None
    health: Health = Field(default_factory=Health)
    http: Http = Field(default_factory=Http)
    enforcement: Enforcement = Field(default_factory=Enforcement)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)") from None
        return v

    @field_validator("poll_interval")
    @classmethod
    def _poll(cls, v: str) -> str:
        if parse_duration(v) < timedelta(seconds=1):
            raise ValueError("poll_interval must be at least 1s")
        return v

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, v: list[Account]) -> list[Account]:
        if not v:
            raise ValueError("list at least one account (or leave the key out)")
        names = [a.name for a in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"account names must be unique: {', '.join(dup)}")
        return v

    @field_validator("notifiers")
    @classmethod
    def _notifier_names(cls, v: dict[str, NotifierConfig]) -> dict[str, NotifierConfig]:
        for name in v:
            _check_name(name, "notifier name")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Config:
        # Cross-references are checked here so each error names its key; the
        # loader maps "budgets.3.notify" back to a line.
        errors: list[str] = []
        known = set(self.notifiers)
        accounts = {a.name for a in self.accounts}
        for n in self.defaults.notify:
            if n not in known:
                errors.append(f"defaults.notify: unknown notifier {n!r}")
        seen: set[str] = set()
        for i, b in enumerate(self.budgets):
            if b.name in seen:
                errors.append(f"budgets.{i}.name: duplicate budget name {b.name!r}")
            seen.add(b.name)
            for n in b.notify or []:
                if n not in known:
                    errors.append(f"budgets.{i}.notify: unknown notifier {n!r}")
            for a in b.accounts or []:
                if a not in accounts:
                    errors.append(f"budgets.{i}.accounts: unknown account {a!r}")
            if not self.effective_notify(b) and not (b.enforce and b.enforce.dry_run is False):
                errors.append(
                    f"budgets.{i}.notify: budget {b.name!r} notifies nobody (set notify or defaults.notify)"
                )
        if self.digest is not None:
            for n in self.digest.notify or []:
                if n not in known:
                    errors.append(f"digest.notify: unknown notifier {n!r}")
        for n in self.health.notify or []:
            if n not in known:
                errors.append(f"health.notify: unknown notifier {n!r}")
        if errors:
            raise ValueError("\n".join(errors))
        return self

    # ------------------------------------------------------------------ resolved views

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def poll(self) -> timedelta:
        return parse_duration(self.poll_interval)

    def effective_notify(self, b: Budget) -> list[str]:
        return list(b.notify) if b.notify is not None else list(self.defaults.notify)

    def effective_thresholds(self, b: Budget) -> list[float]:
        return list(b.thresholds) if b.thresholds is not None else list(self.defaults.thresholds)

    def effective_forecast(self, b: Budget) -> bool:
        return b.forecast if b.forecast is not None else self.defaults.forecast

    def budget_accounts(self, b: Budget) -> list[str]:
        return list(b.accounts) if b.accounts is not None else [a.name for a in self.accounts]

    def digest_notify(self) -> list[str]:
        if self.digest is None:
            return []
        return list(self.digest.notify) if self.digest.notify is not None else list(self.defaults.notify)

    def health_notify(self) -> list[str]:
        return list(self.health.notify) if self.health.notify is not None else list(self.defaults.notify)
