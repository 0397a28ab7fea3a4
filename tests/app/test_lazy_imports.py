"""Each command loads only the libraries its config uses.

A command is a fresh process (cron, CI, a shell), so what it imports is part
of every run's wall time and of the daemon's resident memory. These tests run
the real CLI in a subprocess against the RunPod simulator (in this process)
with a SQLite state and an unsigned webhook, and read the child's
``sys.modules`` when it exits: a module that is not needed must not be loaded,
and the one that is needed must be (so the check cannot pass vacuously). No
timing: what is loaded is what costs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.simulator import Simulator
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow

KEY = "lazy-imports-key-4d2e8b"

#: loaded by no command with a SQLite state, an unsigned webhook and no Slack
NEVER = (
    "sqlalchemy.dialects.postgresql",  # the PostgreSQL state only
    "slack_sdk",  # a slack notifier only
    "standardwebhooks",  # a webhook with a secret only
    "daemon.simulator",  # demo only
    "daemon.adapters.runpod.graphql",  # balance: only
)
#: loaded only by `run` (the daemon exports metrics and schedules jobs)
RUN_ONLY = ("prometheus_client", "apscheduler")

# The CLI as the console script runs it; at exit (after main returned) prints
# the modules it loaded as the last line of stdout.
MAIN = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), flush=True))\n"
    "from daemon.app.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def write_config(path: Path, hook: str, version: str, extra: str = "") -> Path:
    api = "" if version == "v2" else f"api:\n  version: {version}\n"
    path.write_text(
        f"version: 1\n{api}poll_interval: 5m\nhttp:\n  listen: 127.0.0.1:0\n"
        f"notifiers:\n  hook:\n    type: webhook\n    url: {hook}\n"
        "defaults:\n  notify: [hook]\n"
        "budgets:\n  - name: all-24h\n    window: 24h\n    limit: 1\n    thresholds: [100]\n"
        + extra
    )
    return path


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("demo", api_key=KEY) as s:
        yield s


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def child_env(tmp_path: Path, sim: Simulator, version: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(
        RUNPOD_API_KEY=KEY,
        RUNPOD_API_BASE_URL=sim.base_url_for(version),
        RUNPOD_GRAPHQL_URL=sim.graphql_url,
        STATE_DIRECTORY=str(tmp_path / "state"),
    )
    return env


def loaded_by(stdout: str) -> set[str]:
    return set(json.loads(stdout.strip().splitlines()[-1]))


def run_command(tmp_path: Path, sim: Simulator, version: str, *args: str) -> set[str]:
    p = subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        env=child_env(tmp_path, sim, version),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return loaded_by(p.stdout)


def other(version: str) -> str:
    return {"v1": "v2", "v2": "v1"}[version]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_check_loads_neither_metrics_scheduler_postgres_slack_nor_rich(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    cfg = write_config(tmp_path / "c.yaml", rx.url + "/hook", version)
    loaded = run_command(tmp_path, sim, version, "check", "-c", str(cfg))
    assert len(rx.requests_to("/hook")) == 1  # the cycle ran and delivered
    assert f"daemon.adapters.runpod.{version}" in loaded
    assert {"sqlalchemy.dialects.sqlite", "daemon.adapters.webhook"} <= loaded
    unwanted = (*NEVER, *RUN_ONLY, "rich", f"daemon.adapters.runpod.{other(version)}")
    assert sorted(m for m in unwanted if m in loaded) == []


def test_status_loads_rich_for_its_tables_and_no_metrics(
    tmp_path: Path, sim: Simulator, rx: Receiver
) -> None:
    cfg = write_config(tmp_path / "c.yaml", rx.url + "/hook", "v2")
    loaded = run_command(tmp_path, sim, "v2", "status", "-c", str(cfg))
    assert "rich.table" in loaded
    assert sorted(m for m in (*NEVER, *RUN_ONLY) if m in loaded) == []


def test_balance_loads_the_graphql_client(tmp_path: Path, sim: Simulator, rx: Receiver) -> None:
    cfg = write_config(tmp_path / "c.yaml", rx.url + "/hook", "v2", "balance:\n  below_usd: [25]\n")
    loaded = run_command(tmp_path, sim, "v2", "check", "-c", str(cfg))
    assert "daemon.adapters.runpod.graphql" in loaded


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_run_loads_metrics_and_scheduler_but_not_postgres_slack_or_rich(
    tmp_path: Path, sim: Simulator, rx: Receiver, version: str
) -> None:
    cfg = write_config(tmp_path / "c.yaml", rx.url + "/hook", version)
    err = tmp_path / "daemon.stderr"
    with err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "--log-format", "json", "run", "-c", str(cfg)],
            env=child_env(tmp_path, sim, version),
            stdout=subprocess.PIPE,
            stderr=e,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while '"cycle.done"' not in err.read_text("utf-8", errors="replace"):
            assert proc.poll() is None, err.read_text("utf-8", errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no cycle.done within 60 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err.read_text("utf-8", errors="replace")[-3000:]
    loaded = loaded_by(out)
    assert {"prometheus_client", "apscheduler", f"daemon.adapters.runpod.{version}"} <= loaded
    unwanted = (*NEVER, "rich", f"daemon.adapters.runpod.{other(version)}")
    assert sorted(m for m in unwanted if m in loaded) == []
