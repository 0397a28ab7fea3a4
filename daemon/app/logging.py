"""Structured logging for the daemon: JSON lines for journald/containers, colours on a TTY.

``configure_logging()`` sets up structlog *and* the standard library so that
every line, ours or a library's (httpx, apscheduler, slack_sdk, SQLAlchemy),
goes through the same chain and the same redaction:

    structlog logger ─┐
                      ├─> root handler ─> ProcessorFormatter ─> exception text ─> redact ─> render
    stdlib logger ────┘

Output keys: ``event`` (a dotted name such as ``billing.fetch_failed``, by
convention), ``level``, ``timestamp`` (ISO-8601 UTC), ``logger`` and the
key-values of the call. An exception is rendered into the ``exception`` key as
plain traceback text so that it too is redacted.

Redaction (``redact_event``), applied to every line:

* a key that names a secret (``api_key``, ``token``, ``secret``, ``password``,
  ``authorization``, ``webhook_url``, ``cookie``, ``credential``, ...) has its
  value replaced by ``***``;
* every registered secret string (``register_secret`` plus the ``secrets``
  callable given to ``configure_logging``) is replaced by ``***`` wherever it
  occurs in any string value, nested containers and exception text included;
* URL credentials (``scheme://user:pass@host``), ``Bearer`` tokens and
  secret-looking query parameters (``?token=...``) are masked in any string.

Secrets shorter than ``MIN_SECRET_LENGTH`` characters are ignored: they would
mask unrelated text everywhere and cannot be real credentials anyway.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "clear_secrets",
    "configure_logging",
    "redact_event",
    "redact_text",
    "register_secret",
]

REDACTED = "***"
MIN_SECRET_LENGTH = 4

# Loggers of libraries that are too chatty (httpx logs every request URL at
# INFO, and a Slack webhook URL *is* a credential).
_QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3")
_SCHEDULER_LOGGERS = ("apscheduler",)

_SENSITIVE_KEY = re.compile(
    r"(api[_-]?key|apikey|token|secret|passw(or)?d|authorization|webhook_url|cookie|"
    r"credential|private[_-]?key|dsn)",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://***@host (also user-only tokens: scheme://tok@host)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]+@")
_BEARER = re.compile(r"(?P<p>\bBearer\s+)[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"(?P<p>[?&](?:api[_-]?key|apikey|token|access_token|secret|password|sig|signature)=)[^&\s'\"]+",
    re.IGNORECASE,
)

_lock = threading.Lock()
_registered: set[str] = set()
_secrets_source: Callable[[], Iterable[str]] | None = None
_pattern_cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)
_HANDLER_MARK = "_runpod_budget_handler"


# --------------------------------------------------------------------------- secrets


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (API keys, Slack tokens,
    webhook URLs and signing secrets as the app loads them). ``None``, empty and
    very short values are ignored."""
    if value is None:
        return
    value = str(value)
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _registered.add(value)


def clear_secrets() -> None:
    """Forget every registered secret (for tests, and before a config reload
    re-registers the current ones)."""
    with _lock:
        _registered.clear()


def _current_secrets() -> frozenset[str]:
    with _lock:
        out = set(_registered)
        source = _secrets_source
    if source is not None:
        # A broken callable must not break logging.
        with contextlib.suppress(Exception):
            out.update(str(s) for s in source() if s is not None)
    return frozenset(s for s in out if len(s) >= MIN_SECRET_LENGTH)


def _secret_pattern() -> re.Pattern[str] | None:
    global _pattern_cache  # noqa: PLW0603 - a tiny cache keyed on the secret set
    secrets = _current_secrets()
    cached_for, pattern = _pattern_cache
    if secrets == cached_for:
        return pattern
    if secrets:
        # Longest first so a secret that contains another is masked whole.
        alternatives = sorted(secrets, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(s) for s in alternatives))
    else:
        pattern = None
    _pattern_cache = (secrets, pattern)
    return pattern


# --------------------------------------------------------------------------- redaction


def _redact_str(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group('p')}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group('p')}{REDACTED}", text)


def redact_text(text: str) -> str:
    """``text`` with every known secret and credential-looking part masked."""
    return _redact_str(text, _secret_pattern())


def _is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _redact_value(value: Any, pattern: re.Pattern[str] | None, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _redact_str(value, pattern)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 8:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if _is_sensitive_key(k) and v not in (None, "")
                else _redact_value(v, pattern, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(v, pattern, depth + 1) for v in value]
        return items if not isinstance(value, tuple) else tuple(items)
    if isinstance(value, BaseException):
        return _redact_str(f"{type(value).__name__}: {value}", pattern)
    # Any other object is rendered with repr() (JSON fallback, console); mask
    # it only when that text would leak something.
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        return f"<unrepresentable {type(value).__name__}>"
    masked = _redact_str(text, pattern)
    return value if masked == text else masked


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets by key and by value (see module doc)."""
    pattern = _secret_pattern()
    for key in list(event_dict):
        if key.startswith("_"):  # _record / _from_structlog of ProcessorFormatter
            continue
        value = event_dict[key]
        if _is_sensitive_key(key) and value not in (None, ""):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value, pattern)
    return event_dict


def _exception_text(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Render ``exc_info`` as plain text under ``exception`` so that it can be
    redacted before any renderer sees it (the console renderer would otherwise
    pretty-print the live exception object)."""
    return structlog.processors.format_exc_info(logger, method, event_dict)


def _add_logger_name(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    elif isinstance(logger, logging.Logger):
        event_dict.setdefault("logger", logger.name)
    return event_dict


# --------------------------------------------------------------------------- setup


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _level_number(level: str) -> int:
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(
            f"unknown log level {level!r}: use debug, info, warning, error or critical"
        )
    return number


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "info",
    secrets: Callable[[], Iterable[str]] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's root logger.

    ``json=None`` picks JSON lines when ``stream`` is not a terminal (journald,
    containers, files) and a coloured key-value rendering on a terminal.
    ``secrets`` is called for every line and its strings are masked in addition
    to those given to ``register_secret``. ``stream`` defaults to
    ``sys.stderr``. Calling it again replaces the previous configuration.
    """
    # Long on purpose: structlog's processor chain and the stdlib bridge, in the order they run.
    global _secrets_source  # noqa: PLW0603
    out: TextIO = stream if stream is not None else sys.stderr
    tty = _is_tty(out)
    use_json = (not tty) if json is None else json
    number = _level_number(level)
    with _lock:
        _secrets_source = secrets

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    # Run for stdlib records before the common chain (structlog events already
    # went through the equivalents in structlog.configure below).
    foreign_pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _add_logger_name,
        timestamper,
    ]
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=tty, sort_keys=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            _exception_text,
            redact_event,
            renderer,
        ],
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(number)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    for name in _SCHEDULER_LOGGERS:
        # apscheduler logs "Running job ..." / "executed successfully" at INFO
        # for every poll; keep its warnings (missed runs) and errors.
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            _add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            timestamper,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
