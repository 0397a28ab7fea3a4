"""Budget scopes: which billing series a budget needs and how its spend is cut
into budget instances (``all``, one per GPU type, or one per pod).

Rules (contract "Config (YAML)"):

* ``match`` keys are AND together, lists are OR within a key. GPU type names
  compare with :func:`fold_gpu` (case-insensitive, runs of whitespace folded).
* ``match.pod_name`` is a shell glob (:func:`fnmatch.fnmatchcase`, so case
  sensitive) matched against the pod names of ``GET /pods``. A pod that is not
  in that list (deleted, or the call failed) has no known name and does not
  match; when the pods list is unavailable a budget that needs names is
  skipped for the cycle rather than evaluated on a guess.
* ``except_pods`` removes pods both from spend and from live burn.

Series (docs/architecture.md "Billing series"):

* no pod condition (account-wide, ``match.gpu_type``, ``per: gpu_type``):
  ``gpuTypeId`` grouping, no filter;
* a pod condition (``match.pod_id``, ``match.pod_name``, ``per: pod``,
  ``except_pods``): ``podId`` grouping, no filter; or, if the budget also
  matches GPU types, one ``podId`` series per GPU type with ``gpu_filter`` set to
  the name exactly as configured (names that fold equal are fetched once).

A pod-level budget with ``per: gpu_type`` but no ``match.gpu_type`` learns each
pod's GPU type from ``GET /pods``; it is skipped when that call failed, and the
spend of pods no longer listed is grouped under GPU type ``unknown``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from daemon.config.models import Budget
from daemon.core.model import Group, Pod, SeriesKey, SpendPoint

UNKNOWN_GPU = "unknown"


def fold_gpu(name: str) -> str:
    """``"NVIDIA  RTX a4500 "`` -> ``"nvidia rtx a4500"``: the key GPU names compare by."""
    return " ".join(name.split()).casefold()


def needs_pod_grouping(budget: Budget) -> bool:
    """Whether the budget's spend must be fetched per pod (``podId`` grouping)."""
    m = budget.match
    return bool(
        budget.per == "pod"
        or budget.except_pods
        or (m is not None and (m.pod_id is not None or m.pod_name is not None))
    )


def gpu_filters(budget: Budget) -> list[str]:
    """The configured GPU type names of ``match.gpu_type``, one per folded name,
    in configuration order (empty when the budget does not match GPU types)."""
    if budget.match is None or budget.match.gpu_type is None:
        return []
    seen: set[str] = set()
    out: list[str] = []
    for name in budget.match.gpu_type:
        key = fold_gpu(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def series_for(budget: Budget, account: str) -> set[SeriesKey]:
    """The hourly billing series ``budget`` needs for ``account``."""
    if not needs_pod_grouping(budget):
        return {SeriesKey(account, "gpuTypeId")}
    filters = gpu_filters(budget)
    if filters:
        return {SeriesKey(account, "podId", f) for f in filters}
    return {SeriesKey(account, "podId")}


def needs_pod_names(budget: Budget) -> bool:
    """Whether evaluating ``budget`` requires ``GET /pods`` (names or GPU types of pods)."""
    m = budget.match
    if m is not None and m.pod_name is not None:
        return True
    return budget.per == "gpu_type" and needs_pod_grouping(budget) and not gpu_filters(budget)


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True, slots=True)
class Instance:
    """One budget instance's share of the data, before any arithmetic.

    ``points`` are the in-scope points; their ``group`` is a pod id when
    ``by == "pod"`` and a GPU type id when ``by == "gpu_type"``.
    ``running`` are the RUNNING pods in scope (live burn, enforcement).
    """

    group: Group
    by: Literal["pod", "gpu_type"]
    points: tuple[SpendPoint, ...] = ()
    running: tuple[Pod, ...] = ()
    aggregate: bool = True  # False for a per-pod instance (no contributors)


@dataclass(frozen=True, slots=True)
class Scope:
    """The instances of one budget in one account, or why it cannot be evaluated."""

    instances: list[Instance] = field(default_factory=list)
    skipped: str | None = None


def pod_label(pod_id: str, pods_by_id: Mapping[str, Pod]) -> str:
    """How a pod is named in contributor lists: ``name (id)`` when known, else the id."""
    pod = pods_by_id.get(pod_id)
    return f"{pod.name} ({pod_id})" if pod is not None else pod_id


