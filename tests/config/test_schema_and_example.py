"""The shipped JSON Schema and example config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from daemon.config.loader import ConfigError, load_config
from daemon.config.schema import config_json_schema, render
from tests.config.helpers import BAD, GOOD, REPO

SCHEMA_FILE = REPO / "config" / "budgets.schema.json"
EXAMPLE = REPO / "config" / "budgets.example.yaml"
EXAMPLE_ENV = {
    "RUNPOD_API_KEY_RESEARCH": "rpa_R",
    "RUNPOD_API_KEY_PROD": "rpa_P",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
    "SLACK_BOT_TOKEN": "xoxb-1",
    "WEBHOOK_SECRET": "whsec_new",
    "WEBHOOK_SECRET_OLD": "whsec_old",
}


def _yaml(path: Path) -> object:
    return YAML(typ="safe").load(path.read_text())


def test_shipped_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "config/budgets.schema.json is stale: run "
        "python -m daemon.config.schema > config/budgets.schema.json"
    )


def test_schema_module_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "daemon.config.schema"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    assert json.loads(out) == config_json_schema()


def test_schema_is_valid_and_describes_secrets_as_strings() -> None:
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] and schema["description"]
    assert "password" not in json.dumps(schema)
    slack = schema["$defs"]["SlackNotifier"]["properties"]
    assert slack["webhook_url"]["anyOf"][0] == {"type": "string"}
    assert schema["additionalProperties"] is False


def test_example_points_editors_at_the_schema() -> None:
    first = EXAMPLE.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./budgets.schema.json"


def test_example_validates() -> None:
    c = load_config(EXAMPLE, EXAMPLE_ENV)
    assert len(c.accounts) == 2
    assert {n.type for n in c.notifiers.values()} == {"slack", "webhook", "console"}
    rolling = [b for b in c.budgets if b.rolling is not None]
    calendar = [b for b in c.budgets if b.rolling is None]
    assert rolling and calendar
    assert any(b.per == "pod" for b in c.budgets) and any(b.per == "gpu_type" for b in c.budgets)
    assert any(b.enforce and b.enforce.dry_run for b in c.budgets)
    assert c.digest is not None


def test_example_names_the_variables_it_needs() -> None:
    for name in EXAMPLE_ENV:
        env = {k: v for k, v in EXAMPLE_ENV.items() if k != name}
        with pytest.raises(ConfigError) as info:
            load_config(EXAMPLE, env)
        assert name in str(info.value)


@pytest.mark.parametrize(
    "path", [EXAMPLE, *sorted(GOOD.glob("*.yaml"))], ids=lambda p: p.stem
)
def test_good_configs_match_the_schema(path: Path) -> None:
    jsonschema.validate(_yaml(path), config_json_schema())


@pytest.mark.parametrize(
    "name", ["typo-thresholds", "limit-negative", "per-node", "notifier-type-teams", "version-2"]
)
def test_schema_catches_simple_mistakes_too(name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_yaml(BAD / f"{name}.yaml"), config_json_schema())
