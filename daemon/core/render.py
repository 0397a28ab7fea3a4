"""Payloads (the contract's webhook JSON) and how people see them.

Pure: no IO, no clock, no HTTP client imports. Two layers:

* ``*_payload`` functions build the JSON body of an alert (``Alert.payload``).
  ``threshold_payload`` is exactly the contract's webhook payload; extra keys
  (``top_contributors`` for aggregate budgets) only ever come after the
  contract's keys and are left out when empty.
* ``slack_blocks`` / ``console_text`` render *from a payload dict*, so an alert
  stored in the outbox can be re-rendered after a restart without the
  ``Finding`` it came from.

Kinds: ``threshold``, ``forecast``, ``enforcement``, ``digest``, ``test``,
``health``. Every payload has ``id``, ``kind`` and ``fired_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from daemon.core.model import Alert, Finding, Group, InstanceStatus, fmt_num, iso_z

DEFAULT_CONSOLE_URL = "https://console.runpod.io/pods"
SPARK_CHARS = "▁▂▃▄▅▆▇█"
BAR_FULL = "▓"
BAR_EMPTY = "░"

Payload = dict[str, Any]

# --------------------------------------------------------------------------- payloads


def _num(x: float) -> int | float:
    """Whole numbers as ``int`` (80), others as ``float`` (87.5)."""
    f = float(x)
    return int(f) if f.is_integer() else f


def _group_json(g: Group) -> dict[str, str | None]:
    return {"pod_id": g.pod_id, "pod_name": g.pod_name, "gpu_type": g.gpu_type}


def _base(status: InstanceStatus, alert_id: str, kind: str) -> Payload:
    w = status.window
    return {
        "id": alert_id,
        "kind": kind,
        "account": status.account,
        "budget": status.budget,
        "group": _group_json(status.group),
        "window": {"size": w.size, "start": iso_z(w.start), "end": iso_z(w.end)},
        "spend_usd": round(float(status.spend), 2),
        "limit_usd": float(status.limit),
        "percent": round(float(status.percent), 2),
    }


def _contributors(status: InstanceStatus) -> list[dict[str, Any]]:
    return [
        {"label": c.label, "spend_usd": round(float(c.spend), 2)} for c in status.top_contributors
    ]


def threshold_payload(finding: Finding, fired_at: datetime) -> Payload:
    """The contract's webhook payload for a ``threshold`` or ``forecast`` finding.

    Keys, in order: id, kind, account, budget, group, window, spend_usd,
    limit_usd, percent, threshold_percent (null for forecast), forecast_usd,
    fired_at; then ``top_contributors`` when the instance has any.
    """
    status = finding.status
    p = _base(status, finding.alert_id, finding.kind)
    p["threshold_percent"] = (
        _num(finding.threshold)
        if finding.kind == "threshold" and finding.threshold is not None
        else None
    )
    p["forecast_usd"] = None if status.forecast is None else round(float(status.forecast), 2)
    p["fired_at"] = iso_z(fired_at)
    contributors = _contributors(status)
    if contributors:
        p["top_contributors"] = contributors
    return p


def alert_from_finding(finding: Finding, notifiers: Sequence[str], fired_at: datetime) -> Alert:
    """An ``Alert`` ready for the outbox: id, kind, notifiers and the payload."""
    return Alert(
        id=finding.alert_id,
        kind=finding.kind,
        notifiers=tuple(notifiers),
        payload=threshold_payload(finding, fired_at),
    )


def alert_from_payload(payload: Payload, notifiers: Sequence[str]) -> Alert:
    """An ``Alert`` for any payload built here (its ``id`` and ``kind`` come
    from the payload): health, test, digest, enforcement."""
    return Alert(
        id=str(payload["id"]),
        kind=payload["kind"],
        notifiers=tuple(notifiers),
        payload=payload,
    )


EnforcementResult = Literal["stopped", "would_stop", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class PodAction:
    """What enforcement did (or would do, or refused to do) to one pod."""

    pod_id: str
    result: EnforcementResult
    pod_name: str | None = None
    detail: str = ""  # why refused / how it failed; never a secret


def enforcement_id(status: InstanceStatus, enforce_at: float) -> str:
    """``{instance_key}:enforce:{at}``: one enforcement notice per instance and level."""
    return f"{status.instance_key}:enforce:{fmt_num(enforce_at)}"


def enforcement_payload(
    status: InstanceStatus,
    *,
    enforce_at: float,
    dry_run: bool,
    actions: Sequence[PodAction],
    fired_at: datetime,
) -> Payload:
    """Kind ``enforcement``: the threshold payload's keys (``threshold_percent``
    is the enforce level) plus ``enforcement`` {at_percent, dry_run, pods}."""
    p = _base(status, enforcement_id(status, enforce_at), "enforcement")
    p["threshold_percent"] = _num(enforce_at)
    p["forecast_usd"] = None if status.forecast is None else round(float(status.forecast), 2)
    p["fired_at"] = iso_z(fired_at)
    contributors = _contributors(status)
    if contributors:
        p["top_contributors"] = contributors
    p["enforcement"] = {
        "at_percent": _num(enforce_at),
        "dry_run": dry_run,
        "pods": [
            {"pod_id": a.pod_id, "pod_name": a.pod_name, "result": a.result, "detail": a.detail}
            for a in actions
        ],
    }
    return p


HealthState = Literal["unusable", "recovered"]
_MAX_ERROR = 300


def health_id(state: HealthState, account: str, since: datetime) -> str:
    return f"{account}:health:{state}:{iso_z(since)}"


def health_payload(
    state: HealthState,
    account: str,
    since: datetime,
    last_error: str | None,
    fired_at: datetime,
) -> Payload:
    """Kind ``health``: the billing API of ``account`` has been unusable since
    ``since`` (or has recovered from an outage that began at ``since``).
    ``last_error`` must already be secret-free (``ApiError`` messages are)."""
    err = None if last_error is None else last_error[:_MAX_ERROR]
    if state == "unusable":
        text = f"RunPod billing API for account {account} unusable since {iso_z(since)}"
    else:
        text = f"RunPod billing API for account {account} recovered (outage began {iso_z(since)})"
    return {
        "id": health_id(state, account, since),
        "kind": "health",
        "account": account,
        "state": state,
        "since": iso_z(since),
        "last_error": err,
        "text": text,
        "fired_at": iso_z(fired_at),
    }


def test_payload(notifier_name: str, fired_at: datetime) -> Payload:
    """Kind ``test``: sent by ``test-notify``; says plainly that it is a test."""
    return {
        "id": f"test:{notifier_name}:{iso_z(fired_at)}",
        "kind": "test",
        "notifier": notifier_name,
        "text": (
            f"This is a TEST message from runpod-budget to notifier '{notifier_name}'. "
            "No budget was crossed; nothing needs doing."
        ),
        "fired_at": iso_z(fired_at),
    }


# pytest collects functions named test_*; this one is not a test.
test_payload.__test__ = False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- digest


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A pod or GPU type in the digest: total spend and an hourly series."""

    label: str
    spend: float
    hourly: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class DigestBudget:
    """One budget instance's standing in the digest."""

    name: str
    group: str  # "all", "pod=ID", "gpu=TYPE" or a readable label
    window: str
    spend: float
    limit: float
    percent: float

    @classmethod
    def from_status(cls, s: InstanceStatus) -> DigestBudget:
        return cls(
            name=s.budget,
            group=_group_label(_group_json(s.group)),
            window=s.window.size,
            spend=s.spend,
            limit=s.limit,
            percent=s.percent,
        )


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything a digest shows. ``date`` is the local date in ``timezone``."""

    period: str  # "daily", "weekly", ... (free text label)
    date: date
    timezone: str
    account: str | None  # None: every account
    spend_today: float
    spend_week: float  # ISO week to date
    spend_month: float  # month to date
    top_pods: tuple[DigestItem, ...] = ()
    top_gpu_types: tuple[DigestItem, ...] = ()
    budgets: tuple[DigestBudget, ...] = field(default=())


def digest_id(account: str | None, local_date: date) -> str:
    return f"digest:{account or 'all'}:{local_date.isoformat()}"


def _item_json(i: DigestItem) -> dict[str, Any]:
    return {
        "label": i.label,
        "spend_usd": round(float(i.spend), 2),
        "hourly_usd": [round(float(v), 4) for v in i.hourly],
    }


def digest_payload(digest: DigestData, fired_at: datetime) -> Payload:
    """Kind ``digest``: id ``digest:{account or all}:{local date}``."""
    return {
        "id": digest_id(digest.account, digest.date),
        "kind": "digest",
        "account": digest.account,
        "period": digest.period,
        "date": digest.date.isoformat(),
        "timezone": digest.timezone,
        "spend_usd": {
            "today": round(float(digest.spend_today), 2),
            "week_to_date": round(float(digest.spend_week), 2),
            "month_to_date": round(float(digest.spend_month), 2),
        },
        "top_pods": [_item_json(i) for i in digest.top_pods],
        "top_gpu_types": [_item_json(i) for i in digest.top_gpu_types],
        "budgets": [
            {
                "budget": b.name,
                "group": b.group,
                "window": b.window,
                "spend_usd": round(float(b.spend), 2),
                "limit_usd": float(b.limit),
                "percent": round(float(b.percent), 2),
            }
            for b in digest.budgets
        ],
        "fired_at": iso_z(fired_at),
    }


# --------------------------------------------------------------------------- small text helpers


def sparkline(values: Sequence[float]) -> str:
    """``▁▂▃▄▅▆▇█`` scaled from 0 to the largest value (spend is never negative;
    negatives count as 0). Empty input gives ``""``; all zeros give ``▁…``."""
    vals = [max(0.0, float(v)) for v in values]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return SPARK_CHARS[0] * len(vals)
    last = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(last, round(v / top * last))] for v in vals)


def progress_bar(percent: float, width: int = 10) -> str:
    """``▓▓▓▓▓▓▓▓░░ 80%``: full at 100% and above; the label shows the real
    (floored) percent."""
    p = max(0.0, float(percent))
    filled = min(width, int(p * width / 100.0 + 1e-9))
    # the label is floored too: 99.99% must not read "100%"
    return f"{BAR_FULL * filled}{BAR_EMPTY * (width - filled)} {int(p + 1e-9)}%"


def money(x: float | None) -> str:
    """``$1,234.56``; ``—`` for None."""
    return "—" if x is None else f"${float(x):,.2f}"


def pct(x: float | None) -> str:
    """``80.46%``, ``80%``; ``—`` for None."""
    if x is None:
        return "—"
    return f"{fmt_num(round(float(x), 2))}%"


def _slack_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short_time(iso: str | None) -> str:
    """``2026-11-24T00:00:00Z`` -> ``2026-11-24 00:00 UTC``."""
    if not iso:
        return "?"
    t = iso.replace("T", " ")
    if t.endswith(":00Z"):
        t = t[:-4] + " UTC"
    elif t.endswith("Z"):
        t = t[:-1] + " UTC"
    return t


def group_label(group: Group | dict[str, Any] | None) -> str:
    """A readable group: ``pod train-1 (abc123)``, ``GPU NVIDIA H100 …``, ``all pods``.
    Takes a ``Group`` or the payload's ``group`` object."""
    return _group_label(_group_json(group) if isinstance(group, Group) else group)


