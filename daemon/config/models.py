"""The YAML config as pydantic models (the contract's "Config (YAML)" section).

Every model forbids unknown keys so a typo is an error, not a silently ignored
setting. ``${VAR}`` substitution happens in the loader before validation; these
models only see final values. Secrets are ``SecretStr`` so they never show in a
``repr``, a log line or a validation message, and no validator here ever puts a
secret's value into a message.

Errors that concern one key are raised with that key's location (see
``_fail``), so the loader can point at the right line of the YAML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

CALENDAR_WINDOWS = ("hour", "day", "week", "month")
NOTIFIER_TYPES = ("slack", "webhook", "console")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#L-]+$")
_STATE_SCHEMES = ("sqlite://", "postgresql://", "postgres://", "postgresql+psycopg://")

Loc = tuple[str | int, ...]

#: error types of the problems raised by ``_fail`` (the loader recognises the second)
CONFIG_ERROR_TYPE = "config"
REFERENCE_ERROR_TYPE = "config_reference"


def parse_duration(text: str) -> timedelta:
    """ "5m" -> 5 minutes. Units: s, m, h, d, w. Raises ValueError otherwise."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 6h, 7d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _name_problem(v: object, what: str) -> str | None:
    if not isinstance(v, str) or not _NAME.match(v):
        return (
            f"{what} {v!r} must start with a letter or digit and use only letters, digits, "
            "'_', '.', '-' (max 64)"
        )
    return None


def _check_name(v: str, what: str) -> str:
    problem = _name_problem(v, what)
    if problem:
        raise ValueError(problem)
    return v


def _fail(title: str, errors: Sequence[tuple[Loc, str]], kind: str = CONFIG_ERROR_TYPE) -> None:
    """Raise one ValidationError carrying several (location, message) pairs,
    relative to the model being validated (pydantic prefixes the outer loc)."""
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
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        return _check_name(v, "account name")

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


# --------------------------------------------------------------------------- notifiers


def _is_http_url(v: SecretStr) -> bool:
    return v.get_secret_value().startswith(("https://", "http://"))


