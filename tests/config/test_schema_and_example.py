"""The shipped JSON Schema and example config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel
from ruamel.yaml import YAML

from daemon.config.loader import ConfigError, load_config, parse_config
from daemon.config.models import Config
from daemon.config.schema import MIRRORED, config_json_schema, data_text, render
from tests.config.helpers import BAD, GOOD, REPO

DATA = REPO / "daemon" / "config" / "data"
SCHEMA_FILE = DATA / "budgets.schema.json"
EXAMPLE = DATA / "budgets.example.yaml"
INIT = DATA / "budgets.init.yaml"
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
        "daemon/config/data/budgets.schema.json is stale: run "
        "python -m daemon.config.schema --write"
    )


@pytest.mark.parametrize("name", MIRRORED)
def test_config_dir_mirrors_the_packaged_files(name: str) -> None:
    assert (REPO / "config" / name).read_text() == (DATA / name).read_text(), (
        f"config/{name} differs from daemon/config/data/{name} (the source): run "
        "python -m daemon.config.schema --write"
    )


@pytest.mark.parametrize("name", [*MIRRORED, "budgets.init.yaml"])
def test_packaged_files_are_readable_as_package_data(name: str) -> None:
    assert data_text(name) == (DATA / name).read_text()


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


def test_example_shows_v2_first_and_every_feature() -> None:
    text = EXAMPLE.read_text()
    assert text.index("\napi:\n  version: v2") < text.index("\nbudgets:")
    c = load_config(EXAMPLE, EXAMPLE_ENV)
    assert c.api.version == "v2"
    families = {b.scope_family for b in c.budgets}
    assert families == {None, "pods", "serverless", "storage"}
    assert any(b.scope_family is None and b.resources is None for b in c.budgets)
    assert any(b.resources for b in c.budgets)
    pers = {b.per for b in c.budgets}
    assert {"pod", "gpu_type", "endpoint"} <= pers
    assert any(b.per == "pod" and b.enforce is not None for b in c.budgets)
    assert any(g.idle is not None and g.stop is not None and g.stop.dry_run for g in c.guards)
    assert any(g.uptime_over is not None for g in c.guards)
    assert c.balance is not None and c.balance.below_usd and c.balance.runway_below
    assert "grouping:" in text and c.grouping.max_individual >= 1
    assert c.digest is not None


def test_example_turned_to_v1_names_every_v2_only_feature() -> None:
    text = EXAMPLE.read_text().replace("  version: v2", "  version: v1", 1)
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="ex.yaml", env=EXAMPLE_ENV)
    keys = [p.key for p in info.value.problems]
    assert keys == ["budgets.7.match.volume_id", "guards.0.idle"]


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    seen[model.__name__] = model
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if tp.__name__ not in seen:
                    _models(tp, seen)
            else:
                stack.extend(getattr(tp, "__args__", ()))
    return seen


def test_schema_knows_every_key_of_every_model() -> None:
    schema = config_json_schema()
    for name, model in _models(Config, {}).items():
        node = schema if model is Config else schema["$defs"][name]
        keys = {f.alias or n for n, f in model.model_fields.items()}
        assert set(node["properties"]) == keys, name
        assert node["additionalProperties"] is False, name


def test_schema_shows_durations_as_strings_with_a_unit() -> None:
    schema = config_json_schema()
    defs = schema["$defs"]
    nodes = [
        schema["properties"]["poll_interval"],
        defs["Health"]["properties"]["after"],
        defs["Api"]["properties"]["timeout"],
        defs["Api"]["properties"]["deadline"],
        defs["Idle"]["properties"]["for"],
        defs["Guard"]["properties"]["uptime_over"]["anyOf"][0],
        defs["Balance"]["properties"]["runway_below"]["anyOf"][0]["items"],
    ]
    for node in nodes:
        assert node["type"] == "string" and "pattern" in node
    assert schema["properties"]["poll_interval"]["default"] == "5m"
    assert defs["Api"]["properties"]["timeout"]["default"] == "10s"
    for good in ("30s", "5m", "6h", "7d", "2w"):
        assert all(jsonschema.Draft202012Validator(n).is_valid(good) for n in nodes)
    for bad in (300, "5 minutes", "PT5M"):
        assert not any(jsonschema.Draft202012Validator(n).is_valid(bad) for n in nodes)


def test_schema_lists_the_new_choices() -> None:
    defs = config_json_schema()["$defs"]
    assert defs["Api"]["properties"]["version"]["enum"] == ["v2", "v1"]
    per = defs["Budget"]["properties"]["per"]["anyOf"][0]["enum"]
    assert per == ["pod", "gpu_type", "endpoint", "volume"]
    resources = defs["Budget"]["properties"]["resources"]["anyOf"][0]["items"]["enum"]
    assert resources == ["pods", "serverless", "storage", "clusters", "public_endpoints"]
    assert set(defs["Match"]["properties"]) >= {"endpoint_id", "volume_name"}


def test_example_names_the_variables_it_needs() -> None:
    for name in EXAMPLE_ENV:
        env = {k: v for k, v in EXAMPLE_ENV.items() if k != name}
        with pytest.raises(ConfigError) as info:
            load_config(EXAMPLE, env)
        assert name in str(info.value)


@pytest.mark.parametrize(
    "path", [EXAMPLE, INIT, *sorted(GOOD.glob("*.yaml"))], ids=lambda p: p.stem
)
def test_good_configs_match_the_schema(path: Path) -> None:
    jsonschema.validate(_yaml(path), config_json_schema())


@pytest.mark.parametrize(
    "name",
    [
        "typo-thresholds",
        "limit-negative",
        "per-node",
        "notifier-type-teams",
        "version-2",
        "api-version-unknown",
        "poll-interval-bare-number",
        "resources-unknown",
        "balance-levels-not-numbers",
        "guard-idle-out-of-range",
        "grouping-zero",
    ],
)
def test_schema_catches_simple_mistakes_too(name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_yaml(BAD / f"{name}.yaml"), config_json_schema())
