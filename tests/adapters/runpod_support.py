"""Helpers for the RunPod adapter tests: adapters pointed at the simulator.

The simulator serves v1 under ``/v1``, v2 under ``/v2`` and GraphQL at
``/graphql`` on one port; its scenarios and fixtures live in
``tests/support/simulator.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import stamina

from daemon.adapters.runpod import GraphQLBalance, make_balance_api
from daemon.adapters.runpod.transport import Adapter
from daemon.simulator import Simulator
from tests.support.simulator import (  # noqa: F401 - fixtures and helpers re-exported
    FAST,
    FULL_SCENARIO,
    PINNED_NOW,
    SMALL_SCENARIO,
    TEST_KEY,
    full_simulator,
    running_simulator,
    simulator,
)
from tests.support.simulator import fast_api as _fast_api

VERSIONS = ("v1", "v2")

#: the same call's path on the wire, per version
PODS = {"v1": "/v1/pods", "v2": "/v2/pods"}
BILLING_PODS = {"v1": "/v1/billing/pods", "v2": "/v2/billing/pods"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def base_url(sim: Simulator, version: str) -> str:
    return sim.base_url_for(version)


def fast_api(sim: Simulator, version: str = "v1", **kwargs: Any) -> Any:
    """``tests.support.simulator.fast_api``; these tests were written for v1 first."""
    return _fast_api(sim, version, **kwargs)


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
