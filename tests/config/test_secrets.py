"""API keys and other secrets: lookup order, and that no value ever leaks
into a problem, an error message or a repr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config.loader import (
    ConfigError,
    api_key_for,
    load_config,
    parse_config,
    resolve_secret,
)
from daemon.config.models import Account
from tests.config.helpers import ENV, GOOD, GOOD_ENV

# ------------------------------------------------------------------ lookup order


def test_plain_variable() -> None:
    assert resolve_secret("K", {"K": "v"}) == "v"
    assert resolve_secret("K", {}) is None
    assert resolve_secret("K", {"K": ""}) is None


def test_file_variable_strips_one_newline(tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("from-file\n\n")
    assert resolve_secret("K", {"K_FILE": str(f), "K": "plain"}) == "from-file\n"
    f.write_text("from-file\n")
    assert resolve_secret("K", {"K_FILE": str(f)}) == "from-file"


def test_systemd_credential_wins(tmp_path: Path) -> None:
    (tmp_path / "K").write_text("from-credential\n")
    other = tmp_path / "other"
    other.write_text("from-file")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "K_FILE": str(other), "K": "plain"}
    assert resolve_secret("K", env) == "from-credential"
    # a credentials directory without that name falls through to _FILE
    assert resolve_secret("K", {**env, "CREDENTIALS_DIRECTORY": str(tmp_path / "none")}) == (
        "from-file"
    )


def test_api_key_for(tmp_path: Path) -> None:
    f = tmp_path / "research.key"
    f.write_text("rpa_FROMFILE\n")
    account = Account(name="research", api_key_env="RUNPOD_API_KEY_RESEARCH")
    assert api_key_for(account, {"RUNPOD_API_KEY_RESEARCH_FILE": str(f)}) == "rpa_FROMFILE"
    with pytest.raises(ConfigError) as info:
        api_key_for(account, {})
    assert str(info.value) == (
        "<environment>:1:1: accounts.research.api_key_env: environment variable "
        "RUNPOD_API_KEY_RESEARCH is not set (nor RUNPOD_API_KEY_RESEARCH_FILE, "
        "nor a systemd credential)"
    )


def test_config_accepts_keys_from_file_and_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "RUNPOD_API_KEY_RESEARCH").write_text("rpa_R\n")
    prod = tmp_path / "prod.key"
    prod.write_text("rpa_P")
    env = {k: v for k, v in GOOD_ENV.items() if not k.startswith("RUNPOD_API_KEY")}
    env |= {"CREDENTIALS_DIRECTORY": str(creds), "RUNPOD_API_KEY_PROD_FILE": str(prod)}
    c = load_config(GOOD / "several-accounts.yaml", env)
    assert [api_key_for(a, env) for a in c.accounts] == ["rpa_R", "rpa_P"]


def test_unreadable_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigError) as info:
        parse_config("version: 1\n", file="c.yaml", env={"RUNPOD_API_KEY_FILE": str(missing)})
    assert str(info.value) == (
        f"c.yaml:1:1: accounts: RUNPOD_API_KEY_FILE names a file that cannot be read: {missing}"
    )


# ------------------------------------------------------------------ nothing leaks

SECRETS = {
    "SLACK_WEBHOOK_URL": "hooks.slack.com/services/T0/B0/LEAKCHECK1",  # no scheme: invalid
    "SLACK_BOT_TOKEN": "xoxb-LEAKCHECK2",
    "WEBHOOK_URL": "ftp://LEAKCHECK3@example.com/in",  # not http: invalid
    "WEBHOOK_SECRET": "whsec_LEAKCHECK4",
    "PGPASSWORD": "LEAKCHECK5",
    "RUNPOD_API_KEY": "rpa_LEAKCHECK6",
}
LEAKY = """\
version: 1
state: mysql://u:${PGPASSWORD}@db/x
accounts:
  - name: a
  - name: b
    api_key_env: rpa_LEAKCHECK7PASTEDKEY
