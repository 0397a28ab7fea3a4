"""Shared harness for the pipeline tests: real parts only.

* the RunPod simulator over loopback with a ``FakeClock`` (the daemon gets the
  same clock through ``Deps.clock`` so both agree on "now");
* a real SQLite file under ``tmp_path`` (or the real PostgreSQL in a schema of
  its own, see ``pg_schema``);
* notifiers built from the config by ``build_notifiers``: a webhook to
  ``receiver.url + "/hook"`` and a Slack incoming webhook to
  ``receiver.url + "/services/T/B/X"``, both answered by the recording receiver.

The harness takes a RunPod API version (``"v1"`` or ``"v2"``): ``make_config``
writes ``api: {version: v1}`` for v1 and leaves the ``api`` section out for v2
(the contract's default), and the daemon talks to the simulator's ``/v1`` or
``/v2``. The ``version`` fixture parametrises a test over both.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from daemon.adapters.notifiers import build_notifiers, close_notifiers
from daemon.adapters.runpod import make_balance_api
from daemon.adapters.store import SqlStore, open_store
from daemon.config.loader import parse_config
from daemon.config.models import Config
from daemon.core.ports import BalanceApi, Notifier, RunPodApi
from daemon.pipeline.cycle import CycleResult, Deps, run_cycle
from daemon.pipeline.enforcer import AccountRouter, Enforcer
from daemon.simulator import FakeClock, Simulator
from tests.support.receiver import Receiver
from tests.support.simulator import FAST, TEST_KEY, fast_api, running_simulator

VERSIONS = ("v1", "v2")
HOOK = "/hook"
SLACK = "/services/T/B/X"
ENV = {"RUNPOD_API_KEY": TEST_KEY}

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"

# 2026-11-24 is a Tuesday; nothing runs before midnight in GROWING.
T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
DAY = "2026-11-24T00:00:00Z"  # T0's day start as alert ids and payloads spell it
H = timedelta(hours=1)
M = timedelta(minutes=1)

# One pod at 10 $/h from midnight UTC: a day budget of 100 USD reaches 50 % at
# 05:00Z, 80 % at 08:00Z and 100 % at 10:00Z.
GROWING: dict[str, Any] = {
    "pods": [
        {
            "id": "pod-grow",
            "name": "train-grow",
            "gpu_type": "NVIDIA A100 80GB PCIe",
            "gpu_count": 1,
            "cost_per_hr": 10.0,
            "running": [["2026-11-24T00:00:00Z", None]],
        }
    ]
}


def day_budget(name: str = "daily", limit: float = 100.0, **kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "name": name,
        "window": "day",
        "limit": limit,
        "thresholds": [50, 80, 100],
    }
    b.update(kw)
    return b


def make_config(
    rx: Receiver | str,
    budgets: list[dict[str, Any]],
    *,
    notify: tuple[str, ...] = ("hook", "ops"),
    notifiers: dict[str, Any] | None = None,
    version: str = "v2",
    **extra: Any,
) -> Config:
    """A validated config (through ``parse_config``, JSON being YAML). For
    ``version="v2"`` there is no ``api`` section at all: v2 is the default."""
    base = rx.url if isinstance(rx, Receiver) else rx
    data: dict[str, Any] = {
        "version": 1,
        "notifiers": notifiers
        if notifiers is not None
        else {
            "hook": {"type": "webhook", "url": base + HOOK, "timeout": 5},
            "ops": {"type": "slack", "webhook_url": base + SLACK, "timeout": 5},
        },
        "defaults": {"notify": list(notify)},
        "budgets": budgets,
    }
    if version != "v2":
        data["api"] = {"version": version}
    data.update(extra)
    return parse_config(json.dumps(data), file="test.yaml", env=ENV)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state/state.db"


class Daemon:
    """One daemon instance: its own store, notifier and RunPod adapter objects.

    The adapter speaks ``config.api.version`` to the simulator; with a
    ``balance`` section a GraphQL balance adapter is built too. ``restart()``
    throws store and notifiers away and builds new ones on the same state, as
    a restarted process would.
    """

    def __init__(
        self,
        sim: Simulator,
        config: Config,
        url: str,
        *,
        schema: str | None = None,
        slack_base_url: str | None = None,
        api: RunPodApi | None = None,
    ) -> None:
        self.sim = sim
        self.clock: FakeClock = sim.clock  # type: ignore[assignment]
        self.config = config
        self.version = config.api.version
        self.url = url
        self.schema = schema
        self.slack_base_url = slack_base_url
        # three attempts: enough to show retries, few enough to keep outages quick
        self.api: RunPodApi = api or fast_api(sim, self.version, max_attempts=3)
        self.balance_api: BalanceApi | None = (
            make_balance_api(sim.api_key, url=sim.graphql_url, **FAST)
            if config.balance is not None
            else None
        )
        self.store: SqlStore = open_store(url, schema=schema)
        self.console = io.StringIO()  # what console notifiers print
        self.notifiers: dict[str, Notifier] = self._notifiers()
        self.enforcer_events: list[tuple[str, str]] = []

    def _notifiers(self) -> dict[str, Notifier]:
        return build_notifiers(
            self.config.notifiers, zone=self.config.zone, slack_base_url=self.slack_base_url,
            console_stream=self.console,
        )

    @property
    def deps(self) -> Deps:
        apis = {a.name: self.api for a in self.config.accounts}
        return Deps(
            config=self.config,
            store=self.store,
            apis=apis,
            notifiers=self.notifiers,
            clock=self.clock,
            enforcer=Enforcer(
                AccountRouter(apis),
                self.store,
                on_event=lambda a, r: self.enforcer_events.append((a, r)),
            ),
            balance_apis={a.name: self.balance_api for a in self.config.accounts}
            if self.balance_api is not None
            else {},
        )

    def cycle(self, *, dry_run: bool = False, one_shot: bool = False) -> CycleResult:
        return run_cycle(self.deps, dry_run=dry_run, one_shot=one_shot)

    def path(self, route: str) -> str:
        """``route`` under this daemon's API prefix on the simulator (for faults)."""
        return f"/{self.version}{route}"

    def restart(self, config: Config | None = None) -> None:
        self.store.close()
        close_notifiers(self.notifiers)
        if config is not None:
            self.config = config
        self.store = open_store(self.url, schema=self.schema)
        self.notifiers = self._notifiers()

    def close(self) -> None:
        self.store.close()
        close_notifiers(self.notifiers)
        for api in (self.api, self.balance_api):
            close = getattr(api, "close", None)
            if callable(close):
                close()


