"""JSON lines, TTY detection and redaction of daemon.app.logging."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from daemon.app import logging as applog


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    applog.clear_secrets()
    yield
    applog.clear_secrets()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_runpod_budget_handler", False):
            root.removeHandler(h)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    out = []
    for line in buf.getvalue().splitlines():
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict)
        out.append(obj)
    return out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_have_event_level_timestamp() -> None:
    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    log = structlog.get_logger("daemon.test")
    log.info("billing.fetch_failed", account="research", attempts=3)
    log.warning("outbox.retry", notifier="ops")
    lines = _lines(buf)
    assert len(lines) == 2
    first = lines[0]
    assert first["event"] == "billing.fetch_failed"
    assert first["level"] == "info"
    assert first["account"] == "research"
    assert first["attempts"] == 3
    ts = datetime.fromisoformat(str(first["timestamp"]).replace("Z", "+00:00"))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert str(first["timestamp"]).endswith("Z")
    assert lines[1]["level"] == "warning"


def test_level_filters() -> None:
    buf = io.StringIO()
    applog.configure_logging(stream=buf, level="warning")
    log = structlog.get_logger("daemon.test")
    log.info("hidden.event")
    log.error("shown.event")
    assert [x["event"] for x in _lines(buf)] == ["shown.event"]


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        applog.configure_logging(stream=io.StringIO(), level="loud")


def test_tty_gets_console_rendering_not_json() -> None:
    buf = _Tty()
    applog.configure_logging(stream=buf)
    structlog.get_logger("t").info("cycle.done", alerts=2)
    text = buf.getvalue()
    assert "cycle.done" in text
    assert "alerts" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_json_forced_on_tty_and_console_forced_off_tty() -> None:
    tty = _Tty()
    applog.configure_logging(stream=tty, json=True)
    structlog.get_logger("t").info("a.b")
    assert _lines(tty)[0]["event"] == "a.b"
    plain = io.StringIO()
    applog.configure_logging(stream=plain, json=False)
    structlog.get_logger("t").info("c.d", k=1)
    assert "\x1b[" not in plain.getvalue()  # no colours on a non-terminal
    assert "c.d" in plain.getvalue()


def test_registered_secret_is_masked_in_values_nested_and_event() -> None:
    secret = "rpa_SUPERSECRETKEY123"
    applog.register_secret(secret)
    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    log = structlog.get_logger("t")
    log.info(f"event with {secret}", note=f"key={secret};", nested={"a": [secret, 1]})
    text = buf.getvalue()
    assert secret not in text
    line = _lines(buf)[0]
    assert line["event"] == "event with ***"
    assert line["note"] == "key=***;"
    assert line["nested"] == {"a": ["***", 1]}


def test_secret_in_exception_text_is_masked() -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    applog.register_secret(secret)
    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    log = structlog.get_logger("t")
    try:
        raise RuntimeError(f"POST {secret} failed")
    except RuntimeError:
        log.exception("notify.failed", notifier="ops")
    line = _lines(buf)[0]
    assert "XXXXSECRET" not in buf.getvalue()
    exc = str(line["exception"])
    assert "Traceback" in exc
    assert "RuntimeError: POST *** failed" in exc


def test_secret_in_exception_on_console_is_masked() -> None:
    secret = "tok-0123456789abcdef"
    applog.register_secret(secret)
    buf = _Tty()
    applog.configure_logging(stream=buf)
    try:
        raise ValueError(secret)
    except ValueError:
        structlog.get_logger("t").exception("job.failed")
    assert secret not in buf.getvalue()
    assert "ValueError: ***" in buf.getvalue()


def test_secrets_callable_is_consulted_per_line() -> None:
    current = ["first-secret-1"]
    buf = io.StringIO()
    applog.configure_logging(stream=buf, secrets=lambda: current)
    log = structlog.get_logger("t")
    log.info("x", v="first-secret-1")
    current.append("second-secret-2")
    log.info("x", v="second-secret-2 and first-secret-1")
    lines = _lines(buf)
    assert lines[0]["v"] == "***"
    assert lines[1]["v"] == "*** and ***"


def test_broken_secrets_callable_does_not_break_logging() -> None:
    def broken() -> list[str]:
        raise RuntimeError("nope")

    buf = io.StringIO()
    applog.configure_logging(stream=buf, secrets=broken)
    structlog.get_logger("t").info("still.logged")
    assert _lines(buf)[0]["event"] == "still.logged"


def test_short_secrets_are_ignored() -> None:
    applog.register_secret("ab")
    applog.register_secret("")
    applog.register_secret(None)
    assert applog.redact_text("about abc") == "about abc"


def test_key_based_redaction() -> None:
    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    structlog.get_logger("t").info(
        "config.loaded",
        api_key="k1",
        slack_token="xoxb-1",
        webhook_url="https://hooks.example/abc",
        Authorization="Bearer abc",
        password="pw",
        secret=None,
        headers={"authorization": "Bearer zzz", "accept": "json"},
        notifier="ops",
    )
    line = _lines(buf)[0]
    for key in ("api_key", "slack_token", "webhook_url", "Authorization", "password"):
        assert line[key] == "***", key
    assert line["secret"] is None  # "not set" stays visible
    assert line["headers"] == {"authorization": "***", "accept": "json"}
    assert line["notifier"] == "ops"


def test_credentials_in_urls_and_bearer_tokens_are_masked() -> None:
    assert applog.redact_text("postgresql://user:pw@db:5432/x") == "postgresql://***@db:5432/x"
    assert (
        applog.redact_text("GET https://h/x?api_key=abc&b=1") == "GET https://h/x?api_key=***&b=1"
    )
    assert applog.redact_text("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert applog.redact_text("https://rest.runpod.io/v1/pods") == "https://rest.runpod.io/v1/pods"


def test_object_whose_repr_leaks_is_masked() -> None:
    secret = "leaky-secret-value"
    applog.register_secret(secret)

    class Thing:
        def __repr__(self) -> str:
            return f"Thing({secret})"

    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    structlog.get_logger("t").info("x", thing=Thing())
    assert secret not in buf.getvalue()
    assert _lines(buf)[0]["thing"] == "Thing(***)"


def test_stdlib_loggers_are_routed_as_json_and_redacted() -> None:
    secret = "xoxb-slack-bot-token-1234"
    applog.register_secret(secret)
    buf = io.StringIO()
    applog.configure_logging(stream=buf)
    logging.getLogger("slack_sdk.web").warning("token %s rejected", secret)
    logging.getLogger("apscheduler.scheduler").error("job missed")
    try:
        raise OSError(f"connect failed for {secret}")
    except OSError:
        logging.getLogger("sqlalchemy.pool").exception("pool error")
    lines = _lines(buf)
    assert secret not in buf.getvalue()
    assert lines[0]["event"] == "token *** rejected"
    assert lines[0]["level"] == "warning"
    assert lines[0]["logger"] == "slack_sdk.web"
    assert "timestamp" in lines[0]
    assert lines[1]["event"] == "job missed"
    assert "OSError: connect failed for ***" in str(lines[2]["exception"])


def test_httpx_info_is_silenced_but_warnings_pass() -> None:
    buf = io.StringIO()
    applog.configure_logging(stream=buf, level="info")
    logging.getLogger("httpx").info('HTTP Request: POST https://hooks.slack.com/x "200"')
    logging.getLogger("httpcore.connection").info("connect")
    logging.getLogger("apscheduler.executors.default").info("Running job poll")
    logging.getLogger("httpx").warning("retrying")
    assert [x["event"] for x in _lines(buf)] == ["retrying"]


def test_reconfigure_replaces_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    applog.configure_logging(stream=first)
    applog.configure_logging(stream=second)
    structlog.get_logger("t").info("once")
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1
