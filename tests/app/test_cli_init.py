"""``runpod-budget init`` and ``runpod-budget schema`` as users run them:
``python -m daemon COMMAND`` in a subprocess, in a scratch directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from daemon.config.schema import config_json_schema

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "daemon" / "config" / "data" / "budgets.init.yaml"


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_"))}
    base["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_init_writes_a_config_that_validates_with_just_an_api_key(tmp_path: Path) -> None:
    proc = run(tmp_path, "init")
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "config" / "budgets.yaml"
    assert written.read_text() == INIT.read_text()
    assert "Next steps" in proc.stdout
    assert "runpod-budget validate -c config/budgets.yaml" in proc.stdout
    assert "RUNPOD_API_KEY" in proc.stdout

    check = run(tmp_path, "validate", RUNPOD_API_KEY="rpa_TESTKEY000000000000000000")
    assert (check.returncode, check.stdout) == (0, "OK\n"), check.stderr
    missing = run(tmp_path, "validate")
    assert missing.returncode == 2
    assert "RUNPOD_API_KEY" in missing.stderr


def test_init_config_is_commented_v2_and_shows_guards_and_balance(tmp_path: Path) -> None:
    run(tmp_path, "init", "budgets.yaml")
    text = (tmp_path / "budgets.yaml").read_text()
    data = YAML(typ="safe").load(text)
    assert data["api"] == {"version": "v2"}
    assert data["guards"] and data["balance"] and data["budgets"]
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 20


def test_init_creates_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "runpod-budget" / "budgets.yaml"
    proc = run(tmp_path, "init", str(target))
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == INIT.read_text()
    assert str(target) in proc.stdout


def test_init_never_overwrites_a_file(tmp_path: Path) -> None:
    target = tmp_path / "config" / "budgets.yaml"
    target.parent.mkdir()
    target.write_text("version: 1\n# mine\n")
    proc = run(tmp_path, "init")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "runpod-budget init: config/budgets.yaml already exists; not overwriting it "
        "(move it away or name another path)"
    )
    assert proc.stdout == ""
    assert target.read_text() == "version: 1\n# mine\n"


def test_init_says_why_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    proc = run(tmp_path, "init", "blocker/budgets.yaml")
    assert proc.returncode == 1
    assert proc.stderr.startswith("runpod-budget init: cannot write blocker/budgets.yaml: ")
    assert (tmp_path / "blocker").read_text() == "a file, not a directory"


def test_schema_prints_the_json_schema_without_a_config(tmp_path: Path) -> None:
    proc = run(tmp_path, "schema")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert schema == config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(YAML(typ="safe").load(INIT.read_text()), schema)
    assert list(tmp_path.iterdir()) == []  # reads and writes nothing


def test_help_lists_the_new_commands(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0
    assert "init" in proc.stdout and "schema" in proc.stdout