def payloads(rx: Receiver, path: str = HOOK) -> list[dict[str, Any]]:
    return [r.json for r in rx.requests_to(path)]


def hook_ids(rx: Receiver, kind: str | None = None) -> list[str]:
    return [p["id"] for p in payloads(rx, HOOK) if kind is None or p["kind"] == kind]


def assert_no_duplicates(ids: list[str]) -> None:
    dup = {i: n for i, n in Counter(ids).items() if n > 1}
    assert not dup, f"sent more than once: {dup}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    """The RunPod API version a shared-behaviour test runs against."""
    return str(request.param)


@pytest.fixture
def growing() -> Iterator[Simulator]:
    """GROWING on loopback; the FakeClock starts at midnight UTC."""
    with running_simulator(GROWING, clock=FakeClock(T0)) as sim:
        yield sim


def _pg_unreachable() -> str | None:
    try:
        with psycopg.connect(PG_CONNINFO, connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable: {str(e).strip()}"


@pytest.fixture(scope="session")
def pg_skip() -> str | None:
    return _pg_unreachable()


@pytest.fixture
def pg_schema(pg_skip: str | None) -> Iterator[str]:
    """A fresh schema on the shared test database, dropped afterwards."""
    if pg_skip:
        pytest.skip(pg_skip)
    schema = f"rpb_pipe_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
