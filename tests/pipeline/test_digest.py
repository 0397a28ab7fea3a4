"""The digest job end to end: points stored by real cycles (simulator, SQLite
file), ``send_digest`` through the notifiers built from the config, the
recording receiver. One digest per local date, also across a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.pipeline.digest import build_digest, send_digest
from daemon.simulator import Simulator
from tests.pipeline.conftest import (
    HOOK,
    SLACK,
    T0,
    Daemon,
    H,
    M,
    day_budget,
    make_config,
    payloads,
    sqlite_url,
)
from tests.support.receiver import Receiver


def digests(rx: Receiver) -> list[dict[str, object]]:
    return [p for p in payloads(rx, HOOK) if p["kind"] == "digest"]


def test_one_digest_per_local_date_with_its_content(
    growing: Simulator, rx: Receiver, tmp_path: Path, version: str
) -> None:
    config = make_config(rx, [day_budget(thresholds=[100])], digest={"cron": "0 9 * * *"},
                         version=version)
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 9 * H)
        d.cycle()  # stores today's buckets (90 USD); no threshold due
        assert rx.requests == []

        assert send_digest(d.deps) == ["digest:all:2026-11-24"]
        (digest,) = digests(rx)
        assert len(rx.requests_to(SLACK)) == 1
        assert digest["id"] == "digest:all:2026-11-24"
        assert digest["date"] == "2026-11-24" and digest["timezone"] == "UTC"
        assert digest["spend_usd"] == {"today": 90.0, "week_to_date": 90.0,
                                       "month_to_date": 90.0}
        (top,) = digest["top_pods"]  # type: ignore[misc]
        assert top["label"] == "train-grow (pod-grow)"
        assert top["spend_usd"] == 90.0
        assert top["hourly_usd"] == [10.0] * 9 + [0.0] * 15
        (gpu,) = digest["top_gpu_types"]  # type: ignore[misc]
        assert gpu["label"] == "NVIDIA A100 80GB PCIe"
        (budget,) = digest["budgets"]  # type: ignore[misc]
        assert budget["budget"] == "daily" and budget["percent"] == 90.0
        hooks = rx.requests_to(HOOK)
        assert hooks[0].headers["webhook-id"] == digest["id"]

        # the same day again, later: nothing new
        d.clock.set(T0 + 15 * H)
        d.cycle()  # 150 USD: the 100 % threshold goes out, not another digest
        assert send_digest(d.deps) == []
        # and after a restart (a new store object on the same file)
        d.restart()
        assert send_digest(d.deps) == []
        assert len(digests(rx)) == 1

        # the next local date: a new digest
        d.clock.set(T0 + 24 * H + 9 * H)
        d.cycle()
        assert send_digest(d.deps) == ["digest:all:2026-11-25"]
        assert send_digest(d.deps) == []
    finally:
        d.close()
    assert [x["id"] for x in digests(rx)] == ["digest:all:2026-11-24", "digest:all:2026-11-25"]
    second = digests(rx)[1]
    assert second["spend_usd"]["today"] == 90.0  # type: ignore[index]
    assert second["spend_usd"]["week_to_date"] == 330.0  # type: ignore[index]  # Mon..Wed
    assert [p["kind"] for p in payloads(rx, HOOK)].count("threshold") == 1  # day 1 only


def test_digest_date_is_the_local_date_of_the_zone(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    config = make_config(rx, [day_budget()], timezone="Europe/Berlin",
                         digest={"cron": "30 0 * * *"})
    d = Daemon(growing, config, sqlite_url(tmp_path))
    try:
        d.clock.set(datetime(2026, 11, 24, 23, 30, tzinfo=UTC))  # 00:30 on the 25th in Berlin
        d.cycle()
        alert = build_digest(d.deps)
        assert alert is not None and alert.kind == "digest"
        assert alert.id == "digest:all:2026-11-25"
        assert alert.payload["timezone"] == "Europe/Berlin"
        # the Berlin day began at 23:00Z: 30 minutes of the pod so far
        assert alert.payload["spend_usd"]["today"] == 5.0
        assert send_digest(d.deps) == [alert.id]
        d.clock.advance(30 * M)
        assert send_digest(d.deps) == []
    finally:
        d.close()
    assert [x["id"] for x in digests(rx)] == ["digest:all:2026-11-25"]


def test_no_digest_without_a_digest_config(
    growing: Simulator, rx: Receiver, tmp_path: Path
) -> None:
    d = Daemon(growing, make_config(rx, [day_budget()]), sqlite_url(tmp_path))
    try:
        d.clock.set(T0 + 9 * H)
        d.cycle()
        assert build_digest(d.deps) is None
        assert send_digest(d.deps) == []
    finally:
        d.close()
    assert digests(rx) == []
