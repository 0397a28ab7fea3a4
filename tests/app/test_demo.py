"""``runpod-budget demo`` as a user runs it: a subprocess, no key, no network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def demo_env() -> dict[str, str]:
    # the demo needs no key and no config: make sure it does not pick up ours
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNPOD_", "STATE_DIRECTORY", "WEBHOOK_", "SLACK_"))
    }


def test_demo_with_duration_alerts_stops_the_runaway_and_exits_0(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--duration", "15"],
        env=demo_env(), cwd=tmp_path, capture_output=True, text=True, timeout=90,
        stdin=subprocess.DEVNULL, check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert any(ln.startswith("[") and "Budget" in ln for ln in lines), p.stdout
    enforcement = [ln for ln in lines if ln.startswith("[ENFORCEMENT]")]
    assert enforcement, p.stdout
    assert "stopped pod train-sweep-runaway" in enforcement[0]
    assert lines[-1] == "demo stopped"
    assert list(tmp_path.iterdir()) == []  # state lived in a temporary directory


def test_demo_exits_0_on_ctrl_c(tmp_path: Path) -> None:
    out, err = tmp_path / "demo.stdout", tmp_path / "demo.stderr"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "demo"],
            env=demo_env(), cwd=tmp_path, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while "Budget" not in out.read_text("utf-8", errors="replace"):
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, "no alert within 30 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stdout, stderr = out.read_text(), err.read_text()
    assert "Traceback" not in stdout + stderr
    assert "KeyboardInterrupt" not in stderr
    assert stdout.splitlines()[-1] == "demo stopped"
