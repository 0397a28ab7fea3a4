"""The words every audience shares: money, percents, durations, local times,
group labels, refusal reasons and the one-line headline of each alert kind.

Pure: no IO, no clock. Layout (Slack blocks, console lines) lives next to
each notifier (``adapters/slack_blocks.py``, ``adapters/console_text.py``);
both read the payload dict and a display zone. Times in payloads and ids are
UTC ``Z``; people see them in the configured zone (``Mon 24 Nov 15:05 CET``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from daemon.core.model import Group, fmt_num
from daemon.core.payload import group_json

DEFAULT_CONSOLE_URL = "https://console.runpod.io/pods"
SPARK_CHARS = "▁▂▃▄▅▆▇█"
BAR_FULL = "▓"
BAR_EMPTY = "░"
#: said by every balance message (RunPod's documented behaviour at $0)
ZERO_BALANCE_WARNING = "At $0 RunPod stops every pod and terminates those without a network volume."
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Why enforcement left a pod alone, or what became of a stop: one sentence
# each, said positively ("the pod is locked"), never empty.
_REASON_TEXT: dict[str, str] = {
    "stale_data": "billing data is stale; pods are only stopped on fresh data",
    "pods_unavailable": "the pod list could not be read",
    "protected": "the pod is listed in except_pods",
    "not_running": "the pod is not running",
    "cap_reached": "max_stops_per_cycle was reached",
    "locked": "the pod is locked in RunPod (locked pods are never stopped)",
    "not_stoppable": "RunPod offers no stop action for this pod",
    "unknown_after_crash": "an earlier stop was interrupted; it is not repeated blindly",
    "already_stopped": "it was stopped once in this window and restarted since",
    "retries_exhausted": "every stop attempt failed; giving up for this window",
    "intent_exists": "another replica is stopping it",
    "unknown": "stop sent, outcome unknown: not retried blindly",
    "conflict": "RunPod refused the stop (409): the pod cannot be stopped now",
}
_ACTION_TEXT: dict[str, str] = {
    "stopped": "stopped",
    "would_stop": "would stop (dry run)",
    "refused": "left running",
    "failed": "stop failed",
    "unknown": "stop sent, outcome unknown",
}


def refusal_text(reason: str) -> str:
    """One sentence for a refusal / result reason; an unknown word is shown as
    itself, an empty one as ``no reason recorded``."""
    return _REASON_TEXT.get(reason) or reason or "no reason recorded"


def action_text(action: str) -> str:
    """``stopped``, ``would stop (dry run)``, ``left running``, ..."""
    return _ACTION_TEXT.get(action, action or "?")


# --------------------------------------------------------------------------- numbers


def money(x: float | None) -> str:
    """``$1,234.56``; ``—`` for None."""
    return "—" if x is None else f"${float(x):,.2f}"


def rate(x: float | None) -> str:
    """``$3.99/h``."""
    return "—" if x is None else f"{money(x)}/h"


def pct(x: float | None) -> str:
    """``80.46%``, ``80%``; ``—`` for None."""
    return "—" if x is None else f"{fmt_num(round(float(x), 2))}%"


def sparkline(values: Sequence[float]) -> str:
    """``▁▂▃▄▅▆▇█`` scaled from 0 to the largest value (negatives count as 0).
    Empty input gives ``""``; all zeros give ``▁…``."""
    vals = [max(0.0, float(v)) for v in values]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return SPARK_CHARS[0] * len(vals)
    last = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(last, round(v / top * last))] for v in vals)


def progress_bar(percent: float, width: int = 10) -> str:
    """``▓▓▓▓▓▓▓▓░░ 80%``: full at 100% and above; the label is floored (99.99%
    must not read "100%")."""
    p = max(0.0, float(percent))
    filled = min(width, int(p * width / 100.0 + 1e-9))
    return f"{BAR_FULL * filled}{BAR_EMPTY * (width - filled)} {int(p + 1e-9)}%"


def duration(seconds: float | None) -> str:
    """``2 h 10 min``, ``45 min``, ``3 d 4 h``, ``under 1 min``; ``—`` for None."""
    if seconds is None:
        return "—"
    minutes = int(max(0.0, float(seconds)) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min" if mins else "under 1 min"


def config_duration(text: object) -> str:
    """A configured duration for people: ``12h`` -> ``12 h``, ``30m`` -> ``30 min``."""
    m = _DURATION.match(str(text))
    if not m:
        return str(text)
    return duration(float(m.group(1)) * _UNIT_SECONDS[m.group(2)])


# --------------------------------------------------------------------------- times


def parse_time(value: object) -> datetime | None:
    """A payload time (``2026-11-24T14:05:12Z``) or datetime; None if unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def local_time(value: object, zone: ZoneInfo, *, with_zone: bool = True) -> str:
    """``Mon 24 Nov 15:05 CET`` in ``zone`` (English names whatever the locale);
    ``?`` when the value is not a time."""
    t = parse_time(value)
    if t is None:
        return "?"
    t = t.astimezone(zone)
    text = f"{_DAYS[t.weekday()]} {t.day} {_MONTHS[t.month - 1]} {t:%H:%M}"
    return f"{text} {t.tzname() or zone.key}" if with_zone else text


