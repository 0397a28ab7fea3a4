"""Helpers for the RunPod adapter tests: adapters pointed at the simulator.

The simulator serves v1 under ``/v1``, v2 under ``/v2`` and GraphQL at
``/graphql`` on one port. The scenarios are copies of those in
``tests/support/simulator.py``, which still imports main's removed
``RunPodClient`` and cannot be imported until the integrator updates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import stamina

from daemon.adapters.runpod import GraphQLBalance, make_api, make_balance_api
from daemon.adapters.runpod.transport import Adapter
from daemon.simulator import FakeClock, Simulator

VERSIONS = ("v1", "v2")
PINNED_NOW = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)
TEST_KEY = "test-key"

SMALL_SCENARIO: dict[str, Any] = {
    "pods": [
        {"id": "pod-a100-train", "name": "train-llama", "gpu_type": "NVIDIA A100 80GB PCIe",
         "gpu_count": 1, "cost_per_hr": 1.64, "running": [["2026-11-24T08:00:00Z", None]]},
        {"id": "pod-h100-runaway", "name": "train-sweep", "gpu_type": "NVIDIA H100 80GB HBM3",
         "gpu_count": 2, "cost_per_hr": 5.98, "running": [["2026-11-23T22:30:00Z", None]]},
        {"id": "pod-a4500-nb", "name": "notebook", "gpu_type": "NVIDIA  RTX A4500",
         "gpu_count": 1, "cost_per_hr": 0.25,
         "running": [["2026-11-20T10:00:00Z", "2026-11-22T10:00:00Z"]]},
    ],
    "volumes": [
        {"id": "vol-data", "name": "data", "size_gb": 200, "cost_per_hr": 0.05,
         "since": "2026-11-01T00:00:00Z"},
    ],
}


FULL_SCENARIO: dict[str, Any] = {
    "pods": [
        *SMALL_SCENARIO["pods"],
        {"id": "pod-cpu-etl", "name": "etl", "cost_per_hr": 0.12,
         "running": [["2026-11-24T12:00:00Z", None]], "vcpu_count": 4, "memory_gb": 16},
        {"id": "pod-l4-locked", "name": "prod-serve", "gpu_type": "NVIDIA L4", "gpu_count": 2,
         "cost_per_hr": 0.43, "locked": True,
         "running": [["2026-11-24T10:00:00Z", "2026-11-24T13:00:00Z"],
                     ["2026-11-24T13:00:00Z", None]],
         "util": [["2026-11-24T10:00:00Z", 80], ["2026-11-24T13:30:00Z", 0]]},
        {"id": "pod-gone", "name": "old", "gpu_type": "NVIDIA L4", "cost_per_hr": 1.0,
         "status": "TERMINATED",
         "running": [["2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z"]]},
        {"id": "pod-hp-vol", "name": "train-hp", "gpu_type": "NVIDIA H100 80GB HBM3",
         "cost_per_hr": 2.99, "network_volume": "vol-fast",
         "running": [["2026-11-24T09:00:00Z", "2026-11-24T11:00:00Z"]]},
    ],
    "volumes": [
        *SMALL_SCENARIO["volumes"],
        {"id": "vol-fast", "name": "fast", "size_gb": 500, "cost_per_hr": 0.14,
         "type": "HIGH_PERFORMANCE", "since": "2026-11-20T00:00:00Z"},
    ],
    "serverless": [
        {"id": "ep-sdxl", "name": "sdxl", "cost_per_hr": 0.9, "since": "2026-11-24T00:00:00Z"},
        {"id": "ep-cpu", "name": "cpu-jobs", "gpu_type": None,
         "spend": [["2026-11-23T06:00:00Z", "2026-11-23T08:00:00Z", 2.0]]},
    ],
    "clusters": [
        {"id": "clu-train", "name": "train", "nodes": 2, "cost_per_hr": 48,
         "running": [["2026-11-24T12:00:00Z", None]]},
    ],
    "public_endpoints": [{"cost_per_hr": 0.2, "since": "2026-11-24T00:00:00Z"}],
    "balance": {"start": 50.0, "spend_limit": 80},
}


@contextmanager
def running_simulator(
    scenario: dict[str, Any] | None = None, api_key: str = TEST_KEY, **kwargs: Any
) -> Iterator[Simulator]:
    """``scenario`` (default SMALL_SCENARIO) on loopback with a FakeClock at
    PINNED_NOW; ``kwargs`` go to Simulator (``rate_limit``, ``retired``)."""
    with Simulator(SMALL_SCENARIO if scenario is None else scenario, api_key=api_key,
                   clock=FakeClock(PINNED_NOW), **kwargs) as sim:
        yield sim


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def full_simulator() -> Iterator[Simulator]:
    with running_simulator(FULL_SCENARIO) as sim:
        yield sim
FAST: dict[str, Any] = {"timeout": 2.0, "deadline": 5.0, "wait_initial": 0.01,
                        "wait_max": 0.05, "wait_jitter": 0.01, "retry_after_cap": 2.0}

#: the same call's path on the wire, per version
PODS = {"v1": "/v1/pods", "v2": "/v2/pods"}
BILLING_PODS = {"v1": "/v1/billing/pods", "v2": "/v2/billing/pods"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def base_url(sim: Simulator, version: str) -> str:
    return sim.base_url_for(version)


def fast_api(sim: Simulator, version: str = "v1", *, api_key: str | None = None,
             **kwargs: Any) -> Any:
    """A RunPod adapter for ``sim`` whose retries wait milliseconds, not seconds."""
    opts = {**FAST, **kwargs}
    key = sim.api_key if api_key is None else api_key
    return make_api(version, key, base_url=base_url(sim, version), **opts)  # type: ignore[arg-type]


def fast_balance(sim: Simulator, *, api_key: str | None = None, **kwargs: Any) -> GraphQLBalance:
    opts = {**FAST, **kwargs}
    return make_balance_api(sim.api_key if api_key is None else api_key, url=sim.graphql_url,
                            **opts)


def inject(sim: Simulator, path: str, doc: Any, times: int = 100) -> None:
    """Answer ``path`` with ``doc`` as a 200 JSON body (NaN/Infinity allowed)."""
    sim.fail(path, status=200, body=doc if isinstance(doc, str) else json.dumps(doc),
             times=times)


def calls(sim: Simulator, path: str) -> int:
    return sum(1 for r in sim.requests if r.path == path)


def v1_rec(t: str = "2026-11-24T10:00:00Z", amount: Any = 1.5, pod: str = "p1") -> dict[str, Any]:
    return {"amount": amount, "time": t, "podId": pod}


def v2_rec(t: str = "2026-11-24T10:00:00Z", end: str = "2026-11-24T11:00:00Z",
           amount: Any = 1.5, pod: str = "p1") -> dict[str, Any]:
    return {"startTime": t, "endTime": end, "podId": pod, "totalAmount": amount,
            "gpuAmount": amount, "cpuAmount": 0, "diskAmount": 0}


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"records": records, "metadata": {"recordCount": len(records)}}


def pod_billing_body(version: str, records: list[dict[str, Any]]) -> Any:
    return records if version == "v1" else v2_body(records)


@pytest.fixture
def no_waits() -> Iterator[None]:
    """stamina's testing mode: retries happen without sleeping (attempt limits kept)."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


def check_port(api: Adapter) -> None:
    assert api.version in VERSIONS
    assert "://" in api.base_url
