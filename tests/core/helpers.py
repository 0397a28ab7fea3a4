"""Builders shared by the core tests: configs, budgets, spend points, pods,
registry entries and the SpendData that evaluation reads.

Account ``acc`` (and ``other``, with no pods) exist in every config; a
budget defaults to a ``day`` window, limit 100 USD, account ``acc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.config.models import Config
from daemon.core.evaluate import Evaluation, evaluate
from daemon.core.model import TOTAL, Pod, PodInfo, PodStatus, SeriesKey, SpendPoint
from daemon.core.spend import SpendData

H = timedelta(hours=1)
DAY0 = datetime(2026, 11, 24, tzinfo=UTC)  # a Tuesday
NOW = DAY0 + 12 * H  # 12:00Z, 12 hours left in the UTC day
H100 = "NVIDIA H100 80GB HBM3"
L4 = "NVIDIA L4"
A4500 = "NVIDIA  RTX A4500"  # RunPod's own spelling has two spaces

ACCOUNT = SeriesKey("acc", "account")
PODS = SeriesKey("acc", "pods")
SERVERLESS = SeriesKey("acc", "serverless")
STORAGE = SeriesKey("acc", "storage")


def cfg(*budgets: dict[str, Any], **top: Any) -> Config:
    """A config with accounts ``acc`` and ``other`` and a console notifier."""
    return Config.model_validate(
        {
            "version": 1,
            "accounts": [{"name": "acc"}, {"name": "other"}],
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "budgets": list(budgets),
            **top,
        }
    )


def bud(name: str = "b", **kw: Any) -> dict[str, Any]:
    """A budget's YAML mapping: day window, 100 USD, account ``acc`` unless overridden."""
    return {"name": name, "window": "day", "limit": 100.0, "accounts": ["acc"], **kw}


def pt(resource: str, amount: float, hour: int = 0, hours: int = 1) -> SpendPoint:
    """Spend of ``resource`` in the bucket starting ``hour`` hours after DAY0."""
    return SpendPoint(DAY0 + hour * H, resource, amount, hours)


def acct(amount: float, hour: int = 0, hours: int = 1, **families: float) -> list[SpendPoint]:
    """The account series' points of one bucket: ``total`` plus its components."""
    return [pt(TOTAL, amount, hour, hours)] + [
        pt(fam, v, hour, hours) for fam, v in families.items()
    ]


def pod(
    pid: str,
    cost: float = 1.0,
    gpu: str | None = H100,
    running: bool = True,
    *,
    name: str | None = None,
    status: PodStatus | None = None,
    locked: bool = False,
    can_stop: bool = True,
) -> Pod:
    """A live pod named ``name-<id>`` unless ``name`` is given."""
    st = status or (PodStatus.RUNNING if running else PodStatus.EXITED)
    return Pod(
        pid,
        name or f"name-{pid}",
        st,
        cost,
        gpu,
        1 if gpu else 0,
        locked=locked,
        can_stop=can_stop,
    )


def info(pid: str, name: str, gpu: str | None = H100, status: str = "TERMINATED") -> PodInfo:
    """A registry entry of a pod RunPod listed earlier."""
    return PodInfo(pid, name, gpu, 1 if gpu else 0, DAY0 - 48 * H, DAY0 - H, status)


def data(
    points: Mapping[SeriesKey, Sequence[SpendPoint]],
    registry: Sequence[PodInfo] = (),
    names: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> SpendData:
    """SpendData of account ``acc`` with ``registry`` as its remembered pods."""
    return SpendData.of(points, {"acc": {i.id: i for i in registry}}, names)


def run(
    config: Config,
    points: Mapping[SeriesKey, Sequence[SpendPoint]] | SpendData,
    pods: Sequence[Pod] | None = (),
    now: datetime = NOW,
) -> Evaluation:
    """Evaluate with ``pods`` as account acc's live list (None: GET /pods failed)."""
    d = points if isinstance(points, SpendData) else data(points)
    return evaluate(config, d, {"acc": pods, "other": ()}, now)
