"""load_config / parse_config: defaults, ${VAR}, files, positions."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from daemon.config.loader import (
    ConfigError,
    Problem,
    default_config_path,
    format_problems,
    load_config,
    parse_config,
    state_url,
)
from daemon.config.models import SlackNotifier, WebhookNotifier
from tests.config.helpers import ENV, GOOD, GOOD_ENV

SLACK = """\
notifiers:
  ops:
    type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
defaults:
  notify: [ops]
"""


def problems(text: str, env: dict[str, str] | None = None, **kw: bool) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="c.yaml", env=ENV if env is None else env, **kw)
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------------ defaults


def test_minimal_config_gets_the_documented_defaults() -> None:
    c = parse_config("version: 1\n", env={"RUNPOD_API_KEY": "k"})
    assert [(a.name, a.api_key_env) for a in c.accounts] == [("default", "RUNPOD_API_KEY")]
    assert c.defaults.thresholds == [80, 100]
    assert c.poll == timedelta(minutes=5)
    assert c.timezone == "UTC"
    assert c.budgets == []
    assert c.http.listen == "127.0.0.1:9464"
    assert c.health.after == timedelta(minutes=15)
    assert c.enforcement.max_stops_per_cycle == 5


def test_budget_inherits_defaults_unless_it_sets_its_own() -> None:
    c = parse_config(
        SLACK
        + """\
  thresholds: [90, 50]
  forecast: true
version: 1
budgets:
  - {name: a, window: day, limit: 10}
  - {name: b, window: 24h, limit: 10, thresholds: [100], forecast: false, notify: [ops]}
""",
        env=ENV,
    )
    a, b = c.budgets
    assert c.effective_thresholds(a) == [50, 90]  # sorted
    assert c.effective_forecast(a) is True
    assert c.effective_notify(a) == ["ops"]
    assert c.effective_thresholds(b) == [100]
    assert c.effective_forecast(b) is False
    assert a.rolling is None
    assert b.rolling == timedelta(hours=24)
    assert c.budget_accounts(a) == ["default"]
    assert c.digest_notify() == []
    assert c.health_notify() == ["ops"]


def test_default_account_without_key_is_reported_at_line_1() -> None:
    assert problems("version: 1\n", env={}) == [
        "c.yaml:1:1: accounts: environment variable RUNPOD_API_KEY is not set "
        "(nor RUNPOD_API_KEY_FILE, nor a systemd credential)"
    ]


def test_api_key_check_can_be_switched_off_for_the_demo() -> None:
    c = parse_config("version: 1\n", env={}, require_api_keys=False)
    assert c.accounts[0].name == "default"


def test_account_without_api_key_env_uses_runpod_api_key() -> None:
    text = "version: 1\naccounts:\n  - name: solo\n"
    assert problems(text, env={}) == [
        "c.yaml:3:5: accounts.0.api_key_env: environment variable RUNPOD_API_KEY is not set "
        "(nor RUNPOD_API_KEY_FILE, nor a systemd credential)"
    ]
    c = parse_config(text, env={"RUNPOD_API_KEY": "k"})
    assert c.accounts[0].api_key_env == "RUNPOD_API_KEY"


def test_empty_api_key_is_reported_as_empty() -> None:
    assert problems("version: 1\n", env={"RUNPOD_API_KEY": ""}) == [
        "c.yaml:1:1: accounts: environment variable RUNPOD_API_KEY is empty"
    ]


# ------------------------------------------------------------------ ${VAR}


def test_variables_are_substituted_inside_longer_strings() -> None:
    text = """\
version: 1
notifiers:
  hook:
    type: webhook
    url: https://${HOOK_HOST}:8443/in/${HOOK_PATH}?v=1
