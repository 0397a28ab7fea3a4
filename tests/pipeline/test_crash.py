"""Issue 4: ``kill -9`` of a ``check`` process between send and record: at most
one duplicate, none lost.

A real ``python -m daemon check`` subprocess polls an in-process simulator on
real time, its webhook receiver holds the first POST open, and the process is
SIGKILLed while it waits for the answer (after the send, before
``mark_delivered``).

The outbox leases a row for one send of its notifier plus a margin
(``lease_for``: the webhook's ``timeout`` + ``LEASE_MARGIN``, 25 s here, not
the old fixed 120 s). Instead of sleeping that long the test lets the lease
run out on the clock of an in-process ``deliver_due`` on the very same state
file and notifier config, then runs ``check`` again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.adapters.notifiers import build_notifiers, close_notifiers
from daemon.adapters.store import open_store
from daemon.config.loader import load_config
from daemon.pipeline.outbox import LEASE_MARGIN, LEASE_SECONDS, deliver_due, lease_for
from tests.pipeline.conftest import HOOK
from tests.support.receiver import Receiver
from tests.support.simulator import TEST_KEY, running_simulator

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HOOK_TIMEOUT = 10  # seconds; the row's lease is this plus LEASE_MARGIN

# A pod at 100 $/h for 30 hours: each 24 h rolling budget below is over 100 %.
BURNING: dict[str, Any] = {
    "pods": [
        {"id": "pod-burn", "name": "train-burn", "gpu_type": "NVIDIA H100 80GB HBM3",
         "cost_per_hr": 100.0, "running": [["-30h", None]]}
    ]
}


def write_config(path: Path, hook_url: str) -> None:
    config = {
        "version": 1,
        "notifiers": {"hook": {"type": "webhook", "url": hook_url, "timeout": HOOK_TIMEOUT}},
        "defaults": {"notify": ["hook"]},
        "http": {"enabled": False},
        "budgets": [
            {"name": f"rolling-{i}", "window": "24h", "limit": 100 * i, "thresholds": [100]}
            for i in (1, 2, 3)
        ],
    }
    path.write_text(json.dumps(config), encoding="utf-8")


def check(cfg: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "check", "-c", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_between_send_and_record_duplicates_at_most_the_one_in_flight(
    tmp_path: Path,
) -> None:
    with Receiver() as rx, running_simulator(BURNING, clock=lambda: datetime.now(UTC)) as sim:
        cfg = tmp_path / "budgets.yaml"
        write_config(cfg, rx.url + HOOK)
        state = tmp_path / "state"
        env = {
            **os.environ,
            "RUNPOD_API_KEY": TEST_KEY,
            "RUNPOD_API_BASE_URL": sim.base_url_for("v2"),  # no api section: v2
            "STATE_DIRECTORY": str(state),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("RUNPOD_BUDGET_CONFIG", None)

        # 1. the first POST is held open; kill -9 the check while it waits
        rx.delay(HOOK, 60)
        started = datetime.now(UTC)  # the row is claimed after this
        proc = check(cfg, env)
        try:
            (first,) = rx.wait_for(1, timeout=60, path=HOOK)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        in_flight = first.headers["webhook-id"]
        rx.delay(HOOK, 0)

        store = open_store(f"sqlite:///{state}/state.db")
        try:
            decided = {e.id for e in store.ledger("default", datetime(2026, 1, 1, tzinfo=UTC))}
            assert len(decided) == 3 and in_flight in decided
            assert store.pending_count() == 3  # nothing recorded as delivered: none lost

            # 2. check again at once: it decides nothing new; the in-flight row is
            #    still leased, and the notifier's later rows wait behind it (order)
            again = check(cfg, env)
            out, err = again.communicate(timeout=60)
            assert again.returncode == 0, err
            assert "no new alerts" in out
            assert store.pending_count() == 3
            assert len(rx.requests_to(HOOK)) == 1

            # 3. the lease runs out: everything is delivered, the in-flight one again
            config = load_config(cfg, env)
            notifiers = build_notifiers(config.notifiers, zone=config.zone)
            try:
                lease = lease_for(notifiers["hook"])
                assert lease == HOOK_TIMEOUT + LEASE_MARGIN < LEASE_SECONDS
                # a little before the lease ends the row is still held ...
                soon = started + timedelta(seconds=lease - 1)
                assert deliver_due(store, notifiers, lambda: soon).delivered == []
                # ... and once it ran out, everything goes
                later = datetime.now(UTC) + timedelta(seconds=lease + 1)
                report = deliver_due(store, notifiers, lambda: later)
            finally:
                close_notifiers(notifiers)
            assert report.failed == []
            assert {aid for aid, _ in report.delivered} == decided
            assert store.pending_count() == 0

            # 4. and a later check sends nothing more
            last = check(cfg, env)
            out, err = last.communicate(timeout=60)
            assert last.returncode == 0, err
            assert "no new alerts" in out
            (state_row,) = store.delivery_states()
            assert (state_row.pending, state_row.delivered, state_row.failed_permanent) == (0, 3, 0)
        finally:
            store.close()

        seen = Counter(r.headers["webhook-id"] for r in rx.requests_to(HOOK))
        assert set(seen) == decided  # none lost
        assert seen[in_flight] == 2  # the one in flight: exactly one duplicate
        assert all(n == 1 for aid, n in seen.items() if aid != in_flight)  # no other
        for r in rx.requests_to(HOOK):
            assert r.json["id"] == r.headers["webhook-id"]