def _group_label(g: dict[str, Any] | None) -> str:
    g = g or {}
    pod_id, pod_name, gpu = g.get("pod_id"), g.get("pod_name"), g.get("gpu_type")
    if pod_id:
        label = f"pod {pod_name} ({pod_id})" if pod_name else f"pod {pod_id}"
        return f"{label} · {gpu}" if gpu else label
    if gpu:
        return f"GPU {gpu}"
    return "all pods"


def _window_label(w: dict[str, Any] | None) -> str:
    w = w or {}
    return f"{w.get('size', '?')} · {_short_time(w.get('start'))} → {_short_time(w.get('end'))}"


def console_link(payload: Payload, console_url: str = DEFAULT_CONSOLE_URL) -> str:
    """The pod's page in the RunPod console when the alert is about one pod,
    otherwise the pod list."""
    pod_id = (payload.get("group") or {}).get("pod_id")
    if pod_id:
        return f"{console_url}?id={quote(str(pod_id), safe='')}"
    return console_url


def severity_emoji(payload: Payload) -> str:
    kind = payload.get("kind")
    if kind == "forecast":
        return "🔮"
    if kind == "enforcement":
        return "🛑"
    if kind == "test":
        return "🧪"
    if kind == "digest":
        return "📊"
    if kind == "health":
        return "✅" if payload.get("state") == "recovered" else "⚠️"
    percent = float(payload.get("percent") or 0.0)
    if percent >= 100:
        return "🔴"
    if percent >= 80:
        return "🟠"
    return "🟡"


