"""``check`` against either RunPod API version, and what a retired API looks like.

``check`` runs in-process through ``daemon.app.commands.check`` (the code
``runpod-budget check`` runs) against the simulator on real time, with a
config file on disk, ``RUNPOD_API_BASE_URL`` pointing at the simulator and a
SQLite state under ``tmp_path``. Contract "RunPod API versions".
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.app.commands import check
from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    HOOK,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    hook_ids,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver
from tests.support.simulator import TEST_KEY, running_simulator

# A pod at 100 $/h for 30 hours: a 24 h rolling budget of 1000 USD is over 100 %.
BURNING: dict[str, Any] = {
    "pods": [
        {"id": "pod-burn", "name": "train-burn", "gpu_type": "NVIDIA H100 80GB HBM3",
         "cost_per_hr": 100.0, "running": [["-30h", None]]}
    ]
}


def write_config(path: Path, rx: Receiver, api: dict[str, Any] | None) -> Path:
    config: dict[str, Any] = {
        "version": 1,
        "notifiers": {"hook": {"type": "webhook", "url": rx.url + HOOK, "timeout": 5}},
        "defaults": {"notify": ["hook"]},
        "budgets": [{"name": "rolling", "window": "24h", "limit": 1000, "thresholds": [100]}],
    }
    if api is not None:
        config["api"] = api
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_check(cfg: Path, sim: Simulator, version: str, tmp_path: Path) -> tuple[int, str]:
    env = {
        "RUNPOD_API_KEY": TEST_KEY,
        "RUNPOD_API_BASE_URL": sim.base_url_for(version),
        "STATE_DIRECTORY": str(tmp_path / "state"),
    }
    out = io.StringIO()
    code = check(cfg, env, dry_run=False, out=out)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("version", "api"),
    [
        pytest.param("v2", None, id="v2-without-an-api-section"),
        pytest.param("v1", {"version": "v1"}, id="v1-config-against-v1"),
    ],
)
def test_check_speaks_the_configured_version(
    rx: Receiver, tmp_path: Path, version: str, api: dict[str, Any] | None
) -> None:
    with running_simulator(BURNING, clock=lambda: datetime.now(UTC)) as sim:
        cfg = write_config(tmp_path / "budgets.yaml", rx, api)
        code, out = run_check(cfg, sim, version, tmp_path)
        paths = {r.path for r in sim.requests}
    assert code == 0, out
    assert f"RunPod API {version} at " in out
    assert "billing API unusable" not in out
    # every call went to the configured version, none to the other one
    assert paths and all(p.startswith(f"/{version}/") for p in paths), paths
    (alert,) = payloads(rx)
    assert alert["kind"] == "threshold" and alert["budget"] == "rolling"
    assert alert["spend_usd"] >= 1000.0


def test_a_retired_v1_gives_one_clear_message_and_exit_1(
    rx: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_simulator(BURNING, clock=lambda: datetime.now(UTC)) as sim:
        sim.retire("v1")
        cfg = write_config(tmp_path / "budgets.yaml", rx, {"version": "v1"})
        code, out = run_check(cfg, sim, "v1", tmp_path)
        gone = [r for r in sim.requests if r.status == 410]
    assert code == 1  # the contract's "billing API unusable after retries"
    (line,) = [x for x in out.splitlines() if x.startswith("billing API unusable")]
    assert "RunPod has retired API v1" in line and "api.version: v2" in line
    # said once: the health notice that repeats it is named by its id only
    assert out.count("RunPod has retired API v1") == 1, out
    assert "Traceback" not in out + capsys.readouterr().err
    assert len(gone) == 1  # a 410 is not retried, and the other calls wait a cycle
    assert [p["kind"] for p in payloads(rx)] == ["health"]  # permanent: told at once


def test_a_retired_graphql_gives_one_balance_health_notice_and_no_failed_cycle(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    config = make_config(
        rx, [day_budget(thresholds=[50, 80])], balance={"below_usd": [10]},
        health={"after": "10m"},
    )
    d = Daemon(growing, config, sqlite_url(tmp_path))
    growing.retire("graphql")
    try:
        with capture_logs() as logs:
            for k in range(6):
                d.clock.set(T0 + 4 * H + 30 * M + k * 20 * M)
                result = d.cycle()
                assert result.billing_ok, result.fetch_errors
                assert result.delivery.ok, result.delivery.failed
    finally:
        d.close()
    (notice,) = [p for p in payloads(rx) if p["kind"] == "health"]
    assert notice["source"] == "balance" and notice["state"] == "unusable"
    assert notice["id"] == "default:health:balance:unusable:2026-11-24T04:30:00Z"
    assert "GraphQL" in notice["last_error"] and "410" in notice["last_error"]
    # every other check kept running: the 50 % threshold went out at 05:00Z
    assert hook_ids(rx, "threshold") == ["default:daily:all:2026-11-24T00:00:00Z:threshold:50"]
    assert not [x for x in logs if x.get("log_level") == "critical"]
