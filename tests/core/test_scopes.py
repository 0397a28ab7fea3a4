"""Scopes: the series a budget reads and how it is cut into instances."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.models import Budget
from daemon.core.model import TOTAL, Pod, PodInfo, SeriesKey, SpendPoint
from daemon.core.scopes import (
    Instance,
    Scope,
    budget_family,
    fold_gpu,
    instances_for,
    series_for,
)
from daemon.core.spend import SeriesView, total
from tests.core.helpers import A4500, DAY0, H100, PODS, info, pod, pt

END = DAY0 + timedelta(days=1)


def budget(**kw: Any) -> Budget:
    return Budget.model_validate({"name": "b", "window": "day", "limit": 100, **kw})


def cut(
    b: Budget,
    points: Sequence[SpendPoint],
    pods: Sequence[Pod] | None,
    registry: Sequence[PodInfo] = (),
    names: dict[str, str] | None = None,
) -> tuple[Scope, SeriesView]:
    """instances_for as evaluation calls it: the resources with spend in the day."""
    view = SeriesView(points)
    sums = view.window(DAY0, END)
    scope = instances_for(
        b, "acc", list(sums), pods, registry={i.id: i for i in registry}, names=names or {}
    )
    return scope, view


def one(*args: Any, **kw: Any) -> tuple[Instance, SeriesView]:
    """The single instance of a budget that cuts into exactly one."""
    scope, view = cut(*args, **kw)
    [inst] = scope.instances
    return inst, view


def spend(inst: Instance, view: SeriesView) -> float:
    return round(total(view.window(DAY0, END), inst.resources), 6)


def test_fold_gpu() -> None:
    assert fold_gpu("NVIDIA  RTX A4500") == fold_gpu("nvidia rtx a4500 ") == "nvidia rtx a4500"
    assert fold_gpu("\tNVIDIA\nH100  80GB HBM3") == "nvidia h100 80gb hbm3"
    assert fold_gpu("NVIDIA H100 NVL") != fold_gpu("NVIDIA H100 PCIe")


def test_series_for_each_kind_of_budget() -> None:
    # v2: one series per family; GPU filtering happens on pods, not in the fetch
    assert series_for(budget(), "acc") == SeriesKey("acc", "account")
    assert series_for(budget(resources=["pods"]), "acc") == SeriesKey("acc", "account")
    assert series_for(budget(match={"gpu_type": [H100]}), "acc") == PODS
    assert series_for(budget(per="gpu_type"), "acc") == PODS
    assert series_for(budget(per="pod"), "acc") == PODS
    assert series_for(budget(match={"pod_id": ["p1"]}), "acc") == PODS
    assert series_for(budget(match={"pod_name": "train-*"}), "acc") == PODS
    # except_pods alone keeps the budget account-wide: those pods are taken out
    assert series_for(budget(except_pods=["p9"]), "acc") == SeriesKey("acc", "account")
    # v2 replaces the GPU-filtered podId series of v1 (one per folded GPU name)
    # by the one pods series: GPU types come from the pods and the registry
    assert series_for(budget(per="pod", match={"gpu_type": [H100, A4500]}), "acc") == PODS
    assert budget_family(budget(per="endpoint")) == "serverless"
    assert budget_family(budget(match={"endpoint_name": "llm-*"})) == "serverless"
    assert budget_family(budget(match={"endpoint_id": ["e1"]})) == "serverless"
    assert budget_family(budget(per="volume")) == "storage"
    assert budget_family(budget(match={"volume_id": ["v1"]})) == "storage"
    assert budget_family(budget(match={"volume_name": "data*"})) == "storage"


def test_account_wide_is_one_instance_with_everything() -> None:
    pts = [pt(TOTAL, 3.0), pt("pods", 2.0), pt("serverless", 1.0), pt(TOTAL, 1.5, 1)]
    scope, view = cut(budget(), pts, [pod("p1"), pod("p2", running=False)])
    assert scope.skipped is None
    [inst] = scope.instances
    assert inst.group.key == "all"
    assert inst.resources == (TOTAL,)
    assert spend(inst, view) == 4.5
    assert [p.id for p in inst.running] == ["p1"]
    assert inst.burns_live


def test_resources_narrow_the_account_budget_to_components() -> None:
    pts = [pt(TOTAL, 10.0), pt("pods", 4.0), pt("serverless", 5.0), pt("storage", 1.0)]
    only_pods, view = one(budget(resources=["pods"]), pts, [pod("p1")])
    assert spend(only_pods, view) == 4.0
    assert only_pods.rate_resources == ()
    non_pods, _ = one(budget(resources=["serverless", "storage"]), pts, [pod("p1")])
    assert spend(non_pods, view) == 6.0
    assert non_pods.running == () and not non_pods.burns_live  # no pod burn in scope


def test_gpu_type_match_folds_names_and_filters_live_pods() -> None:
    b = budget(match={"gpu_type": ["nvidia rtx  a4500"]})
    pods = [pod("p1", name="a"), pod("p2", gpu=A4500, name="b")]
    scope, view = cut(b, [pt("p1", 3.0), pt("p2", 1.5)], pods)
    [inst] = scope.instances
    assert spend(inst, view) == 1.5
    assert [p.id for p in inst.running] == ["p2"]


def test_per_gpu_type_keeps_runpod_spelling_and_includes_running_without_spend() -> None:
    pods = [pod("p1"), pod("p2", gpu=A4500), pod("p3", gpu="NVIDIA L4")]
    scope, view = cut(
        budget(per="gpu_type"), [pt("p1", 3.0), pt("p2", 1.0), pt("p2", 1.0, 1)], pods
    )
    got = {i.group.gpu_type: spend(i, view) for i in scope.instances}
    assert got == {H100: 3.0, A4500: 2.0, "NVIDIA L4": 0.0}
    assert {i.group.key for i in scope.instances} == {
        f"gpu={H100}",
        f"gpu={A4500}",
        "gpu=NVIDIA L4",
    }


def test_per_pod_instances_from_spend_and_running_pods() -> None:
    pts = [pt("p1", 2.0), pt("p1", 2.0, 1), pt("gone", 5.0)]
    pods = [pod("p1", name="train-a"), pod("p2", name="train-b"), pod("p3", running=False)]
    scope, view = cut(budget(per="pod"), pts, pods)
    got = {(i.group.pod_id, i.group.pod_name): spend(i, view) for i in scope.instances}
    assert got == {("p1", "train-a"): 4.0, ("p2", "train-b"): 0.0, ("gone", None): 5.0}
    assert all(i.contributors == () for i in scope.instances)


def test_never_seen_pod_has_no_name_and_gpu_unknown() -> None:
    # contract "What a budget counts": pod_name null, gpu_type "unknown"
    scope, _ = cut(budget(per="pod"), [pt("ghost", 1.0)], [])
    [inst] = scope.instances
    assert (inst.group.pod_name, inst.group.gpu_type, inst.group.key) == (
        None,
        "unknown",
        "pod=ghost",
    )
    scope, _ = cut(budget(per="gpu_type"), [pt("ghost", 1.0)], [])
    assert [i.group.key for i in scope.instances] == ["gpu=unknown"]


def test_terminated_pod_keeps_its_gpu_type_and_name_from_the_registry() -> None:
    reg = [info("gone", "train-old", A4500)]
    scope, view = cut(budget(per="gpu_type"), [pt("gone", 2.0), pt("p1", 1.0)], [pod("p1")], reg)
    assert {i.group.key: spend(i, view) for i in scope.instances} == {
        f"gpu={A4500}": 2.0,
        f"gpu={H100}": 1.0,
    }
    scope, _ = cut(budget(per="pod"), [pt("gone", 2.0)], [], reg)
    assert [(i.group.pod_name, i.group.gpu_type) for i in scope.instances] == [("train-old", A4500)]


def test_live_pod_facts_win_over_the_registry() -> None:
    reg = [info("p1", "old-name", A4500, status="RUNNING")]
    scope, _ = cut(budget(per="pod"), [pt("p1", 1.0)], [pod("p1", name="new-name")], reg)
    assert [(i.group.pod_name, i.group.gpu_type) for i in scope.instances] == [("new-name", H100)]


def test_pod_name_glob_matches_names_case_sensitively() -> None:
    b = budget(per="pod", match={"pod_name": "train-*"})
    pods = [pod("p1", name="train-a"), pod("p2", name="eval-a"), pod("p4", name="TRAIN-x")]
    scope, _ = cut(b, [pt("p1", 1.0), pt("p2", 1.0), pt("gone", 9.0)], pods)
    assert [i.group.pod_id for i in scope.instances] == ["p1"]


def test_pod_name_budget_uses_the_registry_when_pods_list_failed() -> None:
    # v2 (contract "What a budget counts"): names come from the pod registry, so
    # the budget is no longer skipped when GET /pods failed
    b = budget(match={"pod_name": "train-*"})
    reg = [info("p1", "train-a", status="RUNNING"), info("p2", "eval-b", status="RUNNING")]
    scope, view = cut(b, [pt("p1", 1.0), pt("p2", 4.0), pt("ghost", 8.0)], None, reg)
    assert scope.skipped is None
    [inst] = scope.instances
    assert spend(inst, view) == 1.0
    assert inst.running == ()  # nothing is known to burn without the list


def test_pod_id_budget_still_works_when_pods_list_failed() -> None:
    b = budget(match={"pod_id": ["p1", "p2"]})
    scope, view = cut(b, [pt("p1", 1.0), pt("p2", 2.0), pt("p3", 4.0)], None)
    assert scope.skipped is None
    [inst] = scope.instances
    assert spend(inst, view) == 3.0


def test_except_pods_removes_spend_and_live_burn() -> None:
    b = budget(match={"pod_id": ["p1", "dev"]}, except_pods=["dev"])
    scope, view = cut(b, [pt("p1", 1.0), pt("dev", 7.0)], [pod("p1"), pod("dev")])
    [inst] = scope.instances
    assert spend(inst, view) == 1.0
    assert [p.id for p in inst.running] == ["p1"]


def test_except_pods_by_exact_name() -> None:
    b = budget(match={"pod_id": ["p1", "p2"]}, except_pods=["keep-me"])
    scope, view = cut(b, [pt("p1", 1.0), pt("p2", 7.0)], [pod("p1"), pod("p2", name="keep-me")])
    assert spend(scope.instances[0], view) == 1.0


def test_pod_level_budget_with_gpu_and_name_match() -> None:
    b = budget(per="pod", match={"gpu_type": [H100], "pod_name": "train-*"})
    pods = [pod("p1", name="train-a"), pod("p2", gpu=A4500, name="train-b")]
    scope, view = cut(b, [pt("p1", 2.0), pt("p2", 50.0)], pods)
    assert [(i.group.pod_id, i.group.gpu_type, spend(i, view)) for i in scope.instances] == [
        ("p1", H100, 2.0)
    ]


def test_per_gpu_type_with_except_pods_uses_pods_gpu() -> None:
    b = budget(per="gpu_type", except_pods=["dev"])
    pts = [pt("p1", 1.0), pt("p2", 2.0), pt("dev", 9.0)]
    pods = [pod("p1"), pod("p2", gpu=A4500), pod("dev")]
    scope, view = cut(b, pts, pods)
    assert {i.group.gpu_type: spend(i, view) for i in scope.instances} == {H100: 1.0, A4500: 2.0}
    # v2: without the list the GPU types come from the registry, else "unknown"
    scope, view = cut(b, pts, None, [info("p2", "b", A4500)])
    assert {i.group.gpu_type: spend(i, view) for i in scope.instances} == {
        A4500: 2.0,
        "unknown": 1.0,
    }


def test_per_endpoint_instances_have_names_and_group_keys() -> None:
    names = {"ep1": "whisper", "ep2": "llm"}
    scope, view = cut(budget(per="endpoint"), [pt("ep1", 2.0), pt("ep9", 1.0)], [], names=names)
    got = {i.group.key: (i.group.endpoint_name, spend(i, view)) for i in scope.instances}
    assert got == {
        "endpoint=ep1": ("whisper", 2.0),
        "endpoint=ep2": ("llm", 0.0),
        "endpoint=ep9": (None, 1.0),
    }
    assert all(i.rate_resources == i.resources for i in scope.instances)


def test_per_volume_instances_and_name_glob() -> None:
    names = {"v1": "datasets", "v2": "scratch"}
    pts = [pt("v1", 2.0), pt("v2", 3.0)]
    scope, view = cut(budget(per="volume"), pts, [], names=names)
    assert [(i.group.key, i.group.volume_name) for i in scope.instances] == [
        ("volume=v1", "datasets"),
        ("volume=v2", "scratch"),
    ]
    scope, view = cut(budget(match={"volume_name": "data*"}), pts, [], names=names)
    [inst] = scope.instances
    assert inst.group.key == "all"
    assert spend(inst, view) == 2.0
    assert inst.contributors == (("v1", "datasets (v1)"),)


def test_window_bounds_filter_points() -> None:
    pts = [pt(TOTAL, 1.0, -1), pt(TOTAL, 2.0, 0), pt(TOTAL, 4.0, 23), pt(TOTAL, 8.0, 24)]
    inst, view = one(budget(), pts, [])
    assert spend(inst, view) == 6.0


# --------------------------------------------------------------------------- properties

amounts = st.floats(min_value=0, max_value=1000, allow_nan=False).map(lambda x: round(x, 4))
pod_points = st.lists(
    st.builds(pt, st.sampled_from(["p1", "p2", "p3", "p4"]), amounts, st.integers(0, 23)),
    max_size=40,
)
GPUS = [H100, A4500, "NVIDIA RTX A4500", "nvidia h100 80gb hbm3", "NVIDIA L4", None]


@settings(max_examples=200, deadline=None)
@given(points=pod_points, running=st.sets(st.sampled_from(["p1", "p5"])))
def test_per_pod_instances_sum_to_the_pods_total(
    points: list[SpendPoint], running: set[str]
) -> None:
    pods = [pod(pid) for pid in sorted(running)]
    scope, view = cut(budget(per="pod"), points, pods)
    assert abs(sum(spend(i, view) for i in scope.instances) - sum(p.amount for p in points)) < 1e-6
    assert {i.group.pod_id for i in scope.instances} == {p.resource for p in points} | running


@settings(max_examples=200, deadline=None)
@given(points=pod_points, gpus=st.lists(st.sampled_from(GPUS), min_size=4, max_size=4))
def test_per_gpu_type_instances_sum_to_the_pods_total(
    points: list[SpendPoint], gpus: list[str | None]
) -> None:
    # p1, p2 are live, p3 only in the registry, p4 never seen
    pods = [pod("p1", gpu=gpus[0]), pod("p2", gpu=gpus[1], running=False)]
    reg = [info("p3", "n3", gpus[2])]
    per, view = cut(budget(per="gpu_type"), points, pods, reg)
    whole, _ = one(budget(match={"pod_id": ["p1", "p2", "p3", "p4"]}), points, pods, reg)
    assert abs(sum(spend(i, view) for i in per.instances) - spend(whole, view)) < 1e-6
    keys = [i.group.key for i in per.instances]
    assert len(keys) == len({fold_gpu(k) for k in keys})  # one instance per folded GPU
