"""``runpod-budget demo``: the real daemon against the built-in RunPod simulator.

Nothing is faked inside the daemon: the simulator serves RunPod's REST API on
loopback, the daemon polls it over HTTP with a throwaway key, keeps its state
in a temporary SQLite file and prints alerts with the console notifier.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
from importlib.resources import files
from pathlib import Path

from daemon.app.service import Service
from daemon.config.loader import load_config
from daemon.simulator import Simulator


def run_demo(*, poll: str = "2s", duration: float | None = None) -> int:
    """Run until Ctrl-C (or ``duration`` seconds); 0 on a clean exit."""
    key = "demo-" + secrets.token_hex(12)
    with (
        tempfile.TemporaryDirectory(prefix="runpod-budget-demo-") as tmp,
        Simulator("demo", api_key=key) as sim,
    ):
        cfg_path = Path(tmp) / "budgets.yaml"
        cfg_path.write_text(files("daemon.app").joinpath("demo.yaml").read_text("utf-8"))
        env = {
            **os.environ,
            "RUNPOD_API_KEY": key,
            "RUNPOD_API_BASE_URL": sim.base_url_for("v2"),
            "RUNPOD_GRAPHQL_URL": sim.graphql_url,
            "STATE_DIRECTORY": tmp,
            "DEMO_POLL_INTERVAL": poll,
        }
        config = load_config(cfg_path, env)
        svc = Service(cfg_path, env, config=config, console=sys.stdout)
        print(
            f"runpod-budget demo: RunPod API v2 simulator at {sim.base_url_for('v2')}, "
            f"polling every {poll}; a runaway 8xH100 pod burns $1800/h, a dev pod sits "
            "idle and the prepaid balance is $40. Alerts follow; Ctrl-C stops.",
            flush=True,
        )
        svc.install_signals()
        if duration is not None:
            threading.Timer(duration, svc.stop_event.set).start()
        svc.start()
        if svc.http is not None:
            print(f"metrics: http://127.0.0.1:{svc.http.port}/metrics", flush=True)
        try:
            svc.wait()
        finally:
            svc.stop()
    print("demo stopped", flush=True)
    return 0