defaults: {notify: [hook]}
"""
    c = parse_config(text, env={**ENV, "HOOK_HOST": "h.example.com", "HOOK_PATH": "abc"})
    hook = c.notifiers["hook"]
    assert isinstance(hook, WebhookNotifier)
    assert hook.url.get_secret_value() == "https://h.example.com:8443/in/abc?v=1"


def test_double_dollar_brace_is_a_literal() -> None:
    extra = "    console_url: https://c/$${pod}/$$x/${X}\n    webhook_url:"
    text = (SLACK + "version: 1\n").replace("    webhook_url:", extra)
    c = parse_config(text, env={**ENV, "X": "y"})
    ops = c.notifiers["ops"]
    assert isinstance(ops, SlackNotifier)
    assert ops.console_url == "https://c/${pod}/$$x/y"


def test_every_missing_variable_is_named() -> None:
    text = """\
version: 1
state: postgresql://budget:${PGPASSWORD}@${PGHOST}/budget
notifiers:
  ops: {type: slack, webhook_url: "${SLACK_WEBHOOK_URL}"}
defaults: {notify: [ops]}
"""
    assert problems(text, env={"RUNPOD_API_KEY": "k"}) == [
        "c.yaml:2:8: state: environment variable PGPASSWORD is not set",
        "c.yaml:2:8: state: environment variable PGHOST is not set",
        "c.yaml:4:35: notifiers.ops.webhook_url: environment variable SLACK_WEBHOOK_URL is not set",
    ]


def test_variables_are_not_substituted_in_keys_or_comments() -> None:
    c = parse_config("version: 1  # ${NOT_SET}\ntimezone: UTC\n", env={"RUNPOD_API_KEY": "k"})
    assert c.version == 1


def test_bad_variable_name_is_reported() -> None:
    text = "version: 1\ntimezone: ${my-zone}\n"
    assert problems(text) == [
        "c.yaml:2:11: timezone: '${my-zone}' is not a variable name "
        "(write '$${' for a literal '${')"
    ]


# ------------------------------------------------------------------ files and paths


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    assert str(info.value) == f"{path}:1:1: -: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, ENV)
    assert str(info.value) == f"{tmp_path}:1:1: -: is a directory, not a file"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\ntimezone: Zürich\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    assert str(info.value) == f"{path}:1:1: -: not UTF-8 text"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\n")
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNPOD_API_KEY_FILE", raising=False)
    with pytest.raises(ConfigError):
        load_config(path)
    monkeypatch.setenv("RUNPOD_API_KEY", "k")
    assert load_config(path).version == 1


def test_default_config_path() -> None:
    assert default_config_path({}) == Path("config/budgets.yaml")
    assert default_config_path({"RUNPOD_BUDGET_CONFIG": "/etc/rb.yaml"}) == Path("/etc/rb.yaml")
    assert default_config_path({"RUNPOD_BUDGET_CONFIG": ""}) == Path("config/budgets.yaml")


def test_state_url_defaults() -> None:
    c = parse_config("version: 1\n", env={}, require_api_keys=False)
    assert state_url(c, {}) == "sqlite:///./state/state.db"
    assert state_url(c, {"STATE_DIRECTORY": "/var/lib/rb"}) == "sqlite:////var/lib/rb/state.db"
    assert (
        state_url(c, {"STATE_DIRECTORY": "/var/lib/rb:/var/lib/other"})
        == "sqlite:////var/lib/rb/state.db"
    )
    set_ = parse_config(
        "version: 1\nstate: postgresql://u:${PW}@db/rb\n", env={"PW": "pw"}, require_api_keys=False
    )
    assert state_url(set_, {"STATE_DIRECTORY": "/x"}) == "postgresql://u:pw@db/rb"


# ------------------------------------------------------------------ good configs and shapes


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.stem)
def test_good_configs_load(path: Path) -> None:
    c = load_config(path, GOOD_ENV)
    assert c.version == 1


def test_several_accounts() -> None:
    c = load_config(GOOD / "several-accounts.yaml", GOOD_ENV)
    assert [a.name for a in c.accounts] == ["research", "prod"]
    by_name = {b.name: b for b in c.budgets}
    assert c.budget_accounts(by_name["research-month"]) == ["research"]
    assert c.budget_accounts(by_name["everyone-day"]) == ["research", "prod"]
    hook = c.notifiers["prod-hook"]
    assert isinstance(hook, WebhookNotifier)
    assert hook.url.get_secret_value() == "https://hooks.example.com/runpod?token=hooktoken-12345"
    assert [s.get_secret_value() for s in hook.signing_secrets()] == [GOOD_ENV["WEBHOOK_SECRET"]]


def test_anchors_merge_keys_and_x_keys() -> None:
    c = load_config(GOOD / "anchors-and-escapes.yaml", GOOD_ENV)
    (b,) = c.budgets
    assert (b.window, b.thresholds, b.limit) == ("day", [90], 200)


def test_error_inside_a_merged_mapping_does_not_crash() -> None:
    text = """\
