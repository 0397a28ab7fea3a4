"""Time from spend crossing a threshold to the webhook arriving, with the real
``runpod-budget run`` as a subprocess on the real clock.

    .venv/bin/python -m bench.time_to_alert                       # 5s and 30s polls, 5 each
    .venv/bin/python -m bench.time_to_alert --intervals 5s --repeats 3

Per poll interval: the RunPod simulator (real clock, in this process) holds
``repeats`` stopped pods at $3600/h ($1 per second), each with its own budget
(``match: {pod_id: [...]}``, window month, limit $5, threshold 100 %), and the
recording receiver (tests.support.receiver) stands in for the webhook
endpoint. The daemon runs with that config (webhook notifier, HTTP endpoint on
127.0.0.1:0, state in a temporary STATE_DIRECTORY) and env RUNPOD_API_KEY /
RUNPOD_API_BASE_URL. After its first ``cycle.done``, for each pod in turn:
wait a random 0..poll_interval (so the crossing falls at a random phase of the
poll schedule), start the pod in the simulator (``Simulator.start_pod``: spend
accrues from that instant), so the budget crosses 100 % exactly 5 s after the
recorded start; then wait for the webhook POST and take its arrival time.

latency = arrival - crossing. It splits into the wait for the next poll (the
first /billing/pods request the simulator answered after the crossing) and
that poll's processing and delivery. Goal: latency <= poll interval + 1 s.
Note the scheduler adds a random jitter of up to min(10 % of the interval,
30 s) to every poll. At the end the daemon gets SIGTERM and must exit 0.

Results: printed, and written to bench/results/time_to_alert.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    LogTail,
    child_env,
    daemon_command,
    stop_process,
    table,
    write_results,
)
from daemon.config.models import parse_duration  # noqa: E402
from daemon.simulator import Simulator  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402

KEY = "bench-key-time-to-alert"
COST_PER_HR = 3600.0  # $1 per second
LIMIT = 5.0  # USD; threshold 100 % -> crossing 5 s after the pod starts


def config_text(poll: str, hook: str, pods: list[str]) -> str:
    budgets = "".join(
        f"  - name: ttl-{i}\n"
        f"    match: {{pod_id: [{pid}]}}\n"
        f"    window: month\n"
        f"    limit: {LIMIT:g}\n"
        f"    thresholds: [100]\n"
        for i, pid in enumerate(pods)
    )
    return (
        "version: 1\ntimezone: UTC\n"
        f"poll_interval: {poll}\n"
        "http:\n  listen: 127.0.0.1:0\n"
        f"notifiers:\n  hook:\n    type: webhook\n    url: {hook}\n"
        "defaults:\n  notify: [hook]\n"
        f"budgets:\n{budgets}"
    )


def run_interval(poll: str, repeats: int, rng: random.Random) -> dict[str, Any]:
    poll_s = parse_duration(poll).total_seconds()
    pods = [f"ttlpod{i:02d}{rng.randrange(16**6):06x}" for i in range(repeats)]
    scenario = {
        "pods": [
            {"id": pid, "name": f"ttl-{i}", "gpu_type": "NVIDIA H100 80GB HBM3",
             "cost_per_hr": COST_PER_HR, "running": []}
            for i, pid in enumerate(pods)
        ]
    }
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-tta-") as tmp, \
            Simulator(scenario, api_key=KEY) as sim, Receiver() as rx:
        cfg = Path(tmp) / "budgets.yaml"
        cfg.write_text(config_text(poll, rx.url + "/hook", pods), encoding="utf-8")
        cmd = daemon_command(cfg)
        env = child_env(RUNPOD_API_KEY=KEY, RUNPOD_API_BASE_URL=sim.base_url,
                        STATE_DIRECTORY=tmp)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=tmp, env=env)
        log = LogTail(proc.stderr)
        try:
            log.wait_event("cycle.done", 1, timeout=60)
            for i, pid in enumerate(pods):
                time.sleep(rng.uniform(0, poll_s))
                n_before = len(sim.requests)
                pod = sim.start_pod(pid)
                started = pod.running[-1][0]
                crossing = started + timedelta(hours=LIMIT / COST_PER_HR)
                got = rx.wait_for(i + 1, timeout=poll_s * 1.1 + 60, path="/hook")
                arrived = datetime.now(UTC)
                payload = got[i].json or {}
                sim.stop_pod(pid)
                polls_after = [
                    r.at for r in sim.requests[n_before:]
                    if r.path.endswith("/billing/pods") and r.at >= crossing
                ]
                first_poll = min(polls_after) if polls_after else None
                latency = (arrived - crossing).total_seconds()
                samples.append({
                    "pod": pid,
                    "budget": payload.get("budget"),
                    "kind": payload.get("kind"),
                    "spend_usd": payload.get("spend_usd"),
                    "started": started.isoformat(),
                    "crossing": crossing.isoformat(),
                    "arrived": arrived.isoformat(),
                    "latency_s": round(latency, 3),
                    "wait_for_poll_s": round((first_poll - crossing).total_seconds(), 3)
                    if first_poll else None,
                    "poll_to_arrival_s": round((arrived - first_poll).total_seconds(), 3)
                    if first_poll else None,
                })
                assert payload.get("budget") == f"ttl-{i}", payload
                print(f"  {poll} #{i + 1}: latency {latency:6.3f} s "
                      f"(spend seen ${payload.get('spend_usd')})", flush=True)
        finally:
            rc = stop_process(proc)
            log.join()
        stray = [(r.json or {}).get("budget") for r in rx.requests_to("/hook")][len(pods):]
    lat = [s["latency_s"] for s in samples]
    goal = poll_s + 1.0
    return {
        "poll_interval": poll,
        "poll_seconds": poll_s,
        "scheduler_jitter_max_s": min(poll_s * 0.1, 30.0),
        "repeats": repeats,
        "command": cmd,
        "samples": samples,
        "latency_min_s": min(lat),
        "latency_median_s": round(statistics.median(lat), 3),
        "latency_max_s": max(lat),
        "goal_s": goal,
        "within_goal": sum(1 for x in lat if x <= goal),
        "extra_webhooks": stray,
        "exit_code": rc,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intervals", default="5s,30s", help="poll intervals (default 5s,30s)")
    ap.add_argument("--repeats", type=int, default=5, help="crossings per interval (default 5)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random poll phases")
    ap.add_argument("--results", default="time_to_alert",
                    help="name of the JSON file under bench/results (default time_to_alert)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    runs = []
    for poll in args.intervals.split(","):
        print(f"poll_interval {poll}: {args.repeats} crossings ...", flush=True)
        runs.append(run_interval(poll.strip(), args.repeats, rng))
    print()
    print(table(
        ["poll", "n", "min s", "median s", "max s", "goal s", "<= goal", "exit"],
        [[r["poll_interval"], r["repeats"], r["latency_min_s"], r["latency_median_s"],
          r["latency_max_s"], r["goal_s"], f"{r['within_goal']}/{r['repeats']}", r["exit_code"]]
         for r in runs],
    ))
    print("\nper crossing: wait for the next poll + poll-to-arrival (s)")
    for r in runs:
        parts = ", ".join(f"{s['wait_for_poll_s']}+{s['poll_to_arrival_s']}"
                          for s in r["samples"])
        print(f"  {r['poll_interval']}: {parts}")
    path = write_results(args.results, {
        "cost_per_hr": COST_PER_HR, "limit_usd": LIMIT, "threshold_percent": 100,
        "seed": args.seed, "argv": sys.argv[1:], "runs": runs,
    })
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