notifiers:
  ops:
    type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
  bot:
    type: slack
    webhook_url: https://hooks.slack.com/${SLACK_BOT_TOKEN}
    token: ${SLACK_BOT_TOKEN}
    channel: "#c"
  hook:
    type: webhook
    url: ${WEBHOOK_URL}
    secret: ${WEBHOOK_SECRET}
    secrets: ["${WEBHOOK_SECRET}"]
defaults: {notify: [ops, nobody]}
budgets:
  - {name: x, window: day, limit: 1, notify: [hook, bot]}
"""


def test_no_secret_in_problems() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(LEAKY, file="c.yaml", env=SECRETS)
    text = str(info.value) + repr(info.value) + repr(info.value.problems)
    assert len(info.value.problems) >= 6  # it did look at the secret-bearing keys
    assert "LEAKCHECK" not in text
    keys = {p.key for p in info.value.problems}
    assert {
        "state",
        "accounts.1.api_key_env",
        "notifiers.ops.webhook_url",
        "notifiers.bot.token",
        "notifiers.hook.url",
    } <= keys


def test_no_secret_in_repr_of_a_valid_config() -> None:
    env = {**GOOD_ENV, "PGPASSWORD": "LEAKCHECK8"}
    text = (GOOD / "several-accounts.yaml").read_text()
    text += "state: postgresql://budget:${PGPASSWORD}@db/budget\n"
    c = parse_config(text, env=env)
    dumped = repr(c) + str(c) + str(c.model_dump())
    for name in ("SLACK_BOT_TOKEN", "HOOK_TOKEN", "WEBHOOK_SECRET", "PGPASSWORD"):
        assert env[name] not in dumped, name


def test_no_secret_from_environment_in_bad_corpus_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.config.helpers import BAD

    monkeypatch.chdir(BAD)
    for fixture in sorted(BAD.glob("*.yaml")):
        try:
            load_config(fixture.name, ENV)
        except ConfigError as e:
            for value in ENV.values():
                assert value not in str(e), (fixture.name, value)


def test_os_environ_secrets_not_leaked_on_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "not-a-url-LEAKCHECK9")
    with pytest.raises(ConfigError) as info:
        parse_config(
            "version: 1\nnotifiers: {o: {type: slack, webhook_url: '${SLACK_WEBHOOK_URL}'}}\n"
            "defaults: {notify: [o]}\n",
            env={**os.environ, "RUNPOD_API_KEY": "k"},
        )
    assert "LEAKCHECK" not in str(info.value)
    assert "notifiers.o.webhook_url: must be an http(s) URL" in str(info.value)


def test_variables_in_the_config_also_come_from_files_and_credentials(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("https://hooks.slack.com/services/T/B/FROMFILE\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "HOOK_SECRET").write_text("whsec_FROMCRED")
    text = """\
version: 1
notifiers:
  ops: {type: slack, webhook_url: "${SLACK_WEBHOOK_URL}"}
  hook: {type: webhook, url: "https://h/${SUFFIX}", secret: "${HOOK_SECRET}"}
defaults: {notify: [ops]}
"""
    env = {
        "RUNPOD_API_KEY": "k",
        "SLACK_WEBHOOK_URL_FILE": str(tmp_path / "hook"),
        "CREDENTIALS_DIRECTORY": str(creds),
        "SUFFIX": "",  # an empty variable is a value
    }
    c = parse_config(text, env=env)
    ops, hook = c.notifiers["ops"], c.notifiers["hook"]
    assert ops.type == "slack" and ops.webhook_url is not None
    assert ops.webhook_url.get_secret_value() == "https://hooks.slack.com/services/T/B/FROMFILE"
    assert hook.type == "webhook" and hook.secret is not None
    assert hook.secret.get_secret_value() == "whsec_FROMCRED"
    assert hook.url.get_secret_value() == "https://h/"

    env["SLACK_WEBHOOK_URL_FILE"] = str(tmp_path / "missing")
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="c.yaml", env=env)
    assert str(info.value) == (
        "c.yaml:3:35: notifiers.ops.webhook_url: SLACK_WEBHOOK_URL_FILE names a file that "
        f"cannot be read: {tmp_path / 'missing'}"
    )
