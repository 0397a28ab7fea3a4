"""What a budget counts, end to end (contract "What a budget counts"): the
pod registry keeps a gone pod's GPU type, an unscoped budget counts the
whole account, ``resources`` narrows it, ``per: endpoint`` and ``per:
volume`` give one instance each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.pipeline.digest import build_digest
from daemon.simulator import FakeClock, Simulator
from daemon.simulator import pods as podlib
from tests.pipeline.conftest import (
    DAY,
    T0,
    Daemon,
    H,
    day_budget,
    hook_ids,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver
from tests.support.simulator import running_simulator

# ---------------------------------------------------------------------------- registry

L4 = "NVIDIA L4"
SHORT_LIVED: dict[str, Any] = {
    "pods": [
        {"id": "pod-short", "name": "train-short", "gpu_type": L4, "cost_per_hr": 10.0,
         "running": [["2026-11-24T00:00:00Z", None]]},
    ]
}


def test_a_terminated_pod_still_counts_under_its_gpu_type(
    rx: Receiver, tmp_path: Path
) -> None:
    # v2 by design: billing has no GPU type, so the daemon remembers each pod's
    # gpu.id from GET /pods (contract "RunPod API versions", "GPU type of a pod's
    # spend"); a pod never seen counts as gpu_type "unknown".
    budget = day_budget("per-gpu", limit=50, thresholds=[50, 80], per="gpu_type")
    config = make_config(rx, [budget], digest={"cron": "0 9 * * *"})
    with running_simulator(SHORT_LIVED, clock=FakeClock(T0 + 2 * H)) as sim:
        d = Daemon(sim, config, sqlite_url(tmp_path / "seen"))
        fresh = Daemon(sim, config, sqlite_url(tmp_path / "fresh"))
        try:
            d.cycle()  # 20 USD (40 %): the pod is listed and remembered
            sim.clock.set(T0 + 4 * H)
            with sim.lock:  # terminated at 04:00Z after 40 USD: no longer listed
                podlib.apply(sim.pod("pod-short"), "terminate", sim.clock())
            sim.clock.set(T0 + 5 * H)
            assert "pod-short" not in {p.id for p in d.api.list_pods()}
            result = d.cycle()
            assert [a.id for a in result.alerts] == [
                f"default:per-gpu:gpu={L4}:{DAY}:threshold:80"]
            digest = build_digest(d.deps)
            assert digest is not None
            assert [g["label"] for g in digest.payload["top_gpu_types"]] == [L4]
            assert digest.payload["top_gpu_types"][0]["spend_usd"] == 40.0
            # and under its remembered name among the pods
            assert [p["label"] for p in digest.payload["top_pods"]] == [
                "train-short (pod-short)"]

            # a state that never saw the pod listed cannot know its GPU type
            assert [a.id for a in fresh.cycle().alerts] == [
                f"default:per-gpu:gpu=unknown:{DAY}:threshold:80"]
        finally:
            d.close()
            fresh.close()
    group = next(p["group"] for p in payloads(rx) if p["id"].startswith("default:per-gpu:gpu=NV"))
    assert group["gpu_type"] == L4


# ---------------------------------------------------------------------------- whole account

# At 06:00Z: pods 6 USD, serverless 42 (ep-a 36, ep-b 6), storage 18.6
# (vol-a 18, vol-b 0.6): 66.6 USD in all, 24.6 without serverless.
MIXED: dict[str, Any] = {
    "pods": [
        {"id": "pod-small", "name": "dev-small", "gpu_type": L4, "cost_per_hr": 1.0,
         "running": [["2026-11-24T00:00:00Z", None]]},
    ],
    "serverless": [
        {"id": "ep-a", "name": "sdxl", "cost_per_hr": 6.0, "since": "2026-11-24T00:00:00Z"},
        {"id": "ep-b", "name": "whisper", "cost_per_hr": 1.0, "since": "2026-11-24T00:00:00Z"},
    ],
    "volumes": [
        {"id": "vol-a", "name": "data", "size_gb": 1000, "cost_per_hr": 3.0,
         "since": "2026-11-24T00:00:00Z"},
        {"id": "vol-b", "name": "scratch", "size_gb": 10, "cost_per_hr": 0.1,
         "since": "2026-11-24T00:00:00Z"},
    ],
}


@pytest.fixture
def mixed() -> Any:
    with running_simulator(MIXED, clock=FakeClock(T0 + 6 * H)) as sim:
        yield sim


def scoped_budgets(version: str) -> list[dict[str, Any]]:
    budgets = [
        day_budget("account", limit=100, thresholds=[50]),
        day_budget("pods-only", limit=10, thresholds=[80], resources=["pods"]),
        day_budget("per-endpoint", limit=30, thresholds=[100], per="endpoint"),
    ]
    if version == "v2":  # v1 reports network volume spend per account only
        budgets.append(day_budget("per-volume", limit=15, thresholds=[100], per="volume"))
    return budgets


def test_scopes_count_what_the_contract_says(
    mixed: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    d = Daemon(mixed, make_config(rx, scoped_budgets(version), version=version),
               sqlite_url(tmp_path))
    try:
        result = d.cycle()
        assert result.billing_ok, result.fetch_errors
        spend = {(s.budget, s.group.key): round(s.spend, 2) for s in result.evaluation.statuses}
    finally:
        d.close()

    # the account budget counts serverless and storage too: 66.6 USD; without
    # serverless it would be 24.6, under its 50 % threshold
    assert spend[("account", "all")] == 66.6
    assert spend[("pods-only", "all")] == 6.0  # resources: [pods]
    assert spend[("per-endpoint", "endpoint=ep-a")] == 36.0
    assert spend[("per-endpoint", "endpoint=ep-b")] == 6.0
    expected = [
        f"default:account:all:{DAY}:threshold:50",
        f"default:per-endpoint:endpoint=ep-a:{DAY}:threshold:100",
    ]
    if version == "v2":
        assert spend[("per-volume", "volume=vol-a")] == 18.0
        expected.append(f"default:per-volume:volume=vol-a:{DAY}:threshold:100")
    assert sorted(hook_ids(rx)) == sorted(expected)  # pods-only: 60 %, under its 80 %

    by_budget = {p["budget"]: p for p in payloads(rx)}
    ep = by_budget["per-endpoint"]["group"]
    # names come from v2's GET /serverless; the v1 subset has no endpoint listing
    name = "sdxl" if version == "v2" else None
    assert (ep["endpoint_id"], ep["endpoint_name"], ep["pod_id"]) == ("ep-a", name, None)
    if version == "v2":
        vol = by_budget["per-volume"]["group"]
        assert (vol["volume_id"], vol["volume_name"], vol["endpoint_id"]) == (
            "vol-a", "data", None)