def instances_for(
    budget: Budget,
    account: str,
    points: Mapping[SeriesKey, Sequence[SpendPoint]],
    pods: Sequence[Pod] | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Scope:
    """Cut the points of ``budget``'s series into its instances.

    ``points`` may hold any series; only :func:`series_for` ``(budget, account)``
    are read (a missing series counts as no spend). When ``start``/``end`` are
    given, only points with ``start <= time < end`` are kept (the window).
    ``pods`` is the account's ``GET /pods`` list, or None when that call failed.
    """

    def in_window(p: SpendPoint) -> bool:
        return (start is None or p.time >= start) and (end is None or p.time < end)

    if pods is None and needs_pod_names(budget):
        reason = (
            "match.pod_name needs pod names"
            if budget.match is not None and budget.match.pod_name is not None
            else "per: gpu_type with pod conditions needs the pods' GPU types"
        )
        return Scope(skipped=f"{reason}, but the pods list (GET /pods) is unavailable")

    pods_by_id = {p.id: p for p in pods or ()}
    running = [p for p in pods or () if p.running]
    m = budget.match
    want_gpus = {fold_gpu(g) for g in m.gpu_type} if m is not None and m.gpu_type else None

    def gpu_ok(gpu: str | None) -> bool:
        return want_gpus is None or (gpu is not None and fold_gpu(gpu) in want_gpus)

    if not needs_pod_grouping(budget):
        gpts = [
            p
            for p in points.get(SeriesKey(account, "gpuTypeId"), ())
            if in_window(p) and gpu_ok(p.group)
        ]
        glive = [p for p in running if gpu_ok(p.gpu_type)]
        if budget.per == "gpu_type":
            return Scope(_per_gpu(gpts, glive))
        return Scope([Instance(Group(), "gpu_type", tuple(gpts), tuple(glive))])

    # pod grouping: decide per pod id whether it is in scope
    excluded = set(budget.except_pods)
    ids = set(m.pod_id) if m is not None and m.pod_id is not None else None
    glob = m.pod_name if m is not None else None

    def pod_ok(pod_id: str) -> bool:
        if pod_id in excluded or (ids is not None and pod_id not in ids):
            return False
        if glob is not None:
            pod = pods_by_id.get(pod_id)
            return pod is not None and fnmatch.fnmatchcase(pod.name, glob)
        return True

    # pod id -> GPU type: from the filtered series when there are filters
    gpu_of: dict[str, str] = {}
    pts: list[SpendPoint] = []
    filters = gpu_filters(budget)
    for key in sorted(series_for(budget, account), key=lambda k: k.gpu_filter):
        for p in points.get(key, ()):
            if in_window(p) and pod_ok(p.group):
                pts.append(p)
                if key.gpu_filter:
                    gpu_of.setdefault(p.group, key.gpu_filter)
    live = [p for p in running if pod_ok(p.id) and (not filters or gpu_ok(p.gpu_type))]
    for pod in pods or ():
        if pod.gpu_type is not None:
            gpu_of[pod.id] = pod.gpu_type  # RunPod's own spelling when known

    if budget.per == "pod":
        return Scope(_per_pod(pts, live, pods_by_id, gpu_of))
    if budget.per == "gpu_type":
        gpu_key = {p.group: fold_gpu(gpu_of.get(p.group, UNKNOWN_GPU)) for p in pts}
        relabelled = [SpendPoint(p.time, gpu_of.get(p.group, UNKNOWN_GPU), p.amount) for p in pts]
        # same groups as a GPU-grouped budget, but keep pod points: contributors are pods
        return Scope(
            [
                Instance(
                    i.group,
                    "pod",
                    tuple(p for p in pts if gpu_key[p.group] == fold_gpu(i.group.gpu_type or "")),
                    i.running,
                )
                for i in _per_gpu(relabelled, live)
            ]
        )
    return Scope([Instance(Group(), "pod", tuple(pts), tuple(live))])


def _per_gpu(pts: Iterable[SpendPoint], live: Iterable[Pod]) -> list[Instance]:
    """One instance per folded GPU type seen in spend or among running pods.

    The group's ``gpu_type`` is RunPod's spelling from billing (the smallest one
    if RunPod sends several that fold equal), else from ``GET /pods``.
    """
    spell: dict[str, set[str]] = {}
    by: dict[str, list[SpendPoint]] = {}
    run: dict[str, list[Pod]] = {}
    for p in pts:
        k = fold_gpu(p.group)
        spell.setdefault(k, set()).add(p.group)
        by.setdefault(k, []).append(p)
    live_spell: dict[str, set[str]] = {}
    for pod in live:
        k = fold_gpu(pod.gpu_type or UNKNOWN_GPU)
        live_spell.setdefault(k, set()).add(pod.gpu_type or UNKNOWN_GPU)
        run.setdefault(k, []).append(pod)
    out = []
    for k in sorted(set(by) | set(run)):
        name = min(spell.get(k) or live_spell[k])
        out.append(
            Instance(Group(gpu_type=name), "gpu_type", tuple(by.get(k, ())), tuple(run.get(k, ())))
        )
    return out


def _per_pod(
    pts: Iterable[SpendPoint],
    live: Iterable[Pod],
    pods_by_id: Mapping[str, Pod],
    gpu_of: Mapping[str, str],
) -> list[Instance]:
    """One instance per pod seen in spend or running."""
    by: dict[str, list[SpendPoint]] = {}
    run: dict[str, list[Pod]] = {}
    for p in pts:
        by.setdefault(p.group, []).append(p)
    for pod in live:
        run.setdefault(pod.id, []).append(pod)
    out = []
    for pid in sorted(set(by) | set(run)):
        known = pods_by_id.get(pid)
        group = Group(
            pod_id=pid,
            pod_name=known.name if known is not None else None,
            gpu_type=gpu_of.get(pid),
        )
        out.append(
            Instance(group, "pod", tuple(by.get(pid, ())), tuple(run.get(pid, ())), aggregate=False)
        )
    return out
