"""Slack Block Kit for every alert kind, from the payload dict.

Times are shown in the display zone (``Mon 24 Nov 15:05 CET``); ids stay as
stored. Slack limits are respected: a header holds 150 characters, a section
3000, a field 2000, at most 10 fields per section and 50 blocks per message.
User-supplied text is escaped for mrkdwn (``&``, ``<``, ``>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from daemon.core.headline import (
    enforcement_line,
    headline,
    idle_line,
    level_text,
    runway_text,
    summary_line,
    summary_rest,
    summary_top_line,
    uptime_line,
)
from daemon.core.wording import (
    DEFAULT_CONSOLE_URL,
    ZERO_BALANCE_WARNING,
    action_text,
    console_link,
    group_label,
    local_time,
    money,
    pct,
    pod_of,
    progress_bar,
    rate,
    sparkline,
    window_label,
)

P = Mapping[str, Any]
Block = dict[str, Any]


def _e(s: object) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text[:3000])}


def _fields(pairs: Sequence[tuple[str, str]]) -> Block:
    return {"type": "section", "fields": [_mrkdwn(f"*{k}*\n{v}"[:2000]) for k, v in pairs[:10]]}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text[:3000])]}


def _lines_sections(title: str, lines: Sequence[str]) -> list[Block]:
    """``*title*`` and the lines, split over several sections when long."""
    out: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > 2800 and chunk:
            out.append(_section((f"*{title}*\n" if not out else "") + "\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        out.append(_section((f"*{title}*\n" if not out else "") + "\n".join(chunk)))
    return out


def _footer(p: P, zone: ZoneInfo, console_url: str) -> Block:
    pod = pod_of(p)
    link_text = "Open pod in RunPod console" if pod else "Open RunPod console"
    return _context(
        f"<{console_link(p, console_url)}|{link_text}> · fired "
        f"{local_time(p.get('fired_at'), zone)} · id `{_e(p.get('id'))}`"
    )


# --------------------------------------------------------------------------- budget kinds


def _enforcement_section(p: P) -> Block:
    enf = p.get("enforcement") or {}
    head = f"*Enforcement* at {pct(enf.get('at_percent'))}" + (
        " (dry run: nothing is stopped)" if enf.get("dry_run") else ""
    )
    lines = []
    for a in (enf.get("pods") or [])[:20]:
        who = f"{a.get('pod_name')} ({a.get('pod_id')})" if a.get("pod_name") else a.get("pod_id")
        detail = f" — {a.get('detail')}" if a.get("detail") else ""
        lines.append(f"• {_e(who)}: {_e(action_text(str(a.get('result'))))}{_e(detail)}")
    if not lines:
        lines.append(_e(enforcement_line(p)))
    return _section(head + "\n" + "\n".join(lines))


def _budget_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    kind = p.get("kind")
    blocks: list[Block] = [_header(headline(p))]
    blocks.append(
        _section(
            f"*{money(p.get('spend_usd'))}* of *{money(p.get('limit_usd'))}* "
            f"({pct(p.get('percent'))}) — budget *{_e(p.get('budget'))}*\n"
            f"`{progress_bar(float(p.get('percent') or 0.0))}`"
        )
    )
    pairs: list[tuple[str, str]] = [
        ("Budget", f"{_e(p.get('budget'))} (account {_e(p.get('account'))})"),
        ("Group", _e(group_label(p.get("group")))),
        ("Window", _e(window_label(p.get("window"), zone))),
        (
            "Spend / limit",
            f"{money(p.get('spend_usd'))} / {money(p.get('limit_usd'))} ({pct(p.get('percent'))})",
        ),
    ]
    if kind == "forecast":
        pairs.append(("Threshold", "forecast (projected to reach the limit)"))
    elif kind == "enforcement":
        pairs.append(("Enforce at", pct(p.get("threshold_percent"))))
    else:
        pairs.append(("Threshold", pct(p.get("threshold_percent"))))
    if p.get("forecast_usd") is not None:
        pairs.append(("Forecast", f"{money(p.get('forecast_usd'))} by window end"))
    blocks.append(_fields(pairs))
    contributors = p.get("top_contributors") or []
    if contributors:
        lines = [f"• {_e(c.get('label'))}: {money(c.get('spend_usd'))}" for c in contributors[:10]]
        blocks.append(_section("*Top contributors*\n" + "\n".join(lines)))
    if kind == "enforcement":
        blocks.append(_enforcement_section(p))
    blocks.append(_footer(p, zone, console_url))
    return blocks


# --------------------------------------------------------------------------- pods, balance


def _pod_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    """``idle`` and ``uptime``: what the pod costs, which pod, since when."""
    line = idle_line(p) if p.get("kind") == "idle" else uptime_line(p)
    who = _e(p.get("pod_name") or p.get("pod_id"))
    pairs = [
        ("Pod", f"{who} (`{_e(p.get('pod_id'))}`)"),
        ("GPU type", _e(p.get("gpu_type") or "CPU / unknown")),
        ("Cost", rate(p.get("cost_per_hr"))),
        ("Running since", local_time(p.get("run_started_at"), zone)),
        ("Guard", f"{_e(p.get('guard'))} (account {_e(p.get('account'))})"),
    ]
    if p.get("kind") == "idle":
        pairs.append(("Idle since", local_time(p.get("idle_since"), zone)))
    return [
        _header(headline(p)),
        _section(f"Pod *{who}* is {_e(line)}."),
        _fields(pairs),
        _footer(p, zone, console_url),
    ]


def _balance_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    pairs = [
        ("Balance", money(p.get("balance_usd"))),
        ("Burn", rate(p.get("spend_per_hr_usd"))),
        ("Runway", _e(runway_text(p))),
        ("Level crossed", _e(level_text(p))),
        ("Account", _e(p.get("account"))),
    ]
    return [
        _header(headline(p)),
        _fields(pairs),
        _section(f"*{ZERO_BALANCE_WARNING}* Top up or stop pods before the balance runs out."),
        _context(f"fired {local_time(p.get('fired_at'), zone)} · id `{_e(p.get('id'))}`"),
    ]


# --------------------------------------------------------------------------- digest, summary


def _digest_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    s = p.get("spend_usd") or {}
    blocks: list[Block] = [_header(headline(p))]
    blocks.append(
        _fields(
            [
                ("Today", money(s.get("today"))),
                ("Week to date", money(s.get("week_to_date"))),
                ("Month to date", money(s.get("month_to_date"))),
            ]
        )
    )
    families = p.get("by_family") or []
    if families:
        rows = [
            f"• {_e(f.get('family'))}: today {money(f.get('today'))} · week "
            f"{money(f.get('week_to_date'))} · month {money(f.get('month_to_date'))}"
            for f in families
        ]
        blocks.append(_section("*By resource family*\n" + "\n".join(rows)))
    for title, key in (
        ("Top pods", "top_pods"),
        ("Top GPU types", "top_gpu_types"),
        ("Top serverless endpoints", "top_endpoints"),
    ):
        items = p.get(key) or []
        if items:
            lines = [
                f"• {_e(i.get('label'))}: {money(i.get('spend_usd'))} "
                f"`{sparkline(i.get('hourly_usd') or [])}`"
                for i in items
            ]
            blocks.append(_section(f"*{title}*\n" + "\n".join(lines)))
    budgets = p.get("budgets") or []
    lines = [
        f"• {_e(b.get('budget'))} ({_e(b.get('group'))}, {_e(b.get('window'))}): "
        f"{money(b.get('spend_usd'))} / {money(b.get('limit_usd'))} "
        f"`{progress_bar(float(b.get('percent') or 0))}`"
        for b in budgets
    ]
    blocks += _lines_sections("Budgets", lines)
    blocks.append(
        _context(
            f"<{console_url}|Open RunPod console> · {_e(p.get('timezone', ''))} · "
            f"fired {local_time(p.get('fired_at'), zone)}"
        )
    )
    return blocks[:50]


def _summary_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    top = p.get("top") or []
    blocks: list[Block] = [_header(headline(p))]
    blocks.append(
        _section(
            f"*{_e(summary_line(p))}* in one message; top {len(top)} by percent:\n"
            + "\n".join(f"• {_e(summary_top_line(t))}" for t in top)
        )
    )
    rest = summary_rest(p)
    if rest:
        blocks += _lines_sections("Rest by budget", [f"• {_e(b)}: {n}" for b, n in rest])
    blocks.append(
        _context(
            f"<{console_url}|Open RunPod console> · fired {local_time(p.get('fired_at'), zone)}"
            " · each alert is also in `runpod-budget status`"
        )
    )
    return blocks[:50]


# --------------------------------------------------------------------------- health, test


def _health_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    body = _e(p.get("text", ""))
    if p.get("last_error"):
        body += f"\nLast error: `{_e(p.get('last_error'))}`"
    if p.get("state") == "unusable":
        body += "\n" + _e(_HEALTH_IMPACT.get(str(p.get("source") or "billing"), ""))
    return [
        _header(headline(p)),
        _section(body),
        _context(
            f"since {local_time(p.get('since'), zone)} · "
            f"fired {local_time(p.get('fired_at'), zone)}"
        ),
    ]


#: what an outage of each source means for the user (said on ``unusable``)
_HEALTH_IMPACT = {
    "billing": "Budgets are not being evaluated for this account until the API works again.",
    "pods": "Guards and enforcement see no pods for this account until the pod list works "
    "again; no pod is stopped meanwhile.",
    "balance": "Balance alerts are paused for this account; every other check keeps running.",
}


def _test_blocks(p: P, zone: ZoneInfo, console_url: str) -> list[Block]:
    return [
        _header(headline(p)),
        _section(_e(p.get("text", "This is a test message."))),
        _context(f"fired {local_time(p.get('fired_at'), zone)}"),
    ]


_BUILDERS: dict[str, Callable[[P, ZoneInfo, str], list[Block]]] = {
    "threshold": _budget_blocks,
    "forecast": _budget_blocks,
    "enforcement": _budget_blocks,
    "idle": _pod_blocks,
    "uptime": _pod_blocks,
    "balance": _balance_blocks,
    "digest": _digest_blocks,
    "summary": _summary_blocks,
    "health": _health_blocks,
    "test": _test_blocks,
}


def slack_blocks(
    payload: P, zone: ZoneInfo, console_url: str = DEFAULT_CONSOLE_URL
) -> tuple[str, list[Block]]:
    """``(fallback_text, blocks)`` for ``chat.postMessage`` / incoming webhooks."""
    kind = str(payload.get("kind"))
    build = _BUILDERS.get(kind)
    text = headline(payload)
    if build is None:
        return text, [_section(_e(text))]
    if kind in ("threshold", "forecast", "enforcement"):
        text = (
            f"{text}: {money(payload.get('spend_usd'))} / {money(payload.get('limit_usd'))}, "
            f"{group_label(payload.get('group'))}"
        )
    elif kind == "balance":
        text = f"{text}. {ZERO_BALANCE_WARNING}"
    return text, build(payload, zone, console_url)