class SlackNotifier(Strict):
    """Slack: an incoming webhook (``webhook_url``) or a bot ``token`` + ``channel``."""

    type: Literal["slack"]
    webhook_url: SecretStr | None = Field(
        default=None, description="Incoming webhook URL (secret; use ${VAR})."
    )
    token: SecretStr | None = Field(
        default=None, description="Bot token for chat.postMessage (secret; use ${VAR})."
    )
    channel: str | None = Field(default=None, description="Channel for the bot token.")
    console_url: str = Field(
        default="https://console.runpod.io/pods", description="Link shown in messages."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _is_http_url(v):
            raise ValueError("must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> SlackNotifier:
        if self.webhook_url is None and self.token is None:
            _fail("SlackNotifier", [((), "needs webhook_url, or token and channel")])
        if self.webhook_url is not None and self.token is not None:
            _fail("SlackNotifier", [(("token",), "set webhook_url or token, not both")])
        if self.token is not None and not self.channel:
            _fail("SlackNotifier", [(("channel",), "required with token")])
        return self


class WebhookNotifier(Strict):
    """A JSON POST of the contract's payload, signed per Standard Webhooks when
    ``secret`` is set. ``secrets`` (a list) allows two secrets during rotation."""

    type: Literal["webhook"]
    url: SecretStr = Field(description="Where to POST (may carry a token; use ${VAR}).")
    secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_…)."
    )
    secrets: list[SecretStr] = Field(
        default_factory=list,
        max_length=2,
        description="Two signing secrets during rotation (instead of secret).",
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        if not _is_http_url(v):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> WebhookNotifier:
        if self.secret is not None and self.secrets:
            _fail("WebhookNotifier", [(("secrets",), "set secret or secrets, not both")])
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

    gpu_type: list[str] | None = Field(
        default=None, description="GPU type names (case-insensitive, spaces folded)."
    )
    pod_id: list[str] | None = Field(default=None, description="Pod ids.")
    pod_name: str | None = Field(
        default=None, description='Shell-style glob on the pod name, e.g. "train-*".'
    )
    endpoint_id: list[str] | None = Field(default=None, description="Serverless endpoint ids.")
    endpoint_name: str | None = Field(default=None, description="Glob on the endpoint name.")
    volume_id: list[str] | None = Field(default=None, description="Network volume ids.")
    volume_name: str | None = Field(default=None, description="Glob on the volume name.")

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
    match: Match | None = Field(default=None, description="Only count matching spend.")
    per: Literal["pod", "gpu_type", "endpoint", "volume"] | None = Field(
        default=None, description="One instance per pod, GPU type, endpoint or volume."
    )
    resources: list[
        Literal["pods", "serverless", "storage", "clusters", "public_endpoints"]
    ] | None = Field(default=None, description="Resource families an unscoped budget counts.")
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
    for t in v:
        if not math.isfinite(t) or t <= 0 or t > 1000:
            raise ValueError(
                f"threshold {_num(t)} is out of range: percents of the limit, above 0, at most 1000"
            )
    dup = sorted({t for t in v if v.count(t) > 1})
    if dup:
        raise ValueError(f"threshold {_num(dup[0])} is listed twice")
    return sorted(v)


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
        out = _check_thresholds(v)
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

    after: str = Field(default="15m", description="How long the API may fail first.")
    notify: list[str] | None = Field(
        default=None, description="Notifier names (default: defaults.notify)."
    )

    @field_validator("after")
    @classmethod
    def _after(cls, v: str) -> str:
        parse_duration(v)
        return v


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

    version: Literal["v2", "v1"] = Field(default="v2", description="RunPod REST API version.")
    timeout: str = Field(default="10s", description="One HTTP attempt at most.")
    deadline: str = Field(default="60s", description="One call with its retries at most.")

    @field_validator("timeout", "deadline")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration(v) < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return v

    @model_validator(mode="after")
    def _order(self) -> Api:
        if parse_duration(self.deadline) < parse_duration(self.timeout):
            raise ValueError("deadline must not be shorter than timeout")
        return self


class Config(Strict):
    """runpod-budget configuration (version 1)."""

    version: Literal[1] = Field(description="Config format version; must be 1.")
    timezone: str = Field(default="UTC", description="IANA zone calendar windows are cut in.")
    state: SecretStr | None = Field(
        default=None,
        description="sqlite:///PATH or postgresql://… (default: "
        "sqlite:///$STATE_DIRECTORY/state.db, else ./state/state.db).",
    )
    poll_interval: str = Field(default="5m", description="How often billing is fetched.")
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
    api: Api = Field(default_factory=Api, description="RunPod API timeouts.")

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
        return v

    @model_validator(mode="after")
    def _cross(self) -> Config:
        # Names and cross-references, each error at its own key.
        _fail("Config", reference_errors(self.model_dump()), REFERENCE_ERROR_TYPE)
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


# --------------------------------------------------------------------------- cross checks


def _strs(v: object) -> list[str] | None:
    """A list of strings, or None when ``v`` is not one (its own error is elsewhere)."""
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def reference_errors(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Name and cross-reference errors of a config given as plain data.

    Works on a validated config (``Config.model_dump()``) and on raw YAML data
    that failed validation elsewhere, so a file with a type error still gets
    its unknown-notifier errors reported: anything of an unexpected shape is
    skipped (pydantic reports it)."""
    errors: list[tuple[Loc, str]] = []
    notifiers = data.get("notifiers", {})
    known: set[str] | None = None
    if isinstance(notifiers, Mapping):
        known = {str(n) for n in notifiers}
        for name in notifiers:
            problem = _name_problem(name, "notifier name")
            if problem:
                errors.append((("notifiers", name), problem))

    accounts = data.get("accounts", [{"name": "default"}])
    account_names: set[str] | None = None
    if isinstance(accounts, list):
        account_names = set()
        for i, a in enumerate(accounts):
            name = a.get("name") if isinstance(a, Mapping) else None
            if isinstance(name, str):
                if name in account_names:
                    errors.append((("accounts", i, "name"), f"duplicate account name {name!r}"))
                account_names.add(name)

    def check_notify(loc: Loc, names: object) -> None:
        for n in _strs(names) or []:
            if known is not None and n not in known:
                allowed = ", ".join(sorted(known)) or "none are defined"
                errors.append((loc, f"unknown notifier {n!r} (notifiers: {allowed})"))

    defaults = data.get("defaults", {})
    defaults = defaults if isinstance(defaults, Mapping) else {}
    default_notify = _strs(defaults.get("notify", [])) or []
    if "notify" in defaults:
        check_notify(("defaults", "notify"), defaults["notify"])

    budgets = data.get("budgets", [])
    seen: set[str] = set()
    for i, b in enumerate(budgets if isinstance(budgets, list) else []):
        if not isinstance(b, Mapping):
            continue
        name = b.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append((("budgets", i, "name"), f"duplicate budget name {name!r}"))
            seen.add(name)
        notify = b.get("notify")
        if notify is not None:
            check_notify(("budgets", i, "notify"), notify)
        for a in _strs(b.get("accounts")) or []:
            if account_names is not None and a not in account_names:
                message = f"unknown account {a!r} (accounts: {', '.join(sorted(account_names))})"
                errors.append((("budgets", i, "accounts"), message))
        enforce = b.get("enforce")
        stops = isinstance(enforce, Mapping) and enforce.get("dry_run", True) is False
        effective = _strs(notify) if notify is not None else default_notify
        if effective == [] and not stops:
            where: Loc = ("budgets", i, "notify") if notify is not None else ("budgets", i)
            errors.append((where, "notifies nobody (set notify here or defaults.notify)"))

    for section in ("digest", "health"):
        block = data.get(section)
        if isinstance(block, Mapping) and block.get("notify") is not None:
            check_notify((section, "notify"), block["notify"])
    digest = data.get("digest")
    if (
        isinstance(digest, Mapping)
        and digest.get("notify") is None
        and not default_notify
        and "cron" in digest
    ):
        errors.append((("digest",), "notifies nobody (set notify here or defaults.notify)"))
    return errors
