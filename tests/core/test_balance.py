"""Prepaid balance alerts: what a user of `balance:` sees, reading by reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.balance import (
    BalanceArming,
    BalanceFinding,
    BalanceRule,
    evaluate_balance,
    fmt_duration,
    parse_duration,
)
from daemon.core.model import Balance
from daemon.core.payload_pods import BalanceLevel, balance_payload
from daemon.core.wording import ZERO_BALANCE_WARNING

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ACC = "research"
RULE = BalanceRule(below_usd=(100, 25), runway_below=("24h", "6h"))


class Reader:
    """The daemon's balance check in miniature: arming stored between readings
    (through JSON, as the meta table holds it)."""

    def __init__(self, rule: BalanceRule = RULE) -> None:
        self.rule = rule
        self.stored = BalanceArming().to_json()
        self.log: list[BalanceFinding] = []

    def read(self, minutes: float, balance: float, burn: float = 0.0) -> list[BalanceFinding]:
        now = T0 + timedelta(minutes=minutes)
        found, arming = evaluate_balance(
            self.rule, ACC, Balance(balance, burn), BalanceArming.from_json(self.stored), now
        )
        self.stored = arming.to_json()
        self.log.extend(found)
        return found

    def ids(self) -> list[str]:
        return list(dict.fromkeys(f.id for f in self.log))


def test_crossing_fires_once_then_stays_quiet() -> None:
    r = Reader(BalanceRule(below_usd=(100,)))
    assert r.read(0, 150) == []
    [f] = r.read(5, 99.5)
    assert f.id == "research:balance:below_usd:100:2026-11-24T12:05:00Z"
    assert (f.level.type, f.level.value) == ("below_usd", 100)
    for m in range(10, 100, 5):
        assert r.read(m, 99.5 - m / 10) == []
    assert r.ids() == [f.id]
    # the stored arming remembers when the level was crossed (for `status`)
    assert BalanceArming.from_json(r.stored).crossed == {"below_usd:100": f.crossed_at}


def test_exactly_at_the_level_is_not_below() -> None:
    assert Reader(BalanceRule(below_usd=(100,))).read(0, 100.0) == []


def test_top_up_rearms_and_the_next_crossing_has_a_new_id() -> None:
    r = Reader(BalanceRule(below_usd=(100,)))
    r.read(0, 90)
    r.read(5, 80)
    r.read(10, 500)  # top-up
    r.read(15, 120)
    [again] = r.read(20, 95)
    assert r.ids() == [
        "research:balance:below_usd:100:2026-11-24T12:00:00Z",
        "research:balance:below_usd:100:2026-11-24T12:20:00Z",
    ]
    assert again.crossed_at == T0 + timedelta(minutes=20)


def test_several_levels_at_once_give_one_finding_for_the_most_urgent() -> None:
    r = Reader()
    [f] = r.read(0, 10)  # under 100 and under 25 at the first reading; nothing burns
    assert f.id == "research:balance:below_usd:25:2026-11-24T12:00:00Z"
    # the less urgent level was marked too: climbing to 50 re-arms 25 only
    assert r.read(5, 50) == []
    [g] = r.read(10, 20)
    assert g.level.value == 25
    assert r.read(15, 99) == []  # 25 re-armed again, 100 still crossed: quiet


def test_less_urgent_level_does_not_fire_later_in_the_same_descent() -> None:
    r = Reader(BalanceRule(below_usd=(100, 50, 25)))
    r.read(0, 20)
    for m, value in enumerate((30, 40, 60, 45, 30), start=1):
        r.read(m * 5, value)
    # 20 -> 30 re-arms 25 only; 60 re-arms 50 and 25; 45 crosses 50 again
    assert [f.level.value for f in r.log] == [25, 50]


def test_runway_fires_on_burn_and_rearms_on_lower_burn() -> None:
    r = Reader(BalanceRule(runway_below=("24h", "6h")))
    assert r.read(0, 100, burn=2) == []  # 50h
    [f] = r.read(5, 100, burn=5)  # 20h
    assert f.id == "research:balance:runway_below:24h:2026-11-24T12:05:00Z"
    assert f.runway_hours == 20
    assert sent(f)["level"] == {"type": "runway_below", "value": "24h"}
    assert r.read(10, 100, burn=1) == []  # 100h: armed again
    [g] = r.read(15, 100, burn=25)  # 4h: both at once, the shorter one fires
    assert g.level.value == "6h"


def test_zero_burn_has_no_runway_and_crosses_no_runway_level() -> None:
    r = Reader(BalanceRule(runway_below=("6h",)))
    [f] = r.read(0, 10, burn=5)
    assert r.read(5, 10, burn=0) == []  # nothing burns: the runway is endless, re-armed
    assert BalanceArming.from_json(r.stored).crossed == {}
    [g] = r.read(10, 10, burn=5)
    assert g.id != f.id
    assert Balance(10, 0).runway_hours is None


def test_usd_and_runway_fire_independently() -> None:
    r = Reader()
    found = r.read(0, 20, burn=10)  # under 25 and 2h of runway
    assert sorted(f.level.key for f in found) == ["below_usd:25", "runway_below:6h"]


def test_payload_fields() -> None:
    [f] = Reader(BalanceRule(below_usd=(25,))).read(0, 24.456, burn=3.5)
    body = sent(f, T0 + timedelta(seconds=3))
    assert {k: v for k, v in body.items() if k != "text"} == {
        "id": "research:balance:below_usd:25:2026-11-24T12:00:00Z",
        "kind": "balance",
        "account": "research",
        "balance_usd": 24.46,
        "spend_per_hr_usd": 3.5,
        "runway_hours": 6.99,
        "level": {"type": "below_usd", "value": 25},
        "fired_at": "2026-11-24T12:00:03Z",
    }
    assert body["text"].endswith(ZERO_BALANCE_WARNING)
    [g] = Reader(BalanceRule(below_usd=(12.5,))).read(0, 1)
    assert sent(g)["runway_hours"] is None
    assert sent(g)["level"] == {"type": "below_usd", "value": 12.5}
    assert g.id == "research:balance:below_usd:12.5:2026-11-24T12:00:00Z"


def test_removed_level_is_forgotten() -> None:
    _, arming = evaluate_balance(RULE, ACC, Balance(10, 0), BalanceArming(), T0)
    _, arming = evaluate_balance(BalanceRule(below_usd=(25,)), ACC, Balance(10, 0), arming, T0)
    assert set(arming.crossed) == {"below_usd:25"}


@pytest.mark.parametrize(
    ("written", "label"),
    [("24h", "24h"), (" 6h", "6h"), ("90m", "90m"), ("2d", "2d"), ("1w", "1w")],
)
def test_runway_levels_are_written_like_the_config(written: str, label: str) -> None:
    rule = BalanceRule(runway_below=(written,))
    assert [lv.label for lv in rule.levels] == [label]


@pytest.mark.parametrize(
    ("td", "label"),
    [(timedelta(hours=24), "1d"), (timedelta(hours=36), "36h"), (timedelta(seconds=90), "90s")],
)
def test_fmt_duration_round_trips(td: timedelta, label: str) -> None:
    assert fmt_duration(td) == label
    assert parse_duration(label) == td


def test_timedelta_runways_and_bad_durations() -> None:
    assert [lv.label for lv in BalanceRule(runway_below=(timedelta(hours=36),)).levels] == ["36h"]
    with pytest.raises(ValueError, match="not a duration"):
        BalanceRule(runway_below=("6 hours",))
    with pytest.raises(ValueError, match="positive"):
        BalanceRule(runway_below=("0h",))


@pytest.mark.parametrize("bad", ["[]", "{", '{"below_usd:25": "yesterday"}', '{"x": "2026-11-24"}'])
def test_bad_arming_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"arming|Expecting|isoformat|zone"):
        BalanceArming.from_json(bad)


def test_arming_round_trip_keeps_the_crossing_time() -> None:
    arming = BalanceArming({"below_usd:25": T0, "runway_below:6h": T0 + timedelta(hours=1)})
    assert BalanceArming.from_json(arming.to_json()) == arming
    assert BalanceArming.from_json(None) == BalanceArming()


# --------------------------------------------------------------------------- property

USD = (100.0, 50.0, 25.0)
RUNWAY_H = (24.0, 6.0, 1.0)
READING = st.tuples(
    st.sampled_from([0.0, 10.0, 24.0, 25.0, 30.0, 49.0, 50.0, 75.0, 100.0, 150.0]),
    st.sampled_from([0.0, 0.5, 1.0, 4.0, 30.0]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(READING, min_size=1, max_size=40))
def test_each_level_fires_once_per_descent_and_only_the_most_urgent(
    readings: list[tuple[float, float]],
) -> None:
    r = Reader(BalanceRule(below_usd=USD, runway_below=("24h", "6h", "1h")))
    prev_usd: set[float] = set()
    prev_run: set[float] = set()
    for i, (value, burn) in enumerate(readings):
        found = r.read(i * 5, value, burn)
        runway = None if burn == 0 else value / burn
        now_usd = {lv for lv in USD if value < lv}
        now_run = {lv for lv in RUNWAY_H if runway is not None and runway < lv}
        want = []
        if now_usd - prev_usd:
            want.append(("below_usd", min(now_usd)))
        if now_run - prev_run:
            want.append(("runway_below", min(now_run)))
        assert [(f.level.type, f.level.amount) for f in found] == want
        prev_usd, prev_run = now_usd, now_run


def sent(f: BalanceFinding, at: datetime = T0) -> dict[str, object]:
    """The payload the pipeline sends for ``f`` (core/payload_pods.py)."""
    balance = Balance(f.balance_usd, f.spend_per_hr_usd)
    record = balance_payload(
        account=f.account, balance=balance, level=BalanceLevel(f.level.type, f.level.value),
        crossed_at=f.crossed_at, fired_at=at,
    )
    assert record.id == f.id
    return record.to_json()
