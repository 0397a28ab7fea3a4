"""Budget scopes: which billing series a budget reads and how its spend is cut
into budget instances (contract "What a budget counts").

* A budget with no pod, endpoint or volume condition counts the whole account:
  the ``account`` series, resource ``total`` (or the families listed in
  ``resources``, which the account series keeps as components).
* Pod conditions (``match.pod_id``, ``match.pod_name``, ``match.gpu_type``,
  ``per: pod``, ``per: gpu_type``, ``except_pods``) read the ``pods`` series:
  one point per pod and bucket. A pod's name and GPU type come from the live
  ``GET /pods`` list, else from the pod registry (pods RunPod no longer lists);
  a pod never seen has no name and GPU type ``unknown``.
* Endpoint conditions read ``serverless``, volume conditions ``storage``, with
  names from RunPod's listings as remembered in the state.

``match`` keys are AND together, lists are OR within a key. GPU type names
compare with :func:`fold_gpu`; name globs use :func:`fnmatch.fnmatchcase` and
are matched once per resource, not once per point.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from daemon.config.models import Budget
from daemon.core.model import TOTAL, Family, Group, Pod, PodInfo, SeriesKey, fold_gpu

UNKNOWN_GPU = "unknown"
NON_POD_FAMILIES = ("serverless", "storage", "clusters", "public_endpoints")


def budget_family(budget: Budget) -> Family:
    """The series a budget reads: ``account``, ``pods``, ``serverless`` or ``storage``."""
    m = budget.match
    if budget.per == "endpoint" or (
        m is not None and (m.endpoint_id is not None or m.endpoint_name is not None)
    ):
        return "serverless"
    if budget.per == "volume" or (
        m is not None and (m.volume_id is not None or m.volume_name is not None)
    ):
        return "storage"
    if budget.per in ("pod", "gpu_type") or (
        m is not None and (m.pod_id is not None or m.pod_name is not None or m.gpu_type)
    ):
        return "pods"
    return "account"


def subtracts_pods(budget: Budget) -> bool:
    """An account-wide budget with ``except_pods`` also reads the ``pods``
    series: the excluded pods' spend is taken out of the account total."""
    counts_pods = budget.resources is None or "pods" in budget.resources
    return budget_family(budget) == "account" and bool(budget.except_pods) and counts_pods


def series_for(budget: Budget, account: str) -> SeriesKey:
    """The billing series ``budget`` reads in ``account``."""
    return SeriesKey(account, budget_family(budget))


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True, slots=True)
class Instance:
    """One budget instance's share of the data, before any arithmetic.

    ``resources`` are the resources of ``series`` whose spend counts;
    ``running`` the RUNNING pods in scope (live burn, enforcement) when
    ``burns_live``; ``rate_resources`` are the resources whose recent hourly
    spend stands in for a live rate (serverless, storage: they have none);
    ``contributors`` the resources ranked for "top contributors" with their
    labels (empty for a single-resource instance).
    """

    group: Group
    series: SeriesKey
    resources: tuple[str, ...]
    running: tuple[Pod, ...] = ()
    burns_live: bool = False
    rate_resources: tuple[str, ...] = ()
    contributors: tuple[tuple[str, str], ...] = ()
    minus_pods: tuple[str, ...] = ()  # pods whose spend is taken out (except_pods)


