"""Cron expressions as people write them, turned into APScheduler 3 triggers.

APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0 (its
issue #286). A digest at ``0 9 * * 1`` must come on Monday, so numeric
weekdays are rewritten to names before the trigger is built.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def crontab_weekdays(field: str) -> str:
    """Rewrite a crontab day-of-week field as APScheduler names: "1-5" ->
    "mon,tue,wed,thu,fri", "0,6" -> "sun,sat", "*/2" -> "sun,tue,thu,sat".
    Names ("mon-fri") pass through. Raises ValueError for numbers outside 0-7."""
    out: list[str] = []
    for item in field.split(","):
        base, _, step_s = item.partition("/")
        step = int(step_s) if step_s.isdigit() else 1
        if base == "*":
            lo, hi = 0, 6
        elif re.fullmatch(r"\d+-\d+", base):
            lo, hi = (int(x) for x in base.split("-"))
        elif base.isdigit():
            lo = hi = int(base)
        else:
            out.append(item)  # names are the same in both conventions
            continue
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
            raise ValueError(f"weekday {item!r} is out of range 0-7")
        out += [_DAYS[n] for n in range(lo, hi + 1, step)]
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str, zone: tzinfo) -> CronTrigger:
    """A trigger for a 5-field crontab expression in ``zone``. Raises ValueError."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r} is not a 5-field cron expression")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(dow) if dow != "*" else "*",
        timezone=zone,
    )
