"""The GraphQL balance adapter against the simulator's ``/graphql``."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.adapters.runpod import make_balance_api
from daemon.core.model import Balance
from daemon.core.ports import ApiError, BalanceApi
from daemon.simulator import Simulator
from tests.adapters.runpod_support import (
    fast_balance,
    full_simulator,
    inject,
    no_waits,
    running_simulator,
)

__all__ = ["full_simulator", "no_waits"]  # fixtures, imported for pytest


def test_balance_and_burn(full_simulator: Simulator) -> None:
    api: BalanceApi = fast_balance(full_simulator)
    got = api.balance()
    assert got == Balance(balance=50.0, spend_per_hr=pytest.approx(57.46), spend_limit=80.0)
    sent = full_simulator.requests[-1]
    assert (sent.method, sent.path, sent.status) == ("POST", "/graphql", 200)
    full_simulator.top_up(25)
    assert api.balance().balance == pytest.approx(75.0)


def test_graphql_errors_are_bad_body_and_not_retried(full_simulator: Simulator) -> None:
    inject(full_simulator, "/graphql", {"errors": [{"message": "Something   went wrong"}]})
    with pytest.raises(ApiError) as e:
        fast_balance(full_simulator).balance()
    assert (e.value.reason, e.value.permanent) == ("bad_body", False)
    assert "returned GraphQL errors: Something went wrong" in str(e.value)
    assert len(full_simulator.requests) == 1


@pytest.mark.parametrize(("myself", "expected"), [
    ({"currentSpendPerHr": 1.0}, "field 'clientBalance': missing"),
    ({"clientBalance": "50.0", "currentSpendPerHr": 1.0},
     "field 'clientBalance': an amount must be a JSON number, got a string '50.0'"),
    ({"clientBalance": 50.0, "currentSpendPerHr": True},
     "field 'currentSpendPerHr': an amount must be a JSON number, got a boolean"),
    ({"clientBalance": 50.0, "currentSpendPerHr": -3.0},
     "field 'currentSpendPerHr': implausible value -3.0"),
    (None, "returned no 'myself' object"),
])
def test_missing_or_non_numeric_fields_are_bad_record(
    full_simulator: Simulator, myself: Any, expected: str
) -> None:
    inject(full_simulator, "/graphql", {"data": {"myself": myself}})
    with pytest.raises(ApiError) as e:
        fast_balance(full_simulator).balance()
    assert e.value.reason == "bad_record"
    assert expected in str(e.value)


@pytest.mark.usefixtures("no_waits")
def test_garbage_is_bad_body_after_retries(full_simulator: Simulator) -> None:
    full_simulator.fail("/graphql", "garbage", times=100)
    with pytest.raises(ApiError) as e:
        fast_balance(full_simulator).balance()
    assert (e.value.reason, e.value.status) == ("bad_body", 200)
    assert len(full_simulator.requests) == 3


def test_410_says_balance_alerts_are_unavailable() -> None:
    with running_simulator(retired=("graphql",)) as sim, pytest.raises(ApiError) as e:
        fast_balance(sim).balance()
    assert (e.value.reason, e.value.permanent, e.value.status) == ("gone", True, 410)
    assert str(e.value).startswith("RunPod has retired its GraphQL API (HTTP 410 Gone): "
                                   "balance alerts are unavailable")


def test_wrong_key_is_auth(full_simulator: Simulator) -> None:
    with pytest.raises(ApiError) as e:
        fast_balance(full_simulator, api_key="nope").balance()
    assert (e.value.reason, e.value.permanent) == ("auth", True)


def test_url_from_env_and_repr(monkeypatch: pytest.MonkeyPatch, full_simulator: Simulator) -> None:
    monkeypatch.setenv("RUNPOD_GRAPHQL_URL", full_simulator.graphql_url)
    api = make_balance_api("sk_secret_123")
    assert api.base_url == full_simulator.graphql_url
    assert "sk_secret_123" not in repr(api) + repr(vars(api))
    monkeypatch.delenv("RUNPOD_GRAPHQL_URL")
    assert make_balance_api("k").base_url == "https://api.runpod.io/graphql"
