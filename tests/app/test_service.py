"""``runpod-budget run`` as a real process: alerts, health endpoints, SIGHUP, SIGTERM.

The daemon runs as a subprocess (``python -m daemon run -c FILE``) against the
RunPod simulator (in this process, real clock, loopback) and a recording
webhook receiver. Waits are bounded polls that end as soon as the condition holds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.simulator import Simulator
from tests.support.payloads import PAYLOAD_KEYS
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow

KEY = "svc-test-key-7f3a9c"

# Rolling 24h windows: the same numbers whatever the time of day or month.
# "all-24h": far over $1 at once (the A100 pod ran 6 h at $1.64/h) -> one alert at 100%.
# "notebook-24h": the notebook pod, $0.75-$1.75 in any 24h -> one alert at 50%.
ALL_24H = """\
  - name: all-24h
    window: 24h
    limit: 1
    thresholds: [100]
"""
NOTEBOOK_24H = """\
  - name: notebook-24h
    window: 24h
    limit: 1
    thresholds: [50]
    match: {pod_id: [demo7notebook02]}
"""


def config_text(
    hook_url: str, budgets: str, *, poll: str = "1s", version: str = "v2", api: str = ""
) -> str:
    """A daemon config; ``version`` "v2" leaves out ``api.version`` (the default);
    ``api`` is more of the ``api:`` section (indented lines)."""
    api = ("" if version == "v2" else f"  version: {version}\n") + api
    api = f"api:\n{api}" if api else ""
    return f"""\
version: 1
{api}poll_interval: {poll}
http:
  listen: 127.0.0.1:0
notifiers:
  hook:
    type: webhook
    url: {hook_url}
defaults:
  notify: [hook]
