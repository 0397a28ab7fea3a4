"""Helpers for the RunPod adapter tests: adapters pointed at the simulator.

The simulator serves v1 under ``/v1``; v2 adapters talk to ``/v2`` on the same
port. Faults of kind status/rate_limit/html/garbage answer before routing, so
v2 behaviour that needs only an answer (errors, injected bodies) is testable
before the simulator routes v2 itself; tests that need v2 routes call
:func:`need_v2_routes`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import stamina

from daemon.adapters.runpod import GraphQLBalance, make_api, make_balance_api
from daemon.adapters.runpod.transport import Adapter
from daemon.simulator import FakeClock, Simulator

VERSIONS = ("v1", "v2")
PINNED_NOW = datetime(2026, 11, 24, 14, 5, 12, tzinfo=UTC)
TEST_KEY = "test-key"

# tests/support/simulator.SMALL_SCENARIO (that module still imports the removed
# RunPodClient, so it cannot be imported here until the integrator updates it)
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


@contextmanager
def running_simulator(api_key: str = TEST_KEY) -> Iterator[Simulator]:
    """SMALL_SCENARIO on loopback with a FakeClock at PINNED_NOW; stopped on exit."""
    with Simulator(SMALL_SCENARIO, api_key=api_key, clock=FakeClock(PINNED_NOW)) as sim:
        yield sim


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running_simulator() as sim:
        yield sim
FAST: dict[str, Any] = {"timeout": 2.0, "deadline": 5.0, "wait_initial": 0.01,
                        "wait_max": 0.05, "wait_jitter": 0.01, "retry_after_cap": 2.0}

#: the same call's path on the wire, per version
PODS = {"v1": "/v1/pods", "v2": "/v2/pods"}
BILLING_PODS = {"v1": "/v1/billing/pods", "v2": "/v2/billing/pods"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def base_url(sim: Simulator, version: str) -> str:
    return sim.base_url.rsplit("/", 1)[0] + "/" + version


def fast_api(sim: Simulator, version: str = "v1", *, api_key: str | None = None,
             **kwargs: Any) -> Any:
    """A RunPod adapter for ``sim`` whose retries wait milliseconds, not seconds."""
    opts = {**FAST, **kwargs}
    key = sim.api_key if api_key is None else api_key
    return make_api(version, key, base_url=base_url(sim, version), **opts)  # type: ignore[arg-type]


def fast_balance(sim: Simulator, *, api_key: str | None = None, **kwargs: Any) -> GraphQLBalance:
    opts = {**FAST, **kwargs}
    url = sim.base_url.rsplit("/", 1)[0] + "/graphql"
    return make_balance_api(sim.api_key if api_key is None else api_key, url=url, **opts)


def has_v2_routes(sim: Simulator) -> bool:
    """True once the simulator answers ``GET /v2/pods`` itself."""
    r = httpx.get(base_url(sim, "v2") + "/pods",
                  headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=5)
    sim.requests.clear()
    return r.status_code == 200


def need_v2_routes(sim: Simulator) -> None:
    if not has_v2_routes(sim):
        pytest.skip("the simulator does not route v2 yet (branch sim)")


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
