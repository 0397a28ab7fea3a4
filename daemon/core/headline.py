"""One line per alert saying what happened: a Slack header and fallback text,
the first console line. Pure; reads the payload dict (stored alerts included).
Times never appear here (they need the display zone; see ``wording.local_time``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from daemon.core.wording import (
    action_text,
    config_duration,
    duration,
    money,
    parse_time,
    pct,
    rate,
    refusal_text,
)

P = Mapping[str, Any]

_HEALTH_SOURCE = {"billing": "billing API", "pods": "pod list", "balance": "balance"}


def severity_emoji(p: P) -> str:
    kind = p.get("kind")
    fixed = {
        "forecast": "🔮",
        "enforcement": "🛑",
        "test": "🧪",
        "digest": "📊",
        "idle": "💤",
        "uptime": "⏱️",
        "balance": "🪫",
        "summary": "📚",
    }
    if kind in fixed:
        return fixed[str(kind)]
    if kind == "health":
        return "✅" if p.get("state") == "recovered" else "⚠️"
    percent = float(p.get("percent") or 0.0)
    if percent >= 100:
        return "🔴"
    if percent >= 80:
        return "🟠"
    return "🟡"


def pod_name(p: P) -> str:
    """``train-1`` or the pod id when the pod has no name."""
    return str(p.get("pod_name") or p.get("pod_id") or "?")


def gpu_util_text(p: P) -> str:
    u = p.get("gpu_util")
    return "GPU ?" if not isinstance(u, int | float) else f"GPU {pct(round(float(u), 1))}"


def idle_seconds(p: P) -> float | None:
    """How long the pod has been idle when the alert fired."""
    since, fired = parse_time(p.get("idle_since")), parse_time(p.get("fired_at"))
    return None if since is None or fired is None else (fired - since).total_seconds()


def idle_cost(p: P) -> float | None:
    """What the idle stretch has cost so far: cost per hour times idle hours."""
    secs, cost = idle_seconds(p), p.get("cost_per_hr")
    if secs is None or not isinstance(cost, int | float):
        return None
    # in decimal, rounded half up: $3.99/h for 2 h 10 min is $8.645, said $8.65
    exact = Decimal(str(cost)) * Decimal(max(0, round(secs))) / 3600
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def idle_line(p: P) -> str:
    """``idle for 2 h 10 min at $3.99/h ($8.65 so far), GPU 0%``."""
    return (
        f"idle for {duration(idle_seconds(p))} at {rate(p.get('cost_per_hr'))} "
        f"({money(idle_cost(p))} so far), {gpu_util_text(p)}"
    )


def uptime_line(p: P) -> str:
    """``running for 13 h 5 min (over 12 h) at $2.99/h``."""
    start, fired = parse_time(p.get("run_started_at")), parse_time(p.get("fired_at"))
    hours = p.get("uptime_hours")
    secs: float | None = None
    if start is not None and fired is not None:  # exact; uptime_hours is rounded
        secs = (fired - start).total_seconds()
    elif isinstance(hours, int | float):
        secs = float(hours) * 3600
    over = f" (over {config_duration(p['uptime_over'])})" if p.get("uptime_over") else ""
    return f"running for {duration(secs)}{over} at {rate(p.get('cost_per_hr'))}"


def runway_text(p: P) -> str:
    hours = p.get("runway_hours")
    if not isinstance(hours, int | float):
        return "no runway limit (nothing is burning)"
    return f"runway {duration(float(hours) * 3600)}"


def level_text(p: P) -> str:
    """``balance under $25`` / ``runway under 6 h``: the level that was crossed."""
    level = p.get("level") or {}
    if level.get("type") == "runway_below":
        return f"runway under {config_duration(level.get('value'))}"
    value = level.get("value")
    return f"balance under {money(value if isinstance(value, int | float) else None)}"


def enforcement_line(p: P) -> str:
    """What enforcement did, with the pod and a non-empty reason:
    ``stopped pod train-1``, ``left pod train-1 running: the pod is locked …``."""
    enf = p.get("enforcement") or {}
    # payloads before the enforcer added ``action`` only say dry_run
    action = str(p.get("action") or ("would_stop" if enf.get("dry_run") else "stopped"))
    pod = p.get("pod_name") or p.get("pod_id")
    target = f"pod {pod}" if pod else "no pod"
    reason = refusal_text(str(p.get("reason") or ""))
    if action == "stopped":
        return f"stopped {target}"
    if action == "would_stop":
        return f"dry run: would stop {target}"
    if action == "failed":
        return f"could not stop {target}: {_detail(p, enf) or reason}"
    if action == "unknown":
        return f"{target}: {refusal_text('unknown')}"
    if action == "refused":
        if not pod:
            return f"no pod stopped: {_detail(p, enf) or reason}"
        return f"left {target} running: {reason}"
    return f"{action_text(action)} {target}"


def _detail(p: P, enf: Mapping[str, Any]) -> str:
    pods = enf.get("pods") or []
    if pods and isinstance(pods[0], Mapping) and pods[0].get("detail"):
        return str(pods[0]["detail"])
    return str(enf.get("detail") or "")


def _health(p: P, emoji: str) -> str:
    what = _HEALTH_SOURCE.get(str(p.get("source") or "billing"), "data source")
    acc = p.get("account")
    if p.get("state") == "recovered":
        return f"{emoji} RunPod {what} recovered (account {acc})"
    return f"{emoji} RunPod {what} unusable (account {acc})"


def summary_line(p: P) -> str:
    """``23 budget alerts`` (``alerts`` when not every member is a budget alert)."""
    count = int(p.get("count") or 0)
    budget_kinds = {"threshold", "forecast", "enforcement"}
    kinds = {t.get("kind") for t in p.get("top") or [] if isinstance(t, Mapping)}
    noun = "budget alerts" if kinds and kinds <= budget_kinds else "alerts"
    return f"{count} {noun}"


def summary_top_line(t: Mapping[str, Any]) -> str:
    """``h100-daily · gpu=NVIDIA H100 (research): 130% — $390.00 of $300.00``."""
    where = f" · {t.get('group')}" if t.get("group") else ""
    head = f"{t.get('budget')}{where} ({t.get('account')})"
    if t.get("percent") is None:
        return f"{head}: {t.get('kind')}"
    return (
        f"{head}: {pct(t.get('percent'))} — {money(t.get('spend_usd'))} of "
        f"{money(t.get('limit_usd'))}"
    )


def summary_rest(p: P) -> list[tuple[str, int]]:
    """(budget, count) of the members not in ``top``, largest first."""
    shown: dict[str, int] = {}
    for t in p.get("top") or []:
        shown[str(t.get("budget"))] = shown.get(str(t.get("budget")), 0) + 1
    rest = [
        (str(b.get("budget")), int(b.get("count") or 0) - shown.get(str(b.get("budget")), 0))
        for b in p.get("by_budget") or []
    ]
    return [(b, n) for b, n in rest if n > 0]


def headline(p: P) -> str:
    """One line: what happened, for a header, a fallback text or a console line."""
    kind = p.get("kind")
    emoji = severity_emoji(p)
    budget = p.get("budget", "?")
    if kind == "threshold":
        over = float(p.get("percent") or 0) >= 100
        what = "over its limit" if over else f"crossed {pct(p.get('threshold_percent'))}"
        return f"{emoji} Budget {budget} {what} ({pct(p.get('percent'))})"
    if kind == "forecast":
        return (
            f"{emoji} Budget {budget} is forecast to reach its limit "
            f"({money(p.get('forecast_usd'))} of {money(p.get('limit_usd'))})"
        )
    if kind == "enforcement":
        if not p.get("limit_usd"):  # a guard's stop: no spend level to quote
            return f"{emoji} Guard {budget}: {enforcement_line(p)}"
        return f"{emoji} Budget {budget} at {pct(p.get('percent'))}: {enforcement_line(p)}"
    if kind == "idle":
        return f"{emoji} Pod {pod_name(p)} {idle_line(p)}"
    if kind == "uptime":
        return f"{emoji} Pod {pod_name(p)} {uptime_line(p)}"
    if kind == "balance":
        return (
            f"{emoji} RunPod {level_text(p)}: {money(p.get('balance_usd'))} left, "
            f"{runway_text(p)} (account {p.get('account')})"
        )
    if kind == "summary":
        return f"{emoji} {summary_line(p)}"
    if kind == "test":
        return f"{emoji} TEST message from runpod-budget (notifier {p.get('notifier', '?')})"
    if kind == "health":
        return _health(p, emoji)
    if kind == "digest":
        who = p.get("account") or "all accounts"
        return f"{emoji} RunPod spend {p.get('period', '')} digest, {who}, {p.get('date')}"
    return f"{emoji} runpod-budget: {kind}"
