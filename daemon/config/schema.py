"""JSON Schema of the YAML config, for editors (yaml-language-server) and CI.

``python -m daemon.config.schema > config/budgets.schema.json`` regenerates the
shipped file; a test fails when it is stale.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.config.models import Config

SCHEMA_ID = "https://github.com/runpod-budget/runpod-budget/config/budgets.schema.json"


def _plain_secrets(node: Any) -> Any:
    """SecretStr fields become plain strings (``format: password`` and
    ``writeOnly`` mean nothing to a YAML editor)."""
    if isinstance(node, dict):
        out = {k: _plain_secrets(v) for k, v in node.items()}
        if out.get("format") == "password":
            del out["format"]
            out.pop("writeOnly", None)
        return out
    if isinstance(node, list):
        return [_plain_secrets(v) for v in node]
    return node


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file."""
    schema = _plain_secrets(Config.model_json_schema(mode="validation"))
    assert isinstance(schema, dict)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "runpod-budget configuration",
        "description": (
            "Budget alerting for RunPod GPU pods. Values may use ${VAR} "
            "(environment) and $${ for a literal ${."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
        # top-level "x-…" keys hold YAML anchors; the loader ignores them
        "patternProperties": {"^x-": {}},
    }


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
