"""Console text for every alert kind: a ``[KIND] headline`` line and, where it
helps, one indented detail line. Used by the console notifier, ``demo`` and
``check --dry-run``. Times are shown in the display zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from daemon.core.headline import (
    headline,
    level_text,
    runway_text,
    summary_rest,
    summary_top_line,
)
from daemon.core.wording import (
    ZERO_BALANCE_WARNING,
    console_link,
    group_label,
    local_time,
    money,
    pct,
    progress_bar,
    rate,
    window_label,
)

P = Mapping[str, Any]


def _budget(p: P, zone: ZoneInfo) -> str:
    parts = [
        f"{p.get('account')}/{p.get('budget')}",
        group_label(p.get("group")),
        window_label(p.get("window"), zone),
        f"{money(p.get('spend_usd'))} / {money(p.get('limit_usd'))}",
        progress_bar(float(p.get("percent") or 0.0)),
    ]
    if p.get("forecast_usd") is not None:
        parts.append(f"forecast {money(p.get('forecast_usd'))}")
    if p.get("kind") == "enforcement":
        enf = p.get("enforcement") or {}
        pods = ", ".join(f"{a.get('pod_id')}={a.get('result')}" for a in enf.get("pods") or [])
        parts.append(f"pods: {pods or 'none'}")
    return " · ".join(parts)


def _pod(p: P, zone: ZoneInfo) -> str:
    parts = [
        f"{p.get('account')}/{p.get('guard')}",
        f"pod {p.get('pod_name') or '?'} ({p.get('pod_id')})",
        str(p.get("gpu_type") or "CPU / unknown GPU"),
        f"running since {local_time(p.get('run_started_at'), zone)}",
    ]
    if p.get("kind") == "idle":
        parts.append(f"idle since {local_time(p.get('idle_since'), zone)}")
    parts.append(console_link(p))
    return " · ".join(parts)


def _balance(p: P, zone: ZoneInfo) -> str:
    return (
        f"balance {money(p.get('balance_usd'))} · burn {rate(p.get('spend_per_hr_usd'))} · "
        f"{runway_text(p)} · crossed: {level_text(p)} · {ZERO_BALANCE_WARNING}"
    )


def _digest(p: P, zone: ZoneInfo) -> str:
    s = p.get("spend_usd") or {}
    line = (
        f"today {money(s.get('today'))} · week {money(s.get('week_to_date'))} · "
        f"month {money(s.get('month_to_date'))}"
    )
    families = p.get("by_family") or []
    if families:
        line += " · month by family: " + ", ".join(
            f"{f.get('family')} {money(f.get('month_to_date'))}" for f in families
        )
    budgets = p.get("budgets") or []
    if budgets:
        line += " · " + ", ".join(f"{b.get('budget')} {pct(b.get('percent'))}" for b in budgets)
    return line


def _summary(p: P, zone: ZoneInfo) -> str:
    top = "; ".join(summary_top_line(t) for t in p.get("top") or [])
    line = f"top {len(p.get('top') or [])}: {top}"
    rest = summary_rest(p)
    if rest:
        line += " · rest by budget: " + ", ".join(f"{b} {n}" for b, n in rest)
    return line


def _health(p: P, zone: ZoneInfo) -> str:
    parts = [f"since {local_time(p.get('since'), zone)}"]
    if p.get("last_error"):
        parts.append(f"last error: {p.get('last_error')}")
    return " · ".join(parts)


_DETAIL = {
    "threshold": _budget,
    "forecast": _budget,
    "enforcement": _budget,
    "idle": _pod,
    "uptime": _pod,
    "balance": _balance,
    "digest": _digest,
    "summary": _summary,
    "health": _health,
}


def console_text(payload: P, zone: ZoneInfo) -> str:
    """One or two readable lines for ``payload``, times in ``zone``."""
    kind = payload.get("kind")
    first = f"[{str(kind).upper()}] "
    if kind == "test":
        first += str(payload.get("text") or headline(payload))
    else:
        first += headline(payload)
    detail = _DETAIL.get(str(kind))
    return first if detail is None else f"{first}\n    {detail(payload, zone)}"
