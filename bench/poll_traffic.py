"""Requests, bytes and billing records of the daemon's polls, on both RunPod API
versions, next to fetching the same windows as hour buckets.

    .venv/bin/python -m bench.poll_traffic            # month (20 pods) and 2,000 pods
    .venv/bin/python -m bench.poll_traffic --pods 0   # the month scenario only

The simulator serves a month of history on a FakeClock: the built-in ``month``
scenario (20 pods, 2 serverless endpoints, 31 days of start/stop history), and
a generated account of ``--pods`` pods (same generator). The daemon's own
cycle (``run_cycle`` with the real adapters and a temporary SQLite state)
polls at 08:47:12Z on 2026-11-24 (cold start), +5 min (steady), +15 min (an
hour boundary), +10 h (after downtime) and +5 min again.

"hourly buckets" is what the same windows cost without the mixed-resolution
planner: per billing family the config reads, one request for hour buckets
from the earliest window start to now (what the first version of the daemon
did on v1), plus the pod listing. An answer over the client's 64 MB cap is
refused, as the daemon would refuse it. Bytes are response bodies as the
simulator counted them; records are billing records returned to the daemon.

Results: printed, and written to bench/results/poll_traffic.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import table, write_results  # noqa: E402
from daemon.app.logging import configure_logging  # noqa: E402
from daemon.app.runtime import build_runtime  # noqa: E402
from daemon.core.model import SpendRecord  # noqa: E402
from daemon.core.ports import ApiError  # noqa: E402
from daemon.pipeline.cycle import run_cycle  # noqa: E402
from daemon.pipeline.fetch import needed_windows  # noqa: E402
from daemon.simulator import FakeClock, Simulator  # noqa: E402

KEY = "bench-key-poll-traffic"
T0 = datetime(2026, 11, 24, 8, 47, 12, tzinfo=UTC)

CONFIG = """\
version: 1
timezone: UTC
poll_interval: 5m
api: {{version: {version}}}
http: {{enabled: false}}
notifiers:
  out: {{type: console}}
defaults:
  notify: [out]
  thresholds: [80, 100]
budgets:
  - name: account-monthly        # every resource, month, with forecast
    window: month
    limit: 2000000
    thresholds: [50, 80, 100]
    forecast: true
  - name: gpu-monthly            # per GPU type, month (pods family: per pod records)
    per: gpu_type
    window: month
    limit: 150000
  - name: pod-daily              # per: pod day budget
    per: pod
    window: day
    limit: 60000
  - name: account-24h            # a rolling 24h budget
    window: 24h
    limit: 1200000
"""

STEPS: list[tuple[str, timedelta]] = [
    ("cold start", timedelta(0)),
    ("steady +5m", timedelta(minutes=5)),
    ("hour boundary", timedelta(minutes=15)),
    ("after 10h down", timedelta(hours=10)),
    ("steady after", timedelta(minutes=5)),
]


class Counting:
    """A RunPod adapter that counts the billing records it hands out."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.records = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def billing(self, *a: Any, **kw: Any) -> list[SpendRecord]:
        out: list[SpendRecord] = self.inner.billing(*a, **kw)
        self.records += len(out)
        return out


def _traffic(sim: Simulator, since: int) -> tuple[int, int, int]:
    reqs = sim.requests[since:]
    billing = sum(1 for r in reqs if "/billing" in r.path)
    return len(reqs), billing, sum(r.bytes for r in reqs)


def run(version: str, scenario: Any, label: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    clock = FakeClock(T0)
    with tempfile.TemporaryDirectory() as tmp, Simulator(
        scenario, api_key=KEY, clock=clock, rate_limit=None
    ) as sim:
        cfg = Path(tmp) / "budgets.yaml"
        cfg.write_text(CONFIG.format(version=version), encoding="utf-8")
        env = {
            "RUNPOD_API_KEY": KEY,
            "RUNPOD_API_BASE_URL": sim.base_url_for(version),
            "STATE_DIRECTORY": tmp,
        }
        rt = build_runtime(cfg, env, clock=clock)
        counting = {k: Counting(v) for k, v in rt.apis.items()}
        rt.apis = counting  # type: ignore[assignment]
        try:
            for step, delta in STEPS:
                clock.advance(delta)
                n0 = len(sim.requests)
                before = sum(c.records for c in counting.values())
                result = run_cycle(rt.deps())
                for acc, err in result.fetch_errors.items():
                    print(f"{label} {version} {step}: {acc}: {err}", file=sys.stderr)
                reqs, billing, size = _traffic(sim, n0)
                records = sum(c.records for c in counting.values()) - before
                rows.append(_row(label, version, step, "daemon", reqs, billing, size, records))
                if step in ("cold start", "steady +5m"):
                    rows.append(_hourly(rt, sim, label, version, step, clock))
        finally:
            rt.close()
    return rows


def _row(label: str, version: str, step: str, who: str, reqs: int, billing: int, size: int,
         records: int) -> dict[str, Any]:
    return {"scenario": label, "api": version, "poll": step, "who": who, "requests": reqs,
            "billing_requests": billing, "bytes": size, "records": records}


def _hourly(rt: Any, sim: Simulator, label: str, version: str, step: str,
            clock: Callable[[], datetime]) -> dict[str, Any]:
    """The same windows as hour buckets, one request per family (no planner)."""
    now = clock()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    n0 = len(sim.requests)
    records = 0
    refused = ""
    rt.apis[rt.config.accounts[0].name].inner.list_pods()  # forecasts need it too
    for series, windows in needed_windows(rt.config, now).items():
        start = min(w.start for w in windows).replace(minute=0, second=0, microsecond=0)
        try:
            records += len(rt.apis[series.account].inner.billing(
                series.family, bucket="hour", start=start, end=end))
        except ApiError as e:  # e.g. an answer over the client's 64 MB cap
            refused = f" ({e.reason}: {series.family})"
    reqs, billing, size = _traffic(sim, n0)
    return _row(label, version, step, "hourly buckets" + refused, reqs, billing, size, records)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=2000, help="generated account size (0: skip)")
    args = p.parse_args(argv)
    configure_logging(json=True, level="error", stream=sys.stderr)
    scenarios: list[tuple[str, Any]] = [("month (20 pods)", "month")]
    if args.pods:
        scenarios.append((f"{args.pods} pods", {
            "generate": {"kind": "month", "pods": args.pods, "days": 31, "seed": 7}}))
    rows: list[dict[str, Any]] = []
    for label, scenario in scenarios:
        for version in ("v1", "v2"):
            rows += run(version, scenario, label)
    cols = ["scenario", "api", "poll", "who", "requests", "billing_requests", "bytes", "records"]
    print(table(cols, [[r[c] for c in cols] for r in rows]))
    for label, _ in scenarios:
        for version in ("v1", "v2"):
            mine = {(r["poll"], r["who"]): r for r in rows
                    if r["scenario"] == label and r["api"] == version}
            cold = mine[("cold start", "daemon")]
            naive = next(r for (poll, who), r in mine.items()
                         if poll == "cold start" and who.startswith("hourly"))
            print(f"{label} {version}: cold start {cold['bytes']:,} B = "
                  f"{100 * cold['bytes'] / max(naive['bytes'], 1):.1f}% of hourly buckets "
                  f"({naive['bytes']:,} B); steady +5m {mine[('steady +5m', 'daemon')]['requests']}"
                  " requests")
    write_results("poll_traffic", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