budgets:
{budgets}"""


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):  # a line still being written
                    out.append(json.loads(line))
        return out

    def find(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def wait_event(self, event: str, *, after: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            assert self.proc.poll() is None, f"daemon exited early:\n{self.stderr()[-3000:]}"
            hits = self.find(event)
            return hits[after] if len(hits) > after else None

        return wait_until(found, timeout, f"log event {event}")

    @property
    def port(self) -> int:
        listen = self.wait_event("http.listening")["listen"]
        return int(listen.rpartition(":")[2])


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("demo", api_key=KEY) as s:
        yield s


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def start_daemon(tmp_path: Path, sim: Simulator) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(cfg: Path, version: str = "v2", *, graphql: bool = False) -> Daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        env.update(
            RUNPOD_API_KEY=KEY,
            RUNPOD_API_BASE_URL=sim.base_url_for(version),
            STATE_DIRECTORY=str(tmp_path / "state"),
        )
        if graphql:
            env["RUNPOD_GRAPHQL_URL"] = sim.graphql_url
        err, out = tmp_path / "daemon.stderr", tmp_path / "daemon.stdout"
        with err.open("wb") as e, out.open("wb") as o:
            proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
                env=env,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
            )
        d = Daemon(proc, err, out)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=10)


#: the first billing call of a cycle, per API version
FIRST_BILLING = {"v1": "/v1/billing/pods", "v2": "/v2/billing"}


def billing_requests(sim: Simulator, version: str = "v2") -> int:
    first = FIRST_BILLING[version]
    return sum(1 for r in list(sim.requests) if r.path == first)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_run_alerts_serves_health_reloads_and_stops_cleanly(
    tmp_path: Path,
    sim: Simulator,
    rx: Receiver,
    start_daemon: Callable[..., Daemon],
    version: str,
) -> None:
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(config_text(rx.url + "/hook", ALL_24H, version=version))
    d = start_daemon(cfg, version)

    # alerts arrive with the contract's payload, webhook-id = id
    first = rx.wait_for(1, timeout=30, path="/hook")[0]
    assert first.json is not None and set(first.json) >= PAYLOAD_KEYS
    assert first.json["budget"] == "all-24h"
    assert first.json["kind"] == "threshold" and first.json["threshold_percent"] == 100
    assert first.headers["webhook-id"] == first.json["id"]

    # health endpoints after the first cycle
    port = d.port
    assert http_get(port, "/healthz")[0] == 200
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 30, "/readyz 200")
    code, metrics = http_get(port, "/metrics")
    assert code == 200
    assert any(line.startswith("runpod_budget_") for line in metrics.splitlines())

    # a broken config + SIGHUP: logged with the problem line, old config kept, polling goes on
    cfg.write_text(
        config_text(rx.url + "/hook", ALL_24H.replace("limit: 1", "limit: -5"), version=version)
    )
    d.proc.send_signal(signal.SIGHUP)
    failed = d.wait_event("config.reload_failed")
    problems = " ".join(failed.get("problems", []))
    assert f"{cfg}:" in problems and "budgets.0.limit" in problems, failed
    seen = billing_requests(sim, version)
    wait_until(
        lambda: billing_requests(sim, version) >= seen + 2, 30, "polls after the failed reload"
    )
    assert d.proc.poll() is None
    assert http_get(port, "/readyz")[0] == 200

    # a valid changed config + SIGHUP: reloaded, and the new budget alerts
    cfg.write_text(config_text(rx.url + "/hook", ALL_24H + NOTEBOOK_24H, version=version))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_event("config.reloaded")
    wait_until(
        lambda: any(r.json and r.json.get("budget") == "notebook-24h" for r in rx.requests),
        30,
        "the new budget's alert",
    )

    # SIGTERM: clean exit 0, JSON logs, no traceback
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    err = d.stderr()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    for ln in lines:
        json.loads(ln)  # stderr is not a TTY: every line is a JSON object
    assert any(json.loads(ln).get("event") == "daemon.stopped" for ln in lines)
    # exactly one message per alert over the whole run (reloads did not resend)
    ids = [r.headers.get("webhook-id") for r in rx.requests_to("/hook")]
    assert len(ids) == len(set(ids)) == 2, ids


def _outage_then_recovery(
    tmp_path: Path, rx: Receiver, start_daemon: Callable[..., Daemon], budgets: str
) -> tuple[Daemon, Callable[[], dict[str, int]]]:
    """Start the daemon with the receiver answering 503; bring the receiver back
    once the first delivery failed. Returns the daemon and a function counting
    the deliveries (2xx answers) per webhook-id since the recovery."""
    rx.set_down(True)  # 503 to everything
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(config_text(rx.url + "/hook", budgets))
    d = start_daemon(cfg)
    d.wait_event("notify.failed")  # the first cycle tried and failed
    # Flip under the receiver's lock: every request before the mark got 503, every one after 200.
    with rx._lock:
        rx._down = None
        mark = len(rx._requests)

    def delivered() -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in rx.requests[mark:]:
            wid = r.headers.get("webhook-id", "")
            counts[wid] = counts.get(wid, 0) + 1
        return counts

    return d, delivered


def test_notifier_that_was_down_gets_the_alert_exactly_once(
    tmp_path: Path, sim: Simulator, rx: Receiver, start_daemon: Callable[..., Daemon]
) -> None:
    d, delivered = _outage_then_recovery(tmp_path, rx, start_daemon, ALL_24H)
    # the outbox backs off 15 s (+-20 %) after the first failure
    wait_until(delivered, 40, "the alert delivered after the outage")
    # give a stray duplicate a chance: a few more polls (each ends with an outbox pass)
    seen = billing_requests(sim)
    wait_until(lambda: billing_requests(sim) >= seen + 3, 30, "more polls")
    counts = delivered()
    assert list(counts.values()) == [1], counts
    assert next(iter(counts)).startswith("default:all-24h:all:")
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0


def test_notifier_that_was_down_gets_its_backlog_right_after_the_first(
    tmp_path: Path, sim: Simulator, rx: Receiver, start_daemon: Callable[..., Daemon]
) -> None:
    d, delivered = _outage_then_recovery(tmp_path, rx, start_daemon, ALL_24H + NOTEBOOK_24H)
    wait_until(delivered, 40, "the first alert delivered after the outage")
    # the rest of the backlog follows in the same outbox pass or the next poll (1 s),
    # not when the 120 s lease of the rows skipped during the outage runs out
    wait_until(lambda: len(delivered()) >= 2, 15, "the second alert right after the first")
    seen = billing_requests(sim)
    wait_until(lambda: billing_requests(sim) >= seen + 3, 30, "more polls")
    counts = delivered()
    assert len(counts) == 2 and all(n == 1 for n in counts.values()), counts
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_sigterm_during_a_runpod_outage_stops_retrying_and_exits_0(
    tmp_path: Path,
    sim: Simulator,
    rx: Receiver,
    start_daemon: Callable[..., Daemon],
    version: str,
) -> None:
    """systemd gives TimeoutStopSec to stop. With billing down, the running cycle
    must not sit out its retry deadline (here 300 s) after SIGTERM, and must not
    start a second deadline on GET /pods for an account whose billing failed."""
    sim.fail(f"/{version}/billing", status=503, times=1_000_000)
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(
        config_text(
            rx.url + "/hook",
            ALL_24H,
            poll="1m",
            version=version,
            api="  timeout: 5s\n  deadline: 300s\n",
        )
    )
    d = start_daemon(cfg, version)
    wait_until(lambda: billing_requests(sim, version) >= 2, what="billing retries")
    d.proc.send_signal(signal.SIGTERM)
    at_signal = billing_requests(sim, version)
    # far below the 300 s deadline the cycle would otherwise retry for
    assert d.proc.wait(timeout=60) == 0
    assert billing_requests(sim, version) <= at_signal + 1  # at most the attempt in flight
    assert not [r for r in sim.requests if r.path == f"/{version}/pods"]
    assert "Traceback" not in d.stderr()
    assert d.find("billing.fetch_failed") and d.find("daemon.stopped")


def test_run_exports_rate_limit_balance_runway_and_idle_gauges(
    tmp_path: Path, sim: Simulator, rx: Receiver, start_daemon: Callable[..., Daemon]
) -> None:
    """On API v2 with ``balance:`` and an idle guard, /metrics shows what the
    daemon read: RunPod's rate-limit headroom, the balance, the burn, the
    runway, and the demo's idle dev pod with what it costs."""
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(
        config_text(rx.url + "/hook", ALL_24H)
        + "guards:\n  - name: idle-dev\n    idle: {gpu_util_below: 5, for: 2s}\n"
        + "    match: {pod_name: 'dev-*'}\n    stop: {dry_run: true}\n"
        + "balance:\n  below_usd: [25]\n"
    )
    d = start_daemon(cfg, graphql=True)
    port = d.port

    def gauges() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        code, text = http_get(port, "/metrics")
        assert code == 200
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }
        idle = got.get(("runpod_budget_idle_pods", (("account", "default"), ("guard", "idle-dev"))))
        return got if idle else None

    got = wait_until(gauges, 30, "the idle pod in /metrics")
    acc = (("account", "default"),)
    idle = (("account", "default"), ("guard", "idle-dev"))
    assert got[("runpod_budget_idle_pods", idle)] == 1
    assert got[("runpod_budget_idle_burn_per_hour_usd", idle)] == pytest.approx(4.78)
    assert 0 < got[("runpod_budget_balance_usd", acc)] <= 40
    burn = got[("runpod_budget_spend_per_hour_usd", acc)]
    assert burn > 1800  # the runaway alone burns $1800/h
    runway = got[("runpod_budget_runway_hours", acc)]
    assert runway == pytest.approx(got[("runpod_budget_balance_usd", acc)] / burn, rel=0.05)
    remaining = {
        dict(labels)["window"]: v
        for (name, labels), v in got.items()
        if name == "runpod_budget_api_ratelimit_remaining"
    }
    assert set(remaining) >= {"minute"} and all(0 < v < 600_000 for v in remaining.values())
    # the guard's dry-run stop is counted with the reason it would stop for
    would = [
        dict(labels)
        for (name, labels), v in got.items()
        if name == "runpod_budget_enforcement_actions_total" and v > 0
    ]
    assert {w["action"] for w in would} == {"would_stop"}, would
    assert all(w["reason"] for w in would), would
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
