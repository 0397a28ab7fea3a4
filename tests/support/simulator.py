"""Test helpers around the RunPod simulator (real HTTP on 127.0.0.1).

Use the context manager anywhere::

    with running_simulator() as sim:          # FakeClock pinned at PINNED_NOW
        api = fast_api(sim)          # v2 (fast_api(sim, "v1") for v1)
        sim.clock.advance(timedelta(minutes=5))

or import the fixture into a test module (pytest finds it by name)::

    from tests.support.simulator import simulator  # noqa: F401

    def test_x(simulator): ...                 # simulator.clock is the FakeClock

``SMALL_SCENARIO`` at ``PINNED_NOW`` (2026-11-24T14:05:12Z):

=================  ========================  ====  ======  ===========================
pod id             GPU type                  GPUs  $/h     running
=================  ========================  ====  ======  ===========================
pod-a100-train     NVIDIA A100 80GB PCIe     1     1.64    since 2026-11-24T08:00Z
pod-h100-runaway   NVIDIA H100 80GB HBM3     2     5.98    since 2026-11-23T22:30Z
pod-a4500-nb       NVIDIA  RTX A4500 (2 sp)  1     0.25    2026-11-20T10:00Z-11-22T10:00Z
=================  ========================  ====  ======  ===========================

plus network volume ``vol-data`` at $0.05/h since 2026-11-01T00:00Z.

``FULL_SCENARIO`` adds one of every other kind of resource (for v2 and GraphQL):

=================  ===========================================================
id                 what
=================  ===========================================================
pod-cpu-etl        CPU pod, $0.12/h, running since 2026-11-24T12:00Z
pod-l4-locked      locked L4 pod, $0.43/h, running since 2026-11-24T10:00Z,
                   restarted at 13:00Z (two runs), GPU util 0 since 13:30Z
pod-gone           terminated pod, $1/h, ran 2026-11-23T10:00Z-12:00Z
pod-hp-vol         H100 pod on network volume ``vol-fast`` (stopped)
ep-sdxl            serverless endpoint, $0.90/h since 2026-11-24T00:00Z
ep-cpu             CPU serverless endpoint: $2/h 2026-11-23T06:00Z-08:00Z
vol-fast           HIGH_PERFORMANCE volume, $0.14/h since 2026-11-20T00:00Z
clu-train          cluster of 2 nodes, $48/h since 2026-11-24T12:00Z
public endpoints   $0.20/h since 2026-11-24T00:00Z
balance            starts at $50.00 at PINNED_NOW
=================  ===========================================================
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.adapters.runpod import make_api
from daemon.adapters.runpod.v1 import RunPodV1
from daemon.adapters.runpod.v2 import RunPodV2
from daemon.simulator import FakeClock, Scenario, Simulator

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
    scenario: Scenario | str | Path | dict[str, Any] | None = None,
    clock: Any = None,
    api_key: str = TEST_KEY,
    **kwargs: Any,
) -> Iterator[Simulator]:
    """A started Simulator (``.base_url`` set); stopped on exit.

    ``scenario`` defaults to ``SMALL_SCENARIO``; ``clock`` to a FakeClock pinned
    at ``PINNED_NOW`` (pass ``datetime.now`` style callables for real time);
    ``kwargs`` go to the constructor (``rate_limit=``, ``retired=``).
    """
    sim = Simulator(
        SMALL_SCENARIO if scenario is None else scenario,
        api_key=api_key,
        clock=FakeClock(PINNED_NOW) if clock is None else clock,
        **kwargs,
    )
    with sim:
        yield sim


#: adapter options whose retries wait milliseconds, not seconds
FAST: dict[str, Any] = {"timeout": 2.0, "deadline": 5.0, "wait_initial": 0.01,
                        "wait_max": 0.05, "wait_jitter": 0.01, "retry_after_cap": 2.0}


def fast_api(sim: Simulator, version: str = "v2", *, api_key: str | None = None,
             **kwargs: Any) -> RunPodV1 | RunPodV2:
    """A RunPod adapter of ``version`` for ``sim`` whose retries wait milliseconds.

    ``kwargs`` override the options (``timeout``, ``deadline``, ...).
    """
    key = sim.api_key if api_key is None else api_key
    return make_api(version, key, base_url=sim.base_url_for(version),  # type: ignore[arg-type]
                    **{**FAST, **kwargs})


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """SMALL_SCENARIO served on loopback; ``simulator.clock`` is a FakeClock at PINNED_NOW."""
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def full_simulator() -> Iterator[Simulator]:
    """FULL_SCENARIO served on loopback; ``.clock`` is a FakeClock at PINNED_NOW."""
    with running_simulator(FULL_SCENARIO) as sim:
        yield sim


class _Http:
    """``httpx.get/post/request`` with one TLS context loaded once: plain httpx
    loads the CA bundle on every call (~30 ms), which dominated these tests."""

    _tls = ssl.create_default_context()

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, url, verify=self._tls, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


http = _Http()


def v2_get(sim: Simulator, path: str, *, status: int = 200, **params: Any) -> Any:
    """GET ``path`` under ``/v2`` with the test key; asserts ``status``; returns the JSON."""
    r = http.get(sim.base_url_for("v2") + path, params=params,
                  headers={"Authorization": f"Bearer {sim.api_key}"})
    assert r.status_code == status, r.text
    return r.json()