def headline(payload: Payload) -> str:
    """One line: what happened, for a header, a fallback text or a console line."""
    kind = payload.get("kind")
    emoji = severity_emoji(payload)
    budget = payload.get("budget", "?")
    if kind == "threshold":
        over = float(payload.get("percent") or 0) >= 100
        what = "over its limit" if over else f"crossed {pct(payload.get('threshold_percent'))}"
        return f"{emoji} Budget {budget} {what} ({pct(payload.get('percent'))})"
    if kind == "forecast":
        return (
            f"{emoji} Budget {budget} is forecast to reach its limit "
            f"({money(payload.get('forecast_usd'))} of {money(payload.get('limit_usd'))})"
        )
    if kind == "enforcement":
        enf = payload.get("enforcement") or {}
        # the enforcer adds "action"; older payloads only say dry_run
        action = payload.get("action") or ("would_stop" if enf.get("dry_run") else "stopped")
        what = {
            "would_stop": "dry run: would stop",
            "stopped": "stopped",
            "failed": "could not stop",
            "refused": "refused to stop",
        }.get(str(action), str(action))
        pod = payload.get("pod_name") or payload.get("pod_id")
        target = f"pod {pod}" if pod else "pods"
        reason = f" ({payload['reason']})" if action == "refused" and payload.get("reason") else ""
        return f"{emoji} Budget {budget} at {pct(payload.get('percent'))}: {what} {target}{reason}"
    if kind == "test":
        return f"{emoji} TEST message from runpod-budget (notifier {payload.get('notifier', '?')})"
    if kind == "health":
        if payload.get("state") == "recovered":
            return f"{emoji} RunPod billing API recovered (account {payload.get('account')})"
        return f"{emoji} RunPod billing API unusable (account {payload.get('account')})"
    if kind == "digest":
        who = payload.get("account") or "all accounts"
        return (
            f"{emoji} RunPod spend {payload.get('period', '')} digest, {who}, {payload.get('date')}"
        )
    return f"{emoji} runpod-budget: {kind}"


