"""Scopes: series a budget needs and how points are cut into instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.models import Budget
from daemon.core.model import Pod, PodStatus, SeriesKey, SpendPoint
from daemon.core.scopes import Instance, fold_gpu, instances_for, series_for

T0 = datetime(2026, 11, 24, 0, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"
A4500 = "NVIDIA  RTX A4500"  # RunPod's own spelling has two spaces
GPU = SeriesKey("acc", "gpuTypeId")
POD = SeriesKey("acc", "podId")


def budget(**kw: Any) -> Budget:
    return Budget.model_validate({"name": "b", "window": "day", "limit": 100, **kw})


def pt(group: str, amount: float, hour: int = 0) -> SpendPoint:
    return SpendPoint(T0 + timedelta(hours=hour), group, amount)


def pod(
    pid: str, name: str, gpu: str | None = H100, running: bool = True, cost: float = 2.0
) -> Pod:
    status = PodStatus.RUNNING if running else PodStatus.EXITED
    return Pod(pid, name, status, cost, gpu, 1 if gpu else 0)


def spend(inst: Instance) -> float:
    return round(sum(p.amount for p in inst.points), 6)


def test_fold_gpu() -> None:
    assert fold_gpu("NVIDIA  RTX A4500") == fold_gpu("nvidia rtx a4500 ") == "nvidia rtx a4500"
    assert fold_gpu("\tNVIDIA\nH100  80GB HBM3") == "nvidia h100 80gb hbm3"
    assert fold_gpu("NVIDIA H100 NVL") != fold_gpu("NVIDIA H100 PCIe")


def test_series_for_each_kind_of_budget() -> None:
    assert series_for(budget(), "acc") == {GPU}
    assert series_for(budget(match={"gpu_type": [H100]}), "acc") == {GPU}
    assert series_for(budget(per="gpu_type"), "acc") == {GPU}
    assert series_for(budget(per="pod"), "acc") == {POD}
    assert series_for(budget(match={"pod_id": ["p1"]}), "acc") == {POD}
    assert series_for(budget(match={"pod_name": "train-*"}), "acc") == {POD}
    assert series_for(budget(except_pods=["p9"]), "acc") == {POD}
    assert series_for(budget(per="pod", match={"gpu_type": [H100, A4500]}), "acc") == {
        SeriesKey("acc", "podId", H100),
        SeriesKey("acc", "podId", A4500),
    }


def test_gpu_names_that_fold_equal_are_fetched_once() -> None:
    b = budget(per="pod", match={"gpu_type": [A4500, "nvidia rtx a4500"]})
    assert series_for(b, "acc") == {SeriesKey("acc", "podId", A4500)}


def test_account_wide_is_one_instance_with_everything() -> None:
    pts = {GPU: [pt(H100, 3.0), pt(A4500, 1.5, 1)]}
    scope = instances_for(budget(), "acc", pts, [pod("p1", "a"), pod("p2", "b", running=False)])
    assert scope.skipped is None
    [inst] = scope.instances
    assert inst.group.key == "all"
    assert spend(inst) == 4.5
    assert [p.id for p in inst.running] == ["p1"]


def test_gpu_type_match_folds_names_and_filters_live_pods() -> None:
    b = budget(match={"gpu_type": ["nvidia rtx  a4500"]})
    pts = {GPU: [pt(H100, 3.0), pt(A4500, 1.5)]}
    [inst] = instances_for(b, "acc", pts, [pod("p1", "a"), pod("p2", "b", gpu=A4500)]).instances
    assert spend(inst) == 1.5
    assert [p.id for p in inst.running] == ["p2"]


def test_per_gpu_type_keeps_runpod_spelling_and_includes_running_without_spend() -> None:
    pts = {GPU: [pt(H100, 3.0), pt(A4500, 1.0), pt(A4500, 1.0, 1)]}
    pods = [pod("p3", "c", gpu="NVIDIA L4")]
    scope = instances_for(budget(per="gpu_type"), "acc", pts, pods)
    got = {i.group.gpu_type: spend(i) for i in scope.instances}
    assert got == {H100: 3.0, A4500: 2.0, "NVIDIA L4": 0.0}
    assert {i.group.key for i in scope.instances} == {
        f"gpu={H100}",
        f"gpu={A4500}",
        "gpu=NVIDIA L4",
    }


def test_per_pod_instances_from_spend_and_running_pods() -> None:
    pts = {POD: [pt("p1", 2.0), pt("p1", 2.0, 1), pt("gone", 5.0)]}
    pods = [pod("p1", "train-a"), pod("p2", "train-b"), pod("p3", "idle", running=False)]
    scope = instances_for(budget(per="pod"), "acc", pts, pods)
    got = {(i.group.pod_id, i.group.pod_name): spend(i) for i in scope.instances}
    assert got == {("p1", "train-a"): 4.0, ("p2", "train-b"): 0.0, ("gone", None): 5.0}
    assert all(not i.aggregate for i in scope.instances)


def test_pod_name_glob_matches_names_from_pods_list_only() -> None:
    b = budget(per="pod", match={"pod_name": "train-*"})
    pts = {POD: [pt("p1", 1.0), pt("p2", 1.0), pt("gone", 9.0)]}
    pods = [pod("p1", "train-a"), pod("p2", "eval-a"), pod("p4", "TRAIN-x")]
    scope = instances_for(b, "acc", pts, pods)
    assert [i.group.pod_id for i in scope.instances] == ["p1"]


def test_pod_name_budget_is_skipped_when_pods_list_failed() -> None:
    b = budget(match={"pod_name": "train-*"})
    scope = instances_for(b, "acc", {POD: [pt("p1", 1.0)]}, None)
    assert scope.instances == []
    assert scope.skipped is not None
    assert "pod_name" in scope.skipped
    assert "GET /pods" in scope.skipped


def test_pod_id_budget_still_works_when_pods_list_failed() -> None:
    b = budget(match={"pod_id": ["p1", "p2"]})
    scope = instances_for(b, "acc", {POD: [pt("p1", 1.0), pt("p2", 2.0), pt("p3", 4.0)]}, None)
    assert scope.skipped is None
    [inst] = scope.instances
    assert spend(inst) == 3.0


def test_except_pods_removes_spend_and_live_burn() -> None:
    b = budget(except_pods=["dev"])
    pts = {POD: [pt("p1", 1.0), pt("dev", 7.0)]}
    [inst] = instances_for(b, "acc", pts, [pod("p1", "a"), pod("dev", "dev")]).instances
    assert spend(inst) == 1.0
    assert [p.id for p in inst.running] == ["p1"]


def test_pod_level_budget_with_gpu_match_reads_filtered_series() -> None:
    b = budget(per="pod", match={"gpu_type": [H100], "pod_name": "train-*"})
    pts = {
        SeriesKey("acc", "podId", H100): [pt("p1", 2.0)],
        POD: [pt("p2", 50.0)],  # another budget's series: not read
    }
    pods = [pod("p1", "train-a"), pod("p2", "train-b", gpu=A4500)]
    scope = instances_for(b, "acc", pts, pods)
    assert [(i.group.pod_id, i.group.gpu_type, spend(i)) for i in scope.instances] == [
        ("p1", H100, 2.0)
    ]


def test_per_gpu_type_with_except_pods_uses_pods_gpu() -> None:
    b = budget(per="gpu_type", except_pods=["dev"])
    pts = {POD: [pt("p1", 1.0), pt("p2", 2.0), pt("dev", 9.0)]}
    pods = [pod("p1", "a"), pod("p2", "b", gpu=A4500), pod("dev", "dev")]
    scope = instances_for(b, "acc", pts, pods)
    assert {i.group.gpu_type: spend(i) for i in scope.instances} == {H100: 1.0, A4500: 2.0}
    assert instances_for(b, "acc", pts, None).skipped is not None


def test_window_bounds_filter_points() -> None:
    pts = {GPU: [pt(H100, 1.0, -1), pt(H100, 2.0, 0), pt(H100, 4.0, 23), pt(H100, 8.0, 24)]}
    [inst] = instances_for(budget(), "acc", pts, [], start=T0, end=T0 + timedelta(days=1)).instances
    assert spend(inst) == 6.0


def test_other_accounts_points_are_ignored() -> None:
    pts = {GPU: [pt(H100, 1.0)], SeriesKey("other", "gpuTypeId"): [pt(H100, 100.0)]}
    [inst] = instances_for(budget(), "acc", pts, []).instances
    assert spend(inst) == 1.0


# --------------------------------------------------------------------------- properties

amounts = st.floats(min_value=0, max_value=1000, allow_nan=False).map(lambda x: round(x, 4))
pod_points = st.lists(
    st.builds(pt, st.sampled_from(["p1", "p2", "p3", "p4"]), amounts, st.integers(0, 23)),
    max_size=40,
)
gpu_points = st.lists(
    st.builds(
        pt,
        st.sampled_from([H100, A4500, "NVIDIA RTX A4500", "nvidia h100 80gb hbm3", "NVIDIA L4"]),
        amounts,
        st.integers(0, 23),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(points=pod_points, running=st.sets(st.sampled_from(["p1", "p5"])))
def test_per_pod_instances_sum_to_account_total(
    points: list[SpendPoint], running: set[str]
) -> None:
    pods = [pod(pid, f"n-{pid}") for pid in sorted(running)]
    scope = instances_for(budget(per="pod"), "acc", {POD: points}, pods)
    total = sum(p.amount for p in points)
    assert abs(sum(spend(i) for i in scope.instances) - total) < 1e-6
    seen = {p.group for p in points} | running
    assert {i.group.pod_id for i in scope.instances} == seen


@settings(max_examples=200, deadline=None)
@given(points=gpu_points)
def test_per_gpu_type_instances_sum_to_account_total(points: list[SpendPoint]) -> None:
    per = instances_for(budget(per="gpu_type"), "acc", {GPU: points}, []).instances
    [whole] = instances_for(budget(), "acc", {GPU: points}, []).instances
    assert abs(sum(spend(i) for i in per) - spend(whole)) < 1e-6
    assert len(per) == len({fold_gpu(p.group) for p in points})
