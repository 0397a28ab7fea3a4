"""GET /pods is sent while billing is fetched, once the account has answered,
and its answer is used only when the account's billing is usable this cycle."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.adapters.store import open_store
from daemon.config.models import Config
from daemon.core.model import Pod, PodStatus, Resource, SpendRecord
from daemon.core.ports import ApiError
from daemon.pipeline.cycle import Deps, stage_fetch

NOW = datetime(2026, 11, 24, 14, 5, tzinfo=UTC)
CONFIG = Config.model_validate(
    {"version": 1, "notifiers": {"o": {"type": "console"}}, "defaults": {"notify": ["o"]},
     "budgets": [{"name": "acct", "window": "day", "limit": 10},
                 {"name": "pods", "window": "day", "per": "pod", "limit": 10}]}
)


class Api:
    """An account whose ``failing`` billing families answer 503; a unit test
    of the fetch stage's order of calls, so a fake stands in for RunPod."""

    version = "v2"
    base_url = "http://fake"
    families = frozenset({"account", "pods"})

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.calls: list[str] = []

    def billing(self, family: str, *, bucket: str, start: datetime, end: datetime
                ) -> list[SpendRecord]:
        self.calls.append(f"billing {family}")
        if family in self.failing:
            raise ApiError("503 from RunPod", permanent=False, reason="server", status=503)
        return []

    def list_pods(self) -> list[Pod]:
        self.calls.append("pods")
        return [Pod("p1", "trainer", PodStatus.RUNNING, 2.0, "NVIDIA L4", 1)]

    def list_resources(self, family: str) -> list[Resource]:
        return []

    def stop_pod(self, pod_id: str) -> None:
        raise AssertionError("not used")


def fetch(api: Api):  # type: ignore[no-untyped-def]
    store = open_store("sqlite://")
    try:
        deps = Deps(CONFIG, store, {"default": api}, {}, lambda: NOW)
        return stage_fetch(deps, store, NOW), store.pod_registry("default")
    finally:
        store.close()


def test_pods_are_listed_after_the_first_answer_and_remembered() -> None:
    api = Api()
    fetched, registry = fetch(api)
    assert api.calls.index("pods") > api.calls.index("billing account")
    assert sorted(api.calls) == ["billing account", "billing pods", "pods"]
    assert [p.id for p in fetched.pods["default"] or []] == ["p1"]
    assert set(registry) == {"p1"}


def test_an_account_that_does_not_answer_is_not_listed() -> None:
    api = Api(failing=frozenset({"account", "pods"}))
    fetched, registry = fetch(api)
    assert api.calls == ["billing account"]  # the other calls wait for the next cycle
    assert fetched.pods == {"default": None} and fetched.pod_errors == {}
    assert registry == {}


def test_a_listing_sent_before_billing_failed_is_not_used() -> None:
    api = Api(failing=frozenset({"pods"}))
    fetched, registry = fetch(api)
    assert "pods" in api.calls  # sent after the account's first answer
    assert fetched.pods == {"default": None} and fetched.pod_errors == {}
    assert set(fetched.errors) == {"default"}
    assert registry == {}  # an outage reads the same whether the listing got through or not
