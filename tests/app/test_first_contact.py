"""What a new user meets in the first minutes: a retired API, a wrong base URL,
a busy port, a second daemon, a poll interval without a unit, and what
``check`` and ``status`` print. Every command runs as a subprocess against the
simulator (real clock, loopback)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.simulator import Simulator
from tests.app.test_cli import KEY, cli_env, free_port, run_cli

pytestmark = pytest.mark.slow

CONSOLE = """\
version: 1
{api}timezone: Europe/Berlin
notifiers:
  con: {{type: console}}
defaults: {{notify: [con]}}
budgets:
  - {{name: all-24h, window: 24h, limit: 1, thresholds: [100]}}
{extra}"""

# the demo scenario's dev-notebook-idle has every GPU at 0 % and runs for 5 h
GUARDS = """\
guards:
  - name: idle-dev
    idle: {gpu_util_below: 5, for: 10s}
    match: {pod_name: "dev-*"}
    stop: {dry_run: true}
  - name: dev-ttl
    uptime_over: 4h
    match: {pod_name: "dev-*"}
balance:
  below_usd: [50, 25]
"""
#: v1 reports no GPU utilisation: no idle guard there
GUARDS_V1 = GUARDS.replace(
    GUARDS[GUARDS.index("  - name: idle-dev") : GUARDS.index("  - name: dev-ttl")], ""
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("demo", api_key=KEY) as s:
        yield s


def console_config(tmp_path: Path, *, version: str = "v2", extra: str = "") -> Path:
    api = "" if version == "v2" else f"api: {{version: {version}}}\n"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONSOLE.format(api=api, extra=extra))
    return cfg


def events(stderr: str, name: str | None = None) -> list[dict[str, Any]]:
    out = [json.loads(ln) for ln in stderr.splitlines() if ln.startswith("{")]
    return [e for e in out if name is None or e.get("event") == name]


def full_env(tmp_path: Path, sim: Simulator, version: str = "v2") -> dict[str, str]:
    return cli_env(tmp_path, sim, version, RUNPOD_GRAPHQL_URL=sim.graphql_url)


# --------------------------------------------------------------------------- check


def test_a_retired_v1_says_so_once_and_how_to_switch(tmp_path: Path, sim: Simulator) -> None:
    sim.retire("v1")
    cfg = console_config(tmp_path, version="v1")
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, "v1"))
    assert p.returncode == 1
    said = [ln for ln in p.stdout.splitlines() if "retired" in ln]
    assert len(said) == 1, p.stdout
    assert "v1" in said[0] and "api.version: v2" in said[0]
    assert len(events(p.stderr, "billing.fetch_failed")) == 1
    assert [e["attempts"] for e in events(p.stderr, "runpod.failed")] == [1]  # 410 is not retried


def test_connection_refused_names_the_host_and_gives_up_after_few_attempts(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    base = f"http://127.0.0.1:{port}/v2"
    cfg = console_config(tmp_path)
    for command in ("check", "status"):
        p = run_cli(command, "-c", str(cfg), env=cli_env(tmp_path, RUNPOD_API_BASE_URL=base))
        assert p.returncode == 1, (command, p.stdout)
        first, *rest = p.stdout.splitlines()
        assert first == f"RunPod API v2 at {base}"
        err = next(ln for ln in rest if ln.startswith("billing API unusable"))
        assert f"127.0.0.1:{port}" in err and "connection refused" in err
        assert KEY not in p.stdout + p.stderr
        assert all(e["attempts"] <= 3 for e in events(p.stderr, "runpod.failed"))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_check_names_its_api_and_prints_each_alert_once_in_local_time(
    tmp_path: Path, sim: Simulator, version: str
) -> None:
    cfg = console_config(tmp_path, version=version)
    p = run_cli("check", "-c", str(cfg), env=cli_env(tmp_path, sim, version))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"RunPod API {version} at {sim.base_url_for(version)}"
    assert sum("Budget all-24h over its limit" in ln for ln in lines) == 1, p.stdout
    queued = [ln for ln in lines if ln.startswith("queued for con:")]
    assert len(queued) == 1 and queued[0].endswith(":threshold:100")  # the id, not the text again
    # the 24h window's ends are printed in Berlin time
    assert re.search(r"\d\d:00 → .* \d\d:00 CET", p.stdout), p.stdout
    assert " UTC" not in p.stdout


def test_dry_run_enforcement_says_why_and_retries_log_once(tmp_path: Path, sim: Simulator) -> None:
    sim.fail("/v2/billing", status=503, times=1)  # one retry on the first billing call
    cfg = console_config(tmp_path, extra=GUARDS)
    per_pod = (
        "  - name: per-pod\n    per: pod\n    window: 1h\n    limit: 0.01\n"
        "    match: {pod_name: 'train-*'}\n    enforce: {at: 100, dry_run: true}\n"
    )
    cfg.write_text(cfg.read_text().replace("budgets:\n", "budgets:\n" + per_pod))
    env = full_env(tmp_path, sim)
    p = run_cli("--log-level", "debug", "check", "-c", str(cfg), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "not stopping nothing" not in p.stdout
    would = events(p.stderr, "enforce.would_stop")
    assert would, p.stderr
    assert all(e.get("reason") for e in would), would
    retries = events(p.stderr, "runpod.retry")
    assert len(retries) == 1, retries
    assert not [e for e in events(p.stderr) if e.get("callable") == "<context block>"]


# --------------------------------------------------------------------------- status


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_status_shows_balance_idle_uptime_and_spend_by_family_in_local_time(
    tmp_path: Path, sim: Simulator, version: str
) -> None:
    cfg = console_config(tmp_path, version=version, extra=GUARDS if version == "v2" else GUARDS_V1)
    env = full_env(tmp_path, sim, version)
    assert run_cli("check", "-c", str(cfg), env=env).returncode == 0  # the idle book is stored
    p = run_cli("status", "-c", str(cfg), env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.splitlines()[0] == f"RunPod API {version} at {sim.base_url_for(version)}"
    balance = next(ln for ln in out.splitlines() if ln.startswith("balance default:"))
    assert re.search(r"\$\d+\.\d\d · burn \$[\d,]+\.\d\d/h · runway \d", balance), balance
    idle = [ln for ln in out.splitlines() if "│ idle" in ln]
    if version == "v2":
        assert len(idle) == 1 and "dev-notebook-idle" in idle[0] and "CET" in idle[0], out
    up = [ln for ln in out.splitlines() if "(dev-ttl)" in ln]
    assert len(up) == 1 and "dev-notebook-idle" in up[0] and "5h" in up[0], out
    assert "today" in out and "week" in out and "month" in out
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") == 5}
    for label in ("total", "pods", "serverless", "storage", "NVIDIA H100 PCIe"):
        assert label in rows, (label, out)
    assert any("demoep01sdxl" in k for k in rows), out  # serverless by endpoint (v2: named)
    assert " UTC" not in out


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_status_says_stale_when_billing_is_down(
    tmp_path: Path, sim: Simulator, version: str
) -> None:
    sim.fail(f"/{version}/billing", status=500, times=1000)
    cfg = console_config(tmp_path, version=version)
    from tests.app.test_cli import FAST_RETRIES

    p = subprocess.run(
        [sys.executable, "-c", FAST_RETRIES, "status", "-c", str(cfg)],
        check=False, env=cli_env(tmp_path, sim, version), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert p.returncode == 1
    assert "Traceback" not in p.stdout + p.stderr
    stale = [ln for ln in p.stdout.splitlines() if ln.startswith("STALE:")]
    assert len(stale) == 1 and "HTTP 500" in stale[0], p.stdout


# --------------------------------------------------------------------------- config, run


def test_poll_interval_without_a_unit_says_how_to_write_it(tmp_path: Path) -> None:
    cfg = console_config(tmp_path)
    cfg.write_text(cfg.read_text() + "poll_interval: 300\n")
    p = run_cli("validate", "-c", str(cfg), env=cli_env(tmp_path))
    assert p.returncode == 2
    line = next(ln for ln in p.stderr.splitlines() if "poll_interval" in ln)
    assert re.search(r'"?5m"?', line), line


def _run_daemon(cfg: Path, env: dict[str, str], err: Path) -> subprocess.Popen[bytes]:
    with err.open("wb") as e:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
            env=env, stdout=subprocess.DEVNULL, stderr=e, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def test_a_busy_metrics_port_is_one_clear_line_and_exit_4(tmp_path: Path, sim: Simulator) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        addr = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg = console_config(tmp_path, extra=f"http: {{listen: '{addr}'}}\n")
        p = run_cli("run", "-c", str(cfg), env=cli_env(tmp_path, sim))
    assert p.returncode == 4, p.stderr
    said = [ln for ln in p.stderr.splitlines() if addr in ln]
    assert len(said) == 1 and "http.listen" in said[0], p.stderr


def test_a_second_daemon_on_the_same_sqlite_file_warns(tmp_path: Path, sim: Simulator) -> None:
    cfg = console_config(tmp_path, extra="poll_interval: 1m\nhttp: {listen: '127.0.0.1:0'}\n")
    env = cli_env(tmp_path, sim)
    procs = [_run_daemon(cfg, env, tmp_path / f"d{i}.err") for i in (1, 2)]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = [events((tmp_path / f"d{i}.err").read_text()) for i in (1, 2)]
            if all(any(e["event"] == "daemon.started" for e in lg) for lg in logs):
                break
            time.sleep(0.1)
        shared = [e for lg in logs for e in lg if e["event"] == "state.shared"]
        assert len(shared) == 1, logs
        assert shared[0]["path"].endswith("state.db")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(timeout=30) for proc in procs] == [0, 0]