def window_label(w: Mapping[str, Any] | None, zone: ZoneInfo) -> str:
    """``day · Mon 24 Nov 00:00 → Tue 25 Nov 00:00 UTC`` (the zone said once)."""
    w = w or {}
    start = local_time(w.get("start"), zone, with_zone=False)
    end = local_time(w.get("end"), zone)
    return f"{w.get('size', '?')} · {start} → {end}"


# --------------------------------------------------------------------------- groups, links


def _group_dict(group: Group | Mapping[str, Any] | None) -> Mapping[str, Any]:
    return group_json(group) if isinstance(group, Group) else (group or {})


def _named(kind: str, ident: object, name: object) -> str:
    return f"{kind} {name} ({ident})" if name else f"{kind} {ident}"


def group_label(group: Group | Mapping[str, Any] | None) -> str:
    """A readable group: ``pod train-1 (abc123)``, ``endpoint sd-xl (ep1)``,
    ``volume data (vol1)``, ``GPU NVIDIA H100 …``, ``everything in scope``."""
    g = _group_dict(group)
    gpu = g.get("gpu_type")
    if g.get("pod_id"):
        label = _named("pod", g["pod_id"], g.get("pod_name"))
        return f"{label} · {gpu}" if gpu else label
    if g.get("endpoint_id"):
        return _named("endpoint", g["endpoint_id"], g.get("endpoint_name"))
    if g.get("volume_id"):
        return _named("volume", g["volume_id"], g.get("volume_name"))
    if gpu:
        return f"GPU {gpu}"
    return "everything in scope"


def group_key(group: Mapping[str, Any] | None) -> str:
    """The id form of a payload's group: ``pod=ID``, ``gpu=TYPE``, ``all`` ..."""
    g = group or {}
    return Group(
        pod_id=g.get("pod_id"),
        gpu_type=g.get("gpu_type"),
        endpoint_id=g.get("endpoint_id"),
        volume_id=g.get("volume_id"),
    ).key


def pod_of(payload: Mapping[str, Any]) -> str | None:
    """The pod an alert is about (guards, enforcement, per-pod budgets), if any."""
    pod = payload.get("pod_id") or (payload.get("group") or {}).get("pod_id")
    return str(pod) if pod else None


def console_link(payload: Mapping[str, Any], console_url: str = DEFAULT_CONSOLE_URL) -> str:
    """The pod's page in the RunPod console when the alert is about one pod,
    otherwise the pod list."""
    pod = pod_of(payload)
    return f"{console_url}?id={quote(pod, safe='')}" if pod else console_url