# --------------------------------------------------------------------------- Slack


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _header(text: str) -> dict[str, Any]:
    # Slack: header plain_text at most 150 characters
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text[:3000])}


def _fields(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [_mrkdwn(f"*{k}*\n{v}"[:2000]) for k, v in pairs[:10]],
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text[:3000])]}


def _budget_blocks(p: Payload, console_url: str) -> list[dict[str, Any]]:
    e = _slack_escape
    kind = p.get("kind")
    percent = float(p.get("percent") or 0.0)
    blocks: list[dict[str, Any]] = [_header(headline(p))]
    blocks.append(
        _section(
            f"*{money(p.get('spend_usd'))}* of *{money(p.get('limit_usd'))}* "
            f"({pct(p.get('percent'))}) — budget *{e(str(p.get('budget')))}*\n"
            f"`{progress_bar(percent)}`"
        )
    )
    pairs: list[tuple[str, str]] = [
        ("Budget", f"{e(str(p.get('budget')))} (account {e(str(p.get('account')))})"),
        ("Group", e(_group_label(p.get("group")))),
        ("Window", e(_window_label(p.get("window")))),
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
        lines = [
            f"• {e(str(c.get('label')))}: {money(c.get('spend_usd'))}" for c in contributors[:10]
        ]
        blocks.append(_section("*Top contributors*\n" + "\n".join(lines)))
    if kind == "enforcement":
        enf = p.get("enforcement") or {}
        pods = enf.get("pods") or []
        head = f"*Enforcement* at {pct(enf.get('at_percent'))}" + (
            " (dry run, nothing stopped)" if enf.get("dry_run") else ""
        )
        lines = []
        for a in pods[:20]:
            who = (
                f"{a.get('pod_name')} ({a.get('pod_id')})" if a.get("pod_name") else a.get("pod_id")
            )
            detail = f" — {a.get('detail')}" if a.get("detail") else ""
            lines.append(f"• {e(str(who))}: {e(str(a.get('result')))}{e(detail)}")
        blocks.append(_section(head + ("\n" + "\n".join(lines) if lines else "\nno pods")))
    link = console_link(p, console_url)
    link_text = (
        "Open pod in RunPod console"
        if (p.get("group") or {}).get("pod_id")
        else "Open RunPod console"
    )
    blocks.append(
        _context(f"<{link}|{link_text}> · fired {p.get('fired_at')} · id `{e(str(p.get('id')))}`")
    )
    return blocks


def _digest_blocks(p: Payload, console_url: str) -> list[dict[str, Any]]:
    e = _slack_escape
    s = p.get("spend_usd") or {}
    blocks: list[dict[str, Any]] = [_header(headline(p))]
    blocks.append(
        _fields(
            [
                ("Today", money(s.get("today"))),
                ("Week to date", money(s.get("week_to_date"))),
                ("Month to date", money(s.get("month_to_date"))),
            ]
        )
    )
    for title, key in (("Top pods", "top_pods"), ("Top GPU types", "top_gpu_types")):
        items = p.get(key) or []
        if items:
            lines = [
                f"• {e(str(i.get('label')))}: {money(i.get('spend_usd'))} "
                f"`{sparkline(i.get('hourly_usd') or [])}`"
                for i in items
            ]
            blocks.append(_section(f"*{title}*\n" + "\n".join(lines)))
    budgets = p.get("budgets") or []
    if budgets:
        lines = [
            f"• {e(str(b.get('budget')))} ({e(str(b.get('group')))}, {e(str(b.get('window')))}): "
            f"{money(b.get('spend_usd'))} / {money(b.get('limit_usd'))} "
            f"`{progress_bar(float(b.get('percent') or 0))}`"
            for b in budgets
        ]
        # sections hold at most 3000 characters: split long lists
        chunk: list[str] = []
        size = 0
        first = True
        for line in lines:
            if size + len(line) > 2800 and chunk:
                blocks.append(_section(("*Budgets*\n" if first else "") + "\n".join(chunk)))
                first, chunk, size = False, [], 0
            chunk.append(line)
            size += len(line) + 1
        blocks.append(_section(("*Budgets*\n" if first else "") + "\n".join(chunk)))
    blocks.append(
        _context(f"<{console_url}|Open RunPod console> · {e(str(p.get('timezone', '')))}")
    )
    return blocks[:50]


def slack_blocks(
    payload: Payload, console_url: str = DEFAULT_CONSOLE_URL
) -> tuple[str, list[dict[str, Any]]]:
    """``(fallback_text, blocks)`` for ``chat.postMessage`` / incoming webhooks."""
    kind = payload.get("kind")
    e = _slack_escape
    if kind in ("threshold", "forecast", "enforcement"):
        blocks = _budget_blocks(payload, console_url)
        fallback = (
            f"{headline(payload)}: {money(payload.get('spend_usd'))} / "
            f"{money(payload.get('limit_usd'))}, {_group_label(payload.get('group'))}"
        )
    elif kind == "digest":
        blocks = _digest_blocks(payload, console_url)
        fallback = headline(payload)
    elif kind == "health":
        err = payload.get("last_error")
        body = f"{e(str(payload.get('text', '')))}"
        if err:
            body += f"\nLast error: `{e(str(err))}`"
        if payload.get("state") == "unusable":
            body += "\nBudgets are not being evaluated for this account until the API works again."
        blocks = [
            _header(headline(payload)),
            _section(body),
            _context(f"fired {payload.get('fired_at')}"),
        ]
        fallback = headline(payload)
    elif kind == "test":
        blocks = [
            _header(headline(payload)),
            _section(e(str(payload.get("text", "This is a test message.")))),
            _context(f"fired {payload.get('fired_at')}"),
        ]
        fallback = headline(payload)
    else:
        fallback = headline(payload)
        blocks = [_section(e(fallback))]
    return fallback, blocks


# --------------------------------------------------------------------------- console


def console_text(payload: Payload) -> str:
    """One or two readable lines for the console notifier (and ``--dry-run``)."""
    kind = payload.get("kind")
    tag = f"[{str(kind).upper()}]"
    if kind in ("threshold", "forecast", "enforcement"):
        line1 = f"{tag} {headline(payload)}"
        parts = [
            f"{payload.get('account')}/{payload.get('budget')}",
            _group_label(payload.get("group")),
            _window_label(payload.get("window")),
            f"{money(payload.get('spend_usd'))} / {money(payload.get('limit_usd'))}",
            progress_bar(float(payload.get("percent") or 0.0)),
        ]
        if payload.get("forecast_usd") is not None:
            parts.append(f"forecast {money(payload.get('forecast_usd'))}")
        if kind == "enforcement":
            enf = payload.get("enforcement") or {}
            pods = ", ".join(f"{a.get('pod_id')}={a.get('result')}" for a in enf.get("pods") or [])
            parts.append(f"pods: {pods or 'none'}")
        return f"{line1}\n    " + " · ".join(parts)
    if kind == "digest":
        s = payload.get("spend_usd") or {}
        line2 = (
            f"today {money(s.get('today'))} · week {money(s.get('week_to_date'))} · "
            f"month {money(s.get('month_to_date'))}"
        )
        budgets = payload.get("budgets") or []
        if budgets:
            line2 += " · " + ", ".join(
                f"{b.get('budget')} {pct(b.get('percent'))}" for b in budgets
            )
        return f"{tag} {headline(payload)}\n    {line2}"
    if kind == "health":
        err = payload.get("last_error")
        return f"{tag} {payload.get('text', headline(payload))}" + (
            f"\n    last error: {err}" if err else ""
        )
    if kind == "test":
        return f"{tag} {payload.get('text', headline(payload))}"
    return f"{tag} {headline(payload)}"
