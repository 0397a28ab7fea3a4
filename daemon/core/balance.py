"""Prepaid balance alerts: pure decisions over one ``Balance`` reading.

No IO and no clock here: the caller passes the account's balance (GraphQL
``myself``), the arming it stored after the previous reading, and ``now``.
Contract "Balance".

* A ``below_usd`` level is crossed while ``balance < level``; a
  ``runway_below`` level while ``runway_hours < level`` where runway is
  ``balance / spend_per_hr`` (None when nothing burns: then no runway level is
  crossed, as with an endless runway).
* ``kind: balance`` fires once per crossing: a level crossed now and not
  crossed at the previous reading fires; it is armed again once the value is
  back at or above the level (a top-up; for runway also a lower burn).
* Several levels of one type crossed at once give one finding, for the most
  urgent (lowest amount, shortest runway). The others are recorded as crossed
  too, so they do not fire later in the same descent; nor does a newly
  crossed level while a more urgent one of its type stays crossed.
* Id ``{account}:balance:{below_usd:25|runway_below:6h}:{crossed at}``, the
  crossing time being ``now`` of the reading that crossed, ISO-8601 UTC.
  It is kept in :class:`BalanceArming`, so the id is stable for as long as
  the level stays crossed.

The caller stores :meth:`BalanceArming.to_json` (e.g. in the meta table) and
gives :meth:`BalanceArming.from_json` of it to the next call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from daemon.core.model import Balance, fmt_num, iso_z

LevelType = Literal["below_usd", "runway_below"]

#: What every balance message must tell people (contract "Balance").

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"6h"`` -> 6 hours, as the config writes durations (s, m, h, d, w).
    Raises ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30m, 6h, 2d")
    return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


def fmt_duration(td: timedelta) -> str:
    """6 hours -> ``"6h"``, 90 minutes -> ``"90m"``, 2 days -> ``"2d"``: the
    largest of d, h, m, s that divides it. Raises ValueError for a
    non-positive or fractional-second duration."""
    secs = td.total_seconds()
    if secs <= 0 or not secs.is_integer():
        raise ValueError(f"{td!r} is not a whole positive number of seconds")
    for unit in ("d", "h", "m", "s"):
        if secs % _UNIT_SECONDS[unit] == 0:
            return f"{int(secs) // _UNIT_SECONDS[unit]}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


@dataclass(frozen=True, slots=True)
class Level:
    """One configured level. ``amount`` is USD (``below_usd``) or hours
    (``runway_below``); ``label`` is how ids and payloads write it ("25", "6h")."""

    type: LevelType
    amount: float
    label: str

    @property
    def key(self) -> str:
        """``below_usd:25`` / ``runway_below:6h``: the level part of the id."""
        return f"{self.type}:{self.label}"

    @property
    def value(self) -> float | int | str:
        """The payload's ``level.value``: a number for USD, a duration for runway."""
        if self.type == "runway_below":
            return self.label
        return int(self.amount) if float(self.amount).is_integer() else self.amount

    def crossed_by(self, balance: Balance) -> bool:
        if self.type == "below_usd":
            return balance.balance < self.amount
        runway = balance.runway_hours
        return runway is not None and runway < self.amount


@dataclass(frozen=True, slots=True)
class BalanceRule:
    """The ``balance:`` section: USD amounts, and runways as the config writes
    them (``"24h"``, kept so in ids) or as ``timedelta`` (written with
    :func:`fmt_duration`). Raises ValueError for a runway that is not a
    positive duration."""

    below_usd: tuple[float, ...] = ()
    runway_below: tuple[str | timedelta, ...] = ()
    levels: tuple[Level, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = [Level("below_usd", float(a), fmt_num(a)) for a in self.below_usd]
        for r in self.runway_below:
            # a written duration keeps its spelling ("24h" stays "24h"), only trimmed
            td = parse_duration(r) if isinstance(r, str) else r
            if td <= timedelta(0):
                raise ValueError(f"runway_below {r!r} is not a positive duration")
            label = fmt_duration(td) if isinstance(r, timedelta) else "".join(r.split())
            out.append(Level("runway_below", td.total_seconds() / 3600, label))
        object.__setattr__(self, "levels", tuple(out))


@dataclass(frozen=True, slots=True)
class BalanceArming:
    """Which levels are crossed now and since when: ``{level key: crossed at}``.
    A level absent from ``crossed`` is armed. Treat as immutable."""

    crossed: Mapping[str, datetime] = field(default_factory=dict)

    def to_json(self) -> str:
        """A JSON object ``{"below_usd:25": "2026-11-24T12:00:00+00:00", ...}``."""
        data = {k: t.isoformat() for k, t in sorted(self.crossed.items())}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> BalanceArming:
        """The arming stored by :meth:`to_json`; all armed for None or empty.
        Raises ValueError when ``text`` is not such an object."""
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("balance arming is not a JSON object")
        crossed: dict[str, datetime] = {}
        for key, value in data.items():
            t = datetime.fromisoformat(str(value))
            if t.tzinfo is None:
                raise ValueError("balance arming time without a zone")
            crossed[str(key)] = t
        return cls(crossed)


@dataclass(frozen=True, slots=True)
class BalanceFinding:
    """A crossed level, before dedupe. ``runway_hours`` is None when nothing burns."""

    id: str
    account: str
    level: Level
    crossed_at: datetime
    balance_usd: float
    spend_per_hr_usd: float
    runway_hours: float | None

    @property
    def kind(self) -> Literal["balance"]:
        return "balance"


def evaluate_balance(
    rule: BalanceRule,
    account: str,
    balance: Balance,
    armed: BalanceArming,
    now: datetime,
) -> tuple[list[BalanceFinding], BalanceArming]:
    """The findings of one balance reading and the arming to store after it.

    At most one finding per level type (so at most two). A finding is
    repeated with the same id only if the caller does not store the returned
    arming; store it after the alert is queued. Levels that the rule no longer
    names are forgotten.
    """
    findings: list[BalanceFinding] = []
    crossed: dict[str, datetime] = {}
    for kind in ("below_usd", "runway_below"):
        levels = [lv for lv in rule.levels if lv.type == kind and lv.crossed_by(balance)]
        fresh = [lv for lv in levels if lv.key not in armed.crossed]
        for lv in levels:
            crossed[lv.key] = armed.crossed.get(lv.key, now)
        top = _most_urgent(levels)
        if top is not None and top in fresh:
            findings.append(_finding(account, top, balance, now))
    return findings, BalanceArming(crossed)


def _most_urgent(levels: Sequence[Level]) -> Level | None:
    # lowest amount first; equal amounts (24h and 1d) by label, so the choice is stable
    return min(levels, key=lambda lv: (lv.amount, lv.label), default=None)


def _finding(account: str, level: Level, balance: Balance, now: datetime) -> BalanceFinding:
    return BalanceFinding(
        id=f"{account}:balance:{level.key}:{iso_z(now)}",
        account=account,
        level=level,
        crossed_at=now,
        balance_usd=balance.balance,
        spend_per_hr_usd=balance.spend_per_hr,
        runway_hours=balance.runway_hours,
    )
