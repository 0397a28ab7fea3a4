"""Time and peak memory of fetching + parsing a large billing answer.

    .venv/bin/python -m bench.parse_billing            # ~30 s
    .venv/bin/python bench/parse_billing.py --sizes 10000

For 10,000 and 100,000 pod billing records, v1 (a JSON array of
``{"amount", "time", "podId", ...}``) and v2 (``{"records": [{"startTime",
"endTime", "podId", "totalAmount", ...}], "metadata": ...}``), each served by
the simulator on loopback as one 200 answer: one fresh subprocess per case
runs one ``billing`` call of

- ``after``: this branch's adapter (``make_api(version).billing("pods", ...)``:
  strict whole-answer pydantic validation + range/duplicate/plausibility checks);
- ``before``: main's ``RunPodClient.billing_pods`` (v1 only: main has no v2),
  loaded from ``git show main:daemon/adapters/runpod.py``;
- ``msgspec`` (an experiment, only when msgspec is installed; it is not a
  dependency): the same fetch and record checks with msgspec Structs (strict,
  the same time pattern) in place of the pydantic TypeAdapter.

Each subprocess reports wall time of the call (fetch over loopback + parse),
its peak RSS (``VmHWM``) and the peak before the call (after imports), so
"delta" is what the call itself added at its peak. The records are distinct
(pods x hours) and inside the requested range, so the strict parser accepts
them. Results: printed, and written to bench/results/parse_billing.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, table, write_results

START = datetime(2026, 11, 1, tzinfo=UTC)
HOURS = 100  # records = pods x HOURS


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def body(version: str, n: int) -> str:
    """A valid answer of ``n`` records: ``n / HOURS`` pods x ``HOURS`` hours."""
    pods = max(1, n // HOURS)
    recs: list[dict[str, Any]] = []
    for h in range(HOURS):
        t = START + timedelta(hours=h)
        s, e = iso(t), iso(t + timedelta(hours=1))
        for p in range(pods):
            amount = round(0.5 + (p % 17) * 0.137, 6)
            pid = f"pod{p:06d}xyzabc"
            if version == "v1":
                recs.append({"amount": amount, "time": s, "podId": pid,
                             "timeBilledMs": 3_600_000, "diskSpaceBilledGb": 70})
            else:
                recs.append({"startTime": s, "endTime": e, "podId": pid, "totalAmount": amount,
                             "gpuAmount": amount, "cpuAmount": 0, "diskAmount": 0})
    if version == "v1":
        return json.dumps(recs, separators=(",", ":"))
    meta = {"recordCount": len(recs), "query": {"startTime": iso(START), "bucketSize": "hour"}}
    return json.dumps({"records": recs, "metadata": meta}, separators=(",", ":"))


# ------------------------------------------------------------------ child


def _vm(field: str) -> float:
    """``VmHWM``/``VmRSS`` of this process in MB. Not ``ru_maxrss``: Linux carries
    that across ``execve`` from the parent, which holds the served bodies."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(impl: str, version: str, url: str, n: int) -> None:
    import time

    end = START + timedelta(hours=HOURS)
    if impl == "after":
        from daemon.adapters.runpod import make_api

        api: Any = make_api(version, "bench-key", base_url=url)  # type: ignore[arg-type]

        def call() -> int:
            return len(api.billing("pods", bucket="hour", start=START, end=end))
    elif impl == "msgspec":
        call = _msgspec_call(version, url, end)
    else:
        import importlib.util

        src = subprocess.run(["git", "show", "main:daemon/adapters/runpod.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        path = Path(tempfile.mkdtemp()) / "runpod_main.py"
        path.write_text(src, encoding="utf-8")
        spec = importlib.util.spec_from_file_location("runpod_main", path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["runpod_main"] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        client = mod.RunPodClient("bench-key", url)

        def call() -> int:
            return len(client.billing_pods(bucket_size="hour", grouping="podId", start=START,
                                           end=end))
    base = _vm("VmHWM")
    t0 = time.perf_counter()
    got = call()
    secs = time.perf_counter() - t0
    print(json.dumps({"records": got, "seconds": secs, "peak_rss_mb": _vm("VmHWM"),
                      "base_rss_mb": base}))


def _msgspec_call(version: str, url: str, end: datetime) -> Any:
    """The experiment: the same fetch and record checks, but msgspec Structs
    (strict, same RFC 3339 pattern) instead of the pydantic TypeAdapter."""
    import httpx
    import msgspec

    from bench import _msgspec_models as m
    from daemon.adapters.runpod.parse import RecordChecker, check_all

    params = {"bucketSize": "hour", "startTime": iso(START), "endTime": iso(end)}
    if version == "v1":
        params["grouping"] = "podId"

    def call() -> int:
        raw = httpx.get(url + "/billing/pods", params=params,
                        headers={"Authorization": "Bearer bench-key"}).content
        ck = RecordChecker("pods", "hour", START, end)
        if version == "v1":
            items: list[Any] = msgspec.json.decode(raw, type=list[m.V1], strict=True)
            del raw
            return len(check_all(items, lambda i, r: ck.record(
                i, r.podId or "", r.time, None, ck.amount(i, "amount", r.amount))))
        items = msgspec.json.decode(raw, type=m.Answer, strict=True).records
        del raw
        return len(check_all(items, lambda i, r: ck.record(
            i, r.podId, r.startTime, r.endTime, ck.amount(i, "totalAmount", r.totalAmount))))

    return call


# ------------------------------------------------------------------ parent


def run(sizes: list[int]) -> list[dict[str, Any]]:
    from daemon.simulator import Simulator

    rows: list[dict[str, Any]] = []
    with Simulator({"pods": []}, api_key="bench-key") as sim:
        for n in sizes:
            for version in ("v1", "v2"):
                text = body(version, n)
                impls = [*(["before"] if version == "v1" else []), "after",
                         *(["msgspec"] if _has_msgspec() else [])]
                for impl in impls:
                    sim.clear_faults()
                    sim.fail(f"/{version}/billing/pods", status=200, body=text, times=1)
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", impl, version,
                         sim.base_url_for(version), str(n)],
                        capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
                    if out.returncode != 0:
                        raise SystemExit(f"{impl} {version} {n}: {out.stderr[-2000:]}")
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append({"version": version, "impl": impl, "records": n,
                                 "body_mb": round(len(text) / 1e6, 2), **res})
    return rows


def _has_msgspec() -> bool:
    import importlib.util

    return importlib.util.find_spec("msgspec") is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--child", nargs=4, metavar=("IMPL", "VERSION", "URL", "N"))
    args = ap.parse_args()
    if args.child:
        impl, version, url, n = args.child
        child(impl, version, url, int(n))
        return
    rows = run([int(s) for s in args.sizes.split(",")])
    print(table(["case", "records", "body MB", "seconds", "peak RSS MB", "delta MB"],
                [[f"{r['version']} {r['impl']}", r["records"], r["body_mb"], r["seconds"],
                  r["peak_rss_mb"], r["peak_rss_mb"] - r["base_rss_mb"]] for r in rows]))
    path = write_results("parse_billing", {"rows": rows})
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