@dataclass(frozen=True, slots=True)
class Scope:
    """The instances of one budget in one account."""

    instances: list[Instance] = field(default_factory=list)
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What is known of a pod id: live when listed now, else from the registry."""

    name: str | None
    gpu_type: str | None


def pod_facts(
    pod_id: str, live: Mapping[str, Pod], registry: Mapping[str, PodInfo]
) -> PodFacts:
    pod = live.get(pod_id)
    if pod is not None:
        return PodFacts(pod.name, pod.gpu_type or UNKNOWN_GPU)
    info = registry.get(pod_id)
    if info is not None:
        return PodFacts(info.name, info.gpu_type or UNKNOWN_GPU)
    return PodFacts(None, UNKNOWN_GPU)


def pod_label(pod_id: str, name: str | None) -> str:
    """How a pod is named in contributor lists: ``name (id)`` when known, else the id."""
    return f"{name} ({pod_id})" if name else pod_id


def pod_matcher(
    budget_match: object | None, except_pods: Sequence[str]
) -> Callable[[str, PodFacts], bool]:
    """``(pod id, facts) -> in scope`` for a budget's or guard's pod keys."""
    excluded = set(except_pods)
    ids = getattr(budget_match, "pod_id", None)
    ids = set(ids) if ids is not None else None
    glob = getattr(budget_match, "pod_name", None)
    gpus = getattr(budget_match, "gpu_type", None)
    want = {fold_gpu(g) for g in gpus} if gpus else None

    def ok(pod_id: str, facts: PodFacts) -> bool:
        if pod_id in excluded or (facts.name is not None and facts.name in excluded):
            return False
        if ids is not None and pod_id not in ids:
            return False
        if glob is not None and (facts.name is None or not fnmatch.fnmatchcase(facts.name, glob)):
            return False
        return want is None or fold_gpu(facts.gpu_type or UNKNOWN_GPU) in want

    return ok


def instances_for(
    budget: Budget,
    account: str,
    spend_resources: Sequence[str],
    pods: Sequence[Pod] | None,
    *,
    registry: Mapping[str, PodInfo],
    names: Mapping[str, str],
    pod_spend: Sequence[str] = (),
    facts_cache: dict[str, PodFacts] | None = None,
    scope_cache: dict[object, list[Instance]] | None = None,
) -> Scope:
    """Cut a budget's series into its instances.

    ``facts_cache`` (one dict per account and cycle) lets the budgets of an
    account look each pod's name and GPU type up once, not once per budget;
    ``scope_cache`` (likewise) lets budgets with the same pod conditions over
    the same spend share their (immutable) pod instances: forty ``per: pod``
    day budgets on 2,000 pods build 2,000 instances, not 80,000.

    ``spend_resources`` are the resources with stored spend in the budget's
    series (within the longest window that matters); ``pods`` is the account's
    live ``GET /pods`` list or None when that call failed; ``registry`` the pods
    remembered; ``names`` the endpoint or volume names by id; ``pod_spend``
    the pods with spend in the window (for an account budget's ``except_pods``).
    """
    family = budget_family(budget)
    key = SeriesKey(account, family)
    if family == "account":
        minus = subtracts_pods(budget)
        ak = (key, "account", tuple(budget.resources or ()), id(pods),
              (tuple(budget.except_pods), tuple(pod_spend)) if minus else None)  # fmt: skip
        cached = scope_cache.get(ak) if scope_cache is not None else None
        if cached is None:
            inst = _account_instance(budget, key, pods)
            if minus:
                inst = _without_excepted(budget, inst, pod_spend, pods, registry)
            cached = [inst]
            if scope_cache is not None:
                scope_cache[ak] = cached
        return Scope(cached)
    if family == "pods":
        if scope_cache is None:
            return Scope(
                _pod_instances(budget, key, spend_resources, pods, registry, cache=facts_cache)
            )
        m = budget.match
        ck = (key, budget.per, None if m is None else repr(m), tuple(budget.except_pods),
              tuple(spend_resources), id(pods))  # fmt: skip
        found = scope_cache.get(ck)
        if found is None:
            found = scope_cache[ck] = _pod_instances(
                budget, key, spend_resources, pods, registry, cache=facts_cache
            )
        return Scope(found)  # shared by the budgets: read, never mutated
    return Scope(_named_instances(budget, key, family, spend_resources, names))


def _account_instance(budget: Budget, key: SeriesKey, pods: Sequence[Pod] | None) -> Instance:
    fams = tuple(budget.resources) if budget.resources else None
    counts_pods = fams is None or "pods" in fams
    resources = fams if fams is not None else (TOTAL,)
    shown = fams if fams is not None else ("pods", *NON_POD_FAMILIES)
    running = tuple(p for p in pods or () if p.running) if counts_pods else ()
    return Instance(
        group=Group(),
        series=key,
        resources=resources,
        running=running,
        burns_live=counts_pods,
        rate_resources=tuple(f for f in shown if f != "pods"),
        contributors=tuple((f, f) for f in shown),
    )


def _without_excepted(
    budget: Budget,
    inst: Instance,
    pod_spend: Sequence[str],
    pods: Sequence[Pod] | None,
    registry: Mapping[str, PodInfo],
) -> Instance:
    live = {p.id: p for p in pods or ()}
    excluded = set(budget.except_pods)
    minus = tuple(
        sorted(
            pid
            for pid in dict.fromkeys([*pod_spend, *live])
            if pid in excluded or pod_facts(pid, live, registry).name in excluded
        )
    )
    return replace(
        inst, running=tuple(p for p in inst.running if p.id not in minus), minus_pods=minus
    )


def _pod_instances(
    budget: Budget,
    key: SeriesKey,
    spend_resources: Sequence[str],
    pods: Sequence[Pod] | None,
    registry: Mapping[str, PodInfo],
    *,
    cache: dict[str, PodFacts] | None = None,
) -> list[Instance]:
    # Long on purpose: the three ways a pod budget cuts (per pod, per GPU type,
    # one) share one pass over the pods.
    live = {p.id: p for p in pods or ()}
    ok = pod_matcher(budget.match, budget.except_pods)
    facts: dict[str, PodFacts] = {}
    known = {} if cache is None else cache  # one account's facts, shared by its budgets
    running_ids = [p.id for p in pods or () if p.running]
    for pid in dict.fromkeys([*spend_resources, *running_ids]):
        f = known.get(pid)
        if f is None:
            f = known[pid] = pod_facts(pid, live, registry)
        if ok(pid, f):
            facts[pid] = f
    running = {pid: live[pid] for pid in facts if pid in live and live[pid].running}

    def labelled(ids: Sequence[str]) -> tuple[tuple[str, str], ...]:
        return tuple((i, pod_label(i, facts[i].name)) for i in ids)

    if budget.per == "pod":
        return [
            Instance(
                Group(pod_id=pid, pod_name=f.name, gpu_type=f.gpu_type),
                key,
                (pid,),
                (running[pid],) if pid in running else (),
                burns_live=True,
            )
            for pid, f in sorted(facts.items())
        ]
    if budget.per == "gpu_type":
        by: dict[str, list[str]] = {}
        spell: dict[str, str] = {}
        for pid, f in facts.items():
            gpu = f.gpu_type or UNKNOWN_GPU
            k = fold_gpu(gpu)
            by.setdefault(k, []).append(pid)
            spell[k] = min(spell.get(k, gpu), gpu)
        return [
            Instance(
                Group(gpu_type=spell[k]),
                key,
                tuple(sorted(ids)),
                tuple(running[i] for i in sorted(ids) if i in running),
                burns_live=True,
                contributors=labelled(sorted(ids)),
            )
            for k, ids in sorted(by.items())
        ]
    ids = sorted(facts)
    return [
        Instance(
            Group(),
            key,
            tuple(ids),
            tuple(running[i] for i in ids if i in running),
            burns_live=True,
            contributors=labelled(ids),
        )
    ]


def _named_instances(
    budget: Budget,
    key: SeriesKey,
    family: Family,
    spend_resources: Sequence[str],
    names: Mapping[str, str],
) -> list[Instance]:
    m = budget.match
    if family == "serverless":
        ids = m.endpoint_id if m is not None else None
        glob = m.endpoint_name if m is not None else None
    else:
        ids = m.volume_id if m is not None else None
        glob = m.volume_name if m is not None else None
    wanted = set(ids) if ids is not None else None
    chosen: list[str] = []
    for rid in sorted(set(spend_resources) | set(names)):
        name = names.get(rid)
        if wanted is not None and rid not in wanted:
            continue
        if glob is not None and (name is None or not fnmatch.fnmatchcase(name, glob)):
            continue
        chosen.append(rid)
    label = tuple((r, f"{names[r]} ({r})" if names.get(r) else r) for r in chosen)
    if budget.per in ("endpoint", "volume"):
        out = []
        for rid in chosen:
            name = names.get(rid)
            group = (
                Group(endpoint_id=rid, endpoint_name=name)
                if family == "serverless"
                else Group(volume_id=rid, volume_name=name)
            )
            out.append(Instance(group, key, (rid,), rate_resources=(rid,)))
        return out
    return [Instance(Group(), key, tuple(chosen), rate_resources=tuple(chosen), contributors=label)]
