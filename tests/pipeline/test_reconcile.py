"""A stop whose result was never recorded: ``kill -9`` of a real ``check``
process after its stop request reached RunPod, before the answer came back.

The simulator holds the ``POST /v2/pods/{id}/action`` open (a ``delay``
fault); once the fault has been taken the request is in RunPod's hands, and
the ``check`` process is SIGKILLed: the intent row is written, its result
never is. The next ``check`` reconciles the open intent against ``GET
/pods``: a pod that is not running was stopped (announced ``stopped``); one
that still runs is announced ``unknown_after_crash`` and never stopped again
blindly.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.app.commands import check
from daemon.simulator import Simulator
from tests.pipeline.conftest import HOOK, payloads
from tests.support.receiver import Receiver
from tests.support.simulator import TEST_KEY, running_simulator

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
POD = "pod-burn"
ACTION = f"/v2/pods/{POD}/action"

# 100 $/h for 30 hours: 3000 USD in the last 24 h, three times the limit.
BURNING: dict[str, Any] = {
    "pods": [
        {"id": POD, "name": "train-burn", "gpu_type": "NVIDIA H100 80GB HBM3",
         "cost_per_hr": 100.0, "running": [["-30h", None]]}
    ]
}


def write_config(path: Path, rx: Receiver) -> None:
    budget = {"name": "pod-cap", "per": "pod", "window": "24h", "limit": 1000,
              "thresholds": [100], "enforce": {"at": 100, "dry_run": False}}
    config = {
        "version": 1,
        "notifiers": {"hook": {"type": "webhook", "url": rx.url + HOOK, "timeout": 5}},
        "defaults": {"notify": ["hook"]},
        "budgets": [budget],
    }
    path.write_text(json.dumps(config), encoding="utf-8")


def stop_posts(sim: Simulator) -> int:
    """Stop requests that reached the simulator (answered or still held)."""
    return sum(1 for r in sim.requests if r.method == "POST" and r.path == ACTION)


@pytest.mark.parametrize("outcome", ["stopped", "still_running"])
def test_an_unrecorded_stop_is_reconciled_by_the_next_cycle(
    tmp_path: Path, outcome: str
) -> None:
    with Receiver() as rx, running_simulator(BURNING, clock=lambda: datetime.now(UTC)) as sim:
        cfg = tmp_path / "budgets.yaml"
        write_config(cfg, rx)
        env = {
            "RUNPOD_API_KEY": TEST_KEY,
            "RUNPOD_API_BASE_URL": sim.base_url_for("v2"),
            "STATE_DIRECTORY": str(tmp_path / "state"),
        }
        held = sim.fail(ACTION, kind="delay", delay=60, method="POST")
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "check", "-c", str(cfg)],
            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while held.times > 0:  # the stop request has reached "RunPod"
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the stop request never arrived"
                time.sleep(0.01)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        assert rx.requests == []  # killed before anything was queued or sent
        assert sim.pod(POD).desired_status == "RUNNING"  # the held request did nothing yet
        if outcome == "stopped":
            sim.stop_pod(POD)  # RunPod carried the stop out; only its answer was lost

        outputs = []
        for _ in range(2):  # the reconciling cycle, and one more
            out = io.StringIO()
            assert check(cfg, env, dry_run=False, out=out) == 0, out.getvalue()
            outputs.append(out.getvalue())
        assert stop_posts(sim) == 0  # never stopped again (the held one is not answered)
        status = sim.pod(POD).desired_status

    enforcement = [p for p in payloads(rx) if p["kind"] == "enforcement"]
    if outcome == "stopped":
        assert status == "EXITED"
        assert [(p["action"], p["pod_id"]) for p in enforcement] == [("stopped", POD)]
        assert f"stopped pod {POD}" in outputs[0]
    else:
        assert status == "RUNNING"
        assert [(p["action"], p["reason"]) for p in enforcement] == [
            ("refused", "unknown_after_crash")]
        assert "unknown_after_crash" in outputs[0]
    # the cycle after that announces nothing new (the payload lists above hold
    # one enforcement event each); it may still show the standing refusal
    assert "no new alerts" in outputs[1]
    assert f"stopped pod {POD}" not in outputs[1]
    # the threshold the killed cycle had decided is decided again, once
    assert [p["kind"] for p in payloads(rx)].count("threshold") == 1
