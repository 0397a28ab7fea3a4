"""Requests and bytes of a poll against the month-long simulator scenario,
next to a naive full-month re-fetch.

    .venv/bin/python -m bench.poll_traffic

The simulator serves the built-in ``month`` scenario (20 pods, 31 days of
hourly start/stop history, generated relative to the start instant) on a
FakeClock. The daemon's own cycle (``run_cycle`` with the real RunPodClient
and a temporary SQLite state) polls at:

    cold start       08:47:12Z  empty state
    steady +5m       08:52:12Z  the usual poll
    steady +10m      08:57:12Z
    hour boundary    09:02:12Z  a new hour has begun since the last poll
    after 10h down   19:02:12Z  the daemon was down for 10 h
    steady after     19:07:12Z

(on 2026-11-24). At each instant the naive alternative is measured too: per
series the config needs (grouping + GPU filter), one ``GET /billing/pods``
with ``bucketSize=hour``, ``startTime`` = month start (or the series' earliest
needed hour if that is earlier) and ``endTime`` = now, plus the same
``GET /pods`` the daemon makes for forecasts ("naive month"). A second,
less naive alternative re-fetches each series only from the earliest hour its
budgets' windows need, still without a cache ("refetch windows"). Bytes are response body bytes
as the simulator counted them (``sim.requests``); records are billing records
returned.

Results: printed, and written to bench/results/poll_traffic.json.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import table, write_results  # noqa: E402
from daemon.adapters.runpod import RunPodClient  # noqa: E402
from daemon.app.logging import configure_logging  # noqa: E402
from daemon.app.runtime import build_runtime  # noqa: E402
from daemon.core.model import BillingRecord, Pod  # noqa: E402
from daemon.core.windows import floor_hour, window_at  # noqa: E402
from daemon.pipeline.cycle import needed_series, run_cycle  # noqa: E402
from daemon.simulator import FakeClock, Simulator  # noqa: E402

KEY = "bench-key-poll-traffic"
T0 = datetime(2026, 11, 24, 8, 47, 12, tzinfo=UTC)

CONFIG = """\
version: 1
timezone: UTC
poll_interval: 5m
http: {enabled: false}
notifiers:
  out: {type: console}
defaults:
  notify: [out]
  thresholds: [80, 100]
budgets:
  - name: account-monthly        # account-wide month with forecast
    window: month
    limit: 20000
    thresholds: [50, 80, 100]
    forecast: true
  - name: h100-daily             # a GPU-type day budget
    match: {gpu_type: ["NVIDIA H100 80GB HBM3"]}
    window: day
    limit: 150
  - name: pod-daily              # per: pod day budget
    per: pod
    window: day
    limit: 60
  - name: account-24h            # a rolling 24h budget
    window: 24h
    limit: 1200
"""

STEPS: list[tuple[str, timedelta]] = [
    ("cold start", timedelta(0)),
    ("steady +5m", timedelta(minutes=5)),
    ("steady +10m", timedelta(minutes=5)),
    ("hour boundary", timedelta(minutes=5)),
    ("after 10h down", timedelta(hours=10)),
    ("steady after", timedelta(minutes=5)),
]


class CountingApi:
    """Passes calls through to the real client and counts billing records."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.records = 0

    def billing_pods(self, **kw: Any) -> list[BillingRecord]:
        out: list[BillingRecord] = self.inner.billing_pods(**kw)
        self.records += len(out)
        return out

    def list_pods(self) -> list[Pod]:
        return list(self.inner.list_pods())

    def stop_pod(self, pod_id: str) -> None:
        self.inner.stop_pod(pod_id)


def traffic(sim: Simulator, since: int) -> dict[str, int]:
    reqs = sim.requests[since:]
    billing = [r for r in reqs if r.path.endswith("/billing/pods")]
    pods = [r for r in reqs if r.path.endswith("/pods") and not r.path.endswith("/billing/pods")]
    return {
        "requests": len(reqs),
        "bytes": sum(r.bytes for r in reqs),
        "billing_requests": len(billing),
        "billing_bytes": sum(r.bytes for r in billing),
        "pods_requests": len(pods),
        "pods_bytes": sum(r.bytes for r in pods),
        "errors": sum(1 for r in reqs if r.status != 200),
    }


def naive(
    sim: Simulator,
    client: RunPodClient,
    series: dict[Any, datetime],
    now: datetime,
    month_start: datetime | None,
) -> dict[str, Any]:
    """No cache: every series re-fetched up to now, from ``month_start`` (or the
    series' earliest needed hour if earlier), or with ``month_start=None`` from
    the series' earliest needed hour (only the budget windows); then GET /pods."""
    before = len(sim.requests)
    n_records = 0
    calls = []
    for key, start in sorted(series.items(), key=lambda kv: str(kv[0])):
        begin = floor_hour(start) if month_start is None else min(month_start, floor_hour(start))
        n_records += len(client.billing_pods(
            bucket_size="hour", start=begin, end=now, grouping=key.grouping,
            gpu_type_id=key.gpu_filter or None,
        ))
        calls.append(f"{key.grouping}"
                     + (f"[gpu={key.gpu_filter}]" if key.gpu_filter else "")
                     + f" from {begin:%m-%dT%H:%MZ}")
    client.list_pods()
    out: dict[str, Any] = traffic(sim, before)
    out["records"] = n_records
    out["calls"] = calls
    return out