version: 1
x-base: &base
  window: fortnight
notifiers: {c: {type: console}}
defaults: {notify: [c]}
budgets:
  - <<: *base
    name: a
    limit: 1
"""
    # the value's own line, inside the anchored mapping
    assert problems(text) == [
        "c.yaml:3:11: budgets.0.window: 'fortnight' is not a window: use hour, day, week, "
        "month, or a rolling length like 6h, 24h, 7d"
    ]


def test_missing_key_points_at_the_parent_mapping() -> None:
    text = SLACK + "version: 1\ndigest:\n  notify: [ops]\n"
    assert problems(text) == ["c.yaml:8:1: digest.cron: required key is missing"]


def test_problem_str_and_format_problems() -> None:
    p = Problem("a.yaml", 3, 7, "budgets.0.limit", "must be greater than 0")
    assert str(p) == "a.yaml:3:7: budgets.0.limit: must be greater than 0"
    err = ConfigError([p, Problem("a.yaml", 9, 1, "-", "unclosed quote")])
    assert format_problems(err) == (
        "a.yaml:3:7: budgets.0.limit: must be greater than 0\na.yaml:9:1: -: unclosed quote"
    )
    assert str(err) == format_problems(err)


def test_validation_error_with_every_field_wrong_is_still_one_line_each() -> None:
    text = "version: 1\ntimezone: 5\npoll_interval: [1]\nhttp: {enabled: perhaps}\n"
    assert problems(text) == [
        "c.yaml:2:11: timezone: must be a string",
        "c.yaml:3:1: poll_interval: must be a string",
        "c.yaml:4:17: http.enabled: must be true or false",
    ]


# ------------------------------------------------------------------ robustness

KEYS = [
    "version", "timezone", "state", "poll_interval", "accounts", "notifiers", "defaults",
    "budgets", "digest", "health", "http", "enforcement", "name", "api_key_env", "type",
    "webhook_url", "token", "channel", "url", "secret", "secrets", "window", "limit",
    "thresholds", "notify", "match", "gpu_type", "per", "enforce", "at", "cron", "listen",
    "slack", "ops", "x-a", "treshold",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True),
    st.sampled_from(["slack", "webhook", "console", "day", "6h", "ops", "${X}", "$${", "${",
                     "UTC", "1", "", "a b", "0 9 * * *", "127.0.0.1:1"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6), st.booleans())
def test_any_document_gives_a_config_or_problem_lines(doc: dict[str, object], v1: bool) -> None:
    if v1:
        doc = {"version": 1, **doc}
    buf = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(doc, buf)
    try:
        parse_config(buf.getvalue(), file="f.yaml", env={"X": "https://x", "RUNPOD_API_KEY": "k"})
    except ConfigError as e:
        assert e.problems
        for p in e.problems:
            assert str(p).startswith("f.yaml:")
            assert p.line >= 1 and p.col >= 1
            assert p.message and "Value error" not in p.message
