"""Checks of the kill-chaos benchmark (bench/kill_chaos.py), kept apart so the
script stays short: duplicates explained by kills, stop calls mapped to their
budget instance, and how long the notifier waited after each kill."""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from daemon.simulator import Simulator
from tests.support.flaky_receiver import Hit

STOP_CALL = re.compile(r"/pods/([^/]+)/action$")


@dataclass
class Kill:
    n: int
    started: float  # wall time the process was spawned
    killed: float
    pending: list[str]  # alert ids pending in the outbox right after the kill
    head_due: float | None  # when the outbox let the head row go again (lease/backoff)
    restarted: float | None = None


def duplicates(ok: dict[str, list[Hit]], kills: list[Kill]) -> dict[str, Any]:
    """Ids answered 2xx more than once; explained when a kill fell between the
    first and the next send while the row was still pending."""
    out: dict[str, Any] = {"ids": 0, "extra_sends": 0, "unexplained": []}
    for aid, hs in ok.items():
        if len(hs) < 2:
            continue
        out["ids"] += 1
        out["extra_sends"] += len(hs) - 1
        for a, b in itertools.pairwise(hs):
            if not any(a.wall < k.killed < b.wall and aid in k.pending for k in kills):
                out["unexplained"].append({"id": aid, "first": a.wall, "again": b.wall})
    return out


def check_stops(sim: Simulator, audit: list[dict[str, Any]], received: set[str]) -> dict[str, Any]:
    """Successful stop calls mapped to their budget instance through the intent rows."""
    calls = [(m.group(1), r.at) for r in list(sim.requests)
             if r.method == "POST" and r.status < 300 and (m := STOP_CALL.search(r.path))]
    per_instance: dict[tuple[str, str], int] = {}
    unannounced, no_intent = [], []
    for pod, at in calls:
        intents = [a for a in audit if a["pod_id"] == pod
                   and a["intent_at"] <= at + timedelta(seconds=1)]
        if not intents:
            no_intent.append({"pod": pod, "at": at.isoformat()})
            continue
        base = max(intents, key=lambda a: a["intent_at"])["instance_id"].partition("#")[0]
        per_instance[(base, pod)] = per_instance.get((base, pod), 0) + 1
        said = {f"{base}:enforce:{pod}:stopped",
                f"{base}:enforce:{pod}:refused:unknown_after_crash"}
        if not said & received:
            unannounced.append({"pod": pod, "instance": base, "at": at.isoformat()})
    double = [{"instance": i, "pod": p, "calls": n} for (i, p), n in per_instance.items() if n > 1]
    results: dict[str, int] = {}
    for a in audit:
        results[str(a["result"])] = results.get(str(a["result"]), 0) + 1
    # intents settled "unknown" (pod still running at reconcile) that never
    # reached RunPod: the pod is left running for the rest of that instance
    unknown_no_call = [
        {"pod": a["pod_id"], "instance": a["instance_id"]} for a in audit
        if a["result"] == "unknown"
        and not any(p == a["pod_id"] and at >= a["intent_at"] for p, at in calls)]
    return {"stop_calls": len(calls), "pods_stopped": len({p for p, _ in calls}),
            "unknown_without_call": unknown_no_call,
            "unannounced": unannounced, "double": double, "without_intent": no_intent,
            "intent_results": results}


def notifier_waits(kills: list[Kill], hits: list[Hit]) -> dict[str, Any]:
    """Per kill with alerts pending: restart -> first POST of one of them (the
    notifier resumed) and -> first 2xx of one (delivered); "promised": the
    head row's lease/backoff at the kill, counted from the restart."""
    samples: list[dict[str, Any]] = []
    for k in kills:
        if not k.pending or k.restarted is None:
            continue
        pend, t0 = set(k.pending), k.restarted
        after = [h for h in hits if h.wall >= t0 and h.alert_id in pend]
        post = next((h.wall for h in after), None)
        ok = next((h.wall for h in after if h.ok), None)
        due = max(t0, k.head_due or 0.0)
        samples.append({
            "kill": k.n, "pending": len(pend), "promised_s": round(due - t0, 3),
            "to_post_s": None if post is None else round(post - t0, 3),
            "to_delivery_s": None if ok is None else round(ok - t0, 3),
            "beyond_promise_s": None if post is None else round(max(0.0, post - due), 3),
        })

    def stat(key: str) -> dict[str, float | None]:
        xs = [s[key] for s in samples if s[key] is not None]
        return {"max": max(xs, default=None),
                "median": round(statistics.median(xs), 3) if xs else None}

    return {"kills_with_pending": len(samples),
            "never_resumed": sum(1 for s in samples if s["to_delivery_s"] is None),
            "to_post": stat("to_post_s"), "to_delivery": stat("to_delivery_s"),
            "beyond_promise": stat("beyond_promise_s"), "samples": samples}
