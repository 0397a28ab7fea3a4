"""The naive budget script the Scale issue compares against: every run re-fetches
the month of hourly per-pod spend, loops budgets x records, POSTs one webhook per
alert. Prints its phase times as one JSON line (plus ``floor_s``: json.loads of
the same bytes and one pass of sums, the least any poller must do).

    RUNPOD_API_KEY=k RUNPOD_API_BASE_URL=http://127.0.0.1:P/v2 \
        python bench/naive_budget.py CONFIG.yaml [--send]
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
from ruamel.yaml import YAML

WINDOW = {"day": timedelta(days=1), "week": timedelta(days=7), "24h": timedelta(hours=24)}


def start_of(window: str, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return day
    if window == "week":
        return day - timedelta(days=day.weekday())
    if window == "24h":
        return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=24)
    return day.replace(day=1)


def main() -> None:
    t0 = time.perf_counter()
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = YAML(typ="safe").load(f)
    base, v2 = os.environ["RUNPOD_API_BASE_URL"], os.environ["RUNPOD_API_BASE_URL"].endswith("/v2")
    now = datetime.now(UTC)
    month = start_of("month", now)
    auth = {"Authorization": f"Bearer {os.environ['RUNPOD_API_KEY']}"}
    c = httpx.Client(headers=auth, timeout=120)
    q = {"bucketSize": "hour", "startTime": month.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "endTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"), **({} if v2 else {"grouping": "podId"})}
    body = c.get(base + "/billing/pods", params=q).content
    pods_body = c.get(base + "/pods").json()
    t_fetch = time.perf_counter()
    raw = json.loads(body)
    pods = {p["id"]: p for p in (pods_body["pods"] if v2 else pods_body)}
    recs = []  # (pod id, name, gpu, hour start, amount)
    for r in raw["records"] if v2 else raw:
        p = pods.get(r["podId"], {})
        gpu = (p.get("gpu") or {}).get("id") or (p.get("machine") or {}).get("gpuTypeId")
        t = datetime.fromisoformat((r["startTime"] if v2 else r["time"]).replace("Z", "+00:00"))
        recs.append((r["podId"], p.get("name"), gpu, t, r["totalAmount" if v2 else "amount"]))
    t_parse = time.perf_counter()
    alerts = []
    thresholds = cfg["defaults"]["thresholds"]
    for b in cfg["budgets"]:  # budgets x records, as the script does
        start, per = start_of(b["window"], now), b.get("per")
        glob = (b.get("match") or {}).get("pod_name")
        spend: dict[str, float] = {}
        for pid, name, gpu, t, amount in recs:
            if t < start:
                continue
            if glob and not (name and fnmatch.fnmatchcase(name, glob)):
                continue
            key = pid if per == "pod" else (gpu or "unknown") if per == "gpu_type" else "all"
            spend[key] = spend.get(key, 0.0) + amount
        for key, s in spend.items():
            hit = [t for t in thresholds if s * 100 >= t * b["limit"]]
            if hit:
                alerts.append({"budget": b["name"], "instance": key, "threshold": max(hit),
                               "spend": round(s, 2), "limit": b["limit"]})
    t_eval = time.perf_counter()
    url = next(iter(cfg["notifiers"].values()))["url"]
    if "--send" in sys.argv:
        for a in alerts:
            c.post(url, json=a).raise_for_status()
    t_send = time.perf_counter()
    f0 = time.perf_counter()  # the floor: parse the same bytes, one pass of sums
    by_pod: dict[str, float] = {}
    for r in json.loads(body)["records"] if v2 else json.loads(body):
        by_pod[r["podId"]] = by_pod.get(r["podId"], 0.0) + r["totalAmount" if v2 else "amount"]
    floor = time.perf_counter() - f0
    print(json.dumps({"fetch_s": t_fetch - t0, "parse_s": t_parse - t_fetch,
                      "eval_s": t_eval - t_parse, "send_s": t_send - t_eval,
                      "total_s": t_send - t0, "floor_s": floor, "bytes": len(body),
                      "records": len(recs), "alerts": len(alerts)}))


if __name__ == "__main__":
    main()