def main() -> int:
    configure_logging(json=False, level="warning", stream=sys.stderr)
    clock = FakeClock(T0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as tmp, \
            Simulator("month", api_key=KEY, clock=clock) as sim:
        cfg = Path(tmp) / "budgets.yaml"
        cfg.write_text(CONFIG, encoding="utf-8")
        env = {"RUNPOD_API_KEY": KEY, "RUNPOD_API_BASE_URL": sim.base_url,
               "STATE_DIRECTORY": tmp}
        console = io.StringIO()
        rt = build_runtime(cfg, env, console=console, clock=clock)
        counting = {name: CountingApi(api) for name, api in rt.apis.items()}
        rt.apis = dict(counting)  # type: ignore[arg-type]
        naive_client = RunPodClient(KEY, sim.base_url)
        try:
            for label, delta in STEPS:
                clock.advance(delta)
                now = clock()
                # --- the daemon's own poll
                before, recs_before = len(sim.requests), sum(c.records for c in counting.values())
                t = time.perf_counter()
                result = run_cycle(rt.deps())
                cycle_s = time.perf_counter() - t
                assert result.billing_ok, result.fetch_errors
                d = traffic(sim, before)
                d["records"] = sum(c.records for c in counting.values()) - recs_before
                series = needed_series(rt.config, now)
                month_start = floor_hour(window_at("month", now, rt.config.zone).start)
                # --- the naive alternatives at the same instant
                n = naive(sim, naive_client, series, now, month_start)
                w = naive(sim, naive_client, series, now, None)
                rows.append({
                    "scenario": label,
                    "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "daemon": {**d, "cycle_seconds": round(cycle_s, 3),
                               "alerts": len(result.alerts),
                               "budget_instances": len(result.evaluation.statuses)},
                    "naive": n,
                    "refetch_windows": w,
                })
        finally:
            naive_client.close()
            rt.close()
        pods, volumes = len(sim.scenario.pods), len(sim.scenario.volumes)

    print(f"poll traffic, simulator scenario 'month' ({pods} pods, 31 days hourly history), "
          "config: month+forecast, GPU-type day, per-pod day, rolling 24h")
    trows = []
    for r in rows:
        d, n = r["daemon"], r["naive"]
        trows.append([r["scenario"], r["now"][11:19], "daemon", d["requests"], d["bytes"],
                      d["records"], d["billing_requests"], d["billing_bytes"]])
        trows.append(["", "", "naive month", n["requests"], n["bytes"], n["records"],
                      n["billing_requests"], n["billing_bytes"]])
        w = r["refetch_windows"]
        trows.append(["", "", "refetch windows", w["requests"], w["bytes"], w["records"],
                      w["billing_requests"], w["billing_bytes"]])
    print(table(["scenario", "now (UTC)", "who", "requests", "resp bytes", "records",
                 "billing req", "billing bytes"], trows))
    steady = next(r for r in rows if r["scenario"] == "steady +5m")
    ratio = steady["naive"]["bytes"] / max(1, steady["daemon"]["bytes"])
    bratio = steady["naive"]["billing_bytes"] / max(1, steady["daemon"]["billing_bytes"])
    print(f"\nsteady state: the naive re-fetch sends {ratio:.1f}x the response bytes "
          f"({bratio:.1f}x counting /billing/pods only)")
    wratio = steady["refetch_windows"]["bytes"] / max(1, steady["daemon"]["bytes"])
    print(f"re-fetching only the budget windows without a cache: {wratio:.1f}x")
    print("'requests' and 'resp bytes' include the GET /pods all three make.")
    print(f"naive month calls per poll: {', '.join(steady['naive']['calls'])}")
    print(f"refetch windows calls per poll: {', '.join(steady['refetch_windows']['calls'])}")
    path = write_results("poll_traffic", {
        "scenario": {"name": "month", "pods": pods, "volumes": volumes, "t0": T0.isoformat()},
        "config": CONFIG,
        "polls": rows,
        "steady_state_bytes_ratio_naive_over_daemon": round(ratio, 2),
        "steady_state_billing_bytes_ratio_naive_over_daemon": round(bratio, 2),
        "steady_state_bytes_ratio_refetch_windows_over_daemon": round(wratio, 2),
    })
    print(f"written {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
