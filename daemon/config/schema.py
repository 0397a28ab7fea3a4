"""JSON Schema of the YAML config, for editors (yaml-language-server) and CI,
and the config files shipped inside the package.

The package data in ``daemon/config/data/`` is the one source of truth:
``budgets.schema.json`` (generated from the models), ``budgets.example.yaml``
(every feature) and ``budgets.init.yaml`` (what ``runpod-budget init``
writes). ``config/`` in the repository holds copies for people browsing it.
``python -m daemon.config.schema --write`` regenerates the schema and the
copies; a test fails when any of them is stale.
"""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
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


SCHEMA_FILE = "budgets.schema.json"
EXAMPLE_FILE = "budgets.example.yaml"
INIT_FILE = "budgets.init.yaml"
#: files under daemon/config/data/ that config/ in the repository mirrors
MIRRORED = (SCHEMA_FILE, EXAMPLE_FILE)


def data_text(name: str) -> str:
    """The text of the packaged file ``name`` (one of the *_FILE names);
    raises FileNotFoundError when the package was built without its data."""
    return files("daemon.config").joinpath("data", name).read_text("utf-8")


def write_files(repo: Path) -> list[Path]:
    """Regenerate the packaged schema and copy the mirrored files into
    ``repo/config``. Returns the paths written."""
    data = repo / "daemon" / "config" / "data"
    (data / SCHEMA_FILE).write_text(render(), encoding="utf-8")
    written = [data / SCHEMA_FILE]
    for name in MIRRORED:
        target = repo / "config" / name
        target.write_text((data / name).read_text("utf-8"), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    """Print the schema; with ``--write`` regenerate the files in this checkout."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        for path in write_files(Path(__file__).resolve().parents[2]):
            print(path)
        return
    print(render(), end="")


if __name__ == "__main__":
    main()
