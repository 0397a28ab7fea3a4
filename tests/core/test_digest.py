"""core.digest.summarize: spend today / week / month cut in the config's zone
(from the account series: every resource), top pods and GPU types by today's
spend with an hourly series (GPU types through live pods, then the registry),
budgets by percent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from daemon.config.models import Config
from daemon.core.digest import family_split, summarize
from daemon.core.model import TOTAL, Group, InstanceStatus, PodInfo, SeriesKey, SpendPoint, Window
from daemon.core.payload_digest import DigestBudget, DigestData, DigestItem, digest_payload
from daemon.core.spend import SpendData
from tests.core.helpers import pod

H = timedelta(hours=1)
NOW = datetime(2026, 11, 24, 14, 5, tzinfo=UTC)  # Tuesday; Berlin is UTC+1
ACC = SeriesKey("default", "account")
PODS = SeriesKey("default", "pods")


def config(zone: str = "Europe/Berlin", top: int = 5) -> Config:
    return Config.model_validate(
        {
            "version": 1,
            "timezone": zone,
            "notifiers": {"ops": {"type": "console"}},
            "defaults": {"notify": ["ops"]},
            "digest": {"cron": "0 9 * * *", "top": top},
        }
    )


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# Each amount a distinct power of two, so every sum names the hours it took.
TOTALS = [
    SpendPoint(utc(2026, 10, 31, 22), TOTAL, 1),  # Sat 31 Oct 23:00 Berlin: last month
    SpendPoint(utc(2026, 10, 31, 23), TOTAL, 2),  # Sun 1 Nov 00:00 Berlin: month only
    SpendPoint(utc(2026, 11, 22, 22), TOTAL, 4),  # Sun 22 Nov 23:00: month, not week
    SpendPoint(utc(2026, 11, 22, 23), TOTAL, 8),  # Mon 23 Nov 00:00: week starts
    SpendPoint(utc(2026, 11, 23, 22), TOTAL, 16),  # Mon 23:00: yesterday
    SpendPoint(utc(2026, 11, 23, 23), TOTAL, 32),  # Tue 24 Nov 00:00: today
    SpendPoint(utc(2026, 11, 24, 13), TOTAL, 64),  # today, 14:00 local
    SpendPoint(utc(2026, 11, 24, 13), "serverless", 64),  # a component: not added again
    SpendPoint(utc(2026, 11, 24, 12), TOTAL, 128),  # today, 13:00 local
]

POD_POINTS = [
    SpendPoint(utc(2026, 11, 23, 22), "pod-c", 1000.0),  # yesterday (Berlin): not in top
    SpendPoint(utc(2026, 11, 23, 23), "pod-a", 10.0),
    SpendPoint(utc(2026, 11, 24, 13), "pod-a", 5.0),
    SpendPoint(utc(2026, 11, 24, 13), "pod-b", 20.0),
    SpendPoint(utc(2026, 11, 24, 12), "pod-d", 0.0),  # no spend: not listed
]


def spend_data(
    totals: Sequence[SpendPoint] = (),
    pods: Sequence[SpendPoint] = (),
    registry: Sequence[PodInfo] = (),
) -> SpendData:
    return SpendData.of(
        {ACC: list(totals), PODS: list(pods)}, {"default": {i.id: i for i in registry}}
    )


def summary(
    cfg: Config,
    d: SpendData,
    statuses: Sequence[InstanceStatus] = (),
    now: datetime = NOW,
    **kw: object,
) -> DigestData:
    return summarize(cfg, d, statuses, now, **kw)  # type: ignore[arg-type]


def status(budget: str, spend: float, limit: float, group: Group | None = None) -> InstanceStatus:
    w = Window("day", utc(2026, 11, 23, 23), utc(2026, 11, 24, 23), rolling=False)
    return InstanceStatus(
        account="default",
        budget=budget,
        group=group or Group(),
        window=w,
        spend=spend,
        limit=limit,
        forecast=None,
        thresholds=(80.0, 100.0),
        forecast_enabled=False,
    )


def test_spend_today_week_and_month_are_cut_in_the_configured_zone() -> None:
    d = summary(config(), spend_data(TOTALS, POD_POINTS))
    assert d.date == date(2026, 11, 24)
    assert d.timezone == "Europe/Berlin"
    assert d.period == "daily" and d.account is None
    assert d.spend_today == 32 + 64 + 128
    assert d.spend_week == 8 + 16 + 32 + 64 + 128
    assert d.spend_month == 2 + 4 + 8 + 16 + 32 + 64 + 128


def test_the_same_points_in_utc_give_utc_windows() -> None:
    d = summary(config("UTC"), spend_data(TOTALS, POD_POINTS))
    assert d.spend_today == 64 + 128  # 23:00Z on the 23rd is yesterday in UTC
    assert d.spend_week == 16 + 32 + 64 + 128  # the week starts Mon 23 Nov 00:00Z
    assert d.spend_month == 4 + 8 + 16 + 32 + 64 + 128  # Nov 1 00:00Z: 31 Oct 23:00Z is out


def test_month_to_date_counts_settled_days_held_as_day_buckets() -> None:
    days = [SpendPoint(utc(2026, 11, d), TOTAL, 1.0, 24) for d in range(1, 24)]
    d = summary(config("UTC"), spend_data([*days, SpendPoint(utc(2026, 11, 24, 3), TOTAL, 0.5)]))
    assert d.spend_month == 23.5
    assert d.spend_week == 1.5  # Mon 23 Nov as a day bucket + today's hour
    assert d.spend_today == 0.5


def test_family_split_reads_the_account_components() -> None:
    d = spend_data(TOTALS)
    split = family_split(d, ["default"], utc(2026, 11, 24), utc(2026, 11, 25))
    assert split[TOTAL] == 64 + 128 and split["serverless"] == 64 and split["pods"] == 0


def test_local_date_follows_the_zone_near_midnight() -> None:
    late = utc(2026, 11, 24, 23, 30)  # 00:30 on the 25th in Berlin
    assert summary(config(), spend_data(), now=late).date == date(2026, 11, 25)
    assert summary(config("UTC"), spend_data(), now=late).date == date(2026, 11, 24)


def test_top_pods_rank_todays_spend_with_an_hourly_series() -> None:
    live = {"default": [pod(p, gpu="A100" if p == "pod-a" else "H100") for p in ("pod-a", "pod-b")]}
    d = summary(config(), spend_data(TOTALS, POD_POINTS), pods=live)
    assert [(i.label, i.spend) for i in d.top_pods] == [
        ("name-pod-b (pod-b)", 20.0),
        ("name-pod-a (pod-a)", 15.0),
    ]
    a = d.top_pods[1]
    assert len(a.hourly) == 24  # one value per hour of the local day
    # index 0 is 23:00Z (00:00 Berlin); 13:00Z is index 14
    assert a.hourly[0] == 10.0 and a.hourly[14] == 5.0
    assert sum(a.hourly) == a.spend
    assert d.top_pods[0].hourly == tuple(20.0 if k == 14 else 0.0 for k in range(24))
    assert [(i.label, i.spend) for i in d.top_gpu_types] == [("H100", 20.0), ("A100", 15.0)]
    assert d.top_gpu_types[1].hourly[0] == 10.0 and d.top_gpu_types[1].hourly[14] == 5.0


def test_gpu_types_of_pods_no_longer_listed_come_from_the_registry_else_unknown() -> None:
    # v2 (contract "What a budget counts"): a pod RunPod stopped listing keeps
    # its GPU type via the registry; a pod never seen is "unknown"
    reg = [PodInfo("pod-a", "train-a", "A100", 1, utc(2026, 11, 1), utc(2026, 11, 24), "EXITED")]
    d = summary(config(), spend_data(TOTALS, POD_POINTS, reg), pods={"default": None})
    assert [(i.label, i.spend) for i in d.top_gpu_types] == [("unknown", 20.0), ("A100", 15.0)]
    assert [i.label for i in d.top_pods] == ["pod-b", "train-a (pod-a)"]


def test_top_is_limited_and_ties_break_by_name() -> None:
    pts = [SpendPoint(utc(2026, 11, 24, 10), p, 7.0) for p in ("pod-z", "pod-y", "pod-x")]
    d = summary(config(top=2), spend_data(pods=pts))
    assert [i.label for i in d.top_pods] == ["pod-x", "pod-y"]


def test_hourly_series_has_25_hours_on_the_day_daylight_saving_time_ends() -> None:
    # EU summer time ends on Sunday 25 Oct 2026: that Berlin day has 25 hours
    now = utc(2026, 10, 25, 12)
    pts = [
        SpendPoint(utc(2026, 10, 24, 22), "pod-a", 1.0),  # 00:00 CEST
        SpendPoint(utc(2026, 10, 25, 22), "pod-a", 2.0),  # 23:00 CET, the last hour
    ]
    d = summary(config(), spend_data(pods=pts), now=now)
    (item,) = d.top_pods
    assert len(item.hourly) == 25
    assert item.hourly[0] == 1.0 and item.hourly[-1] == 2.0 and item.spend == 3.0


def test_budgets_are_listed_by_percent_highest_first() -> None:
    statuses = [
        status("low", 10, 100),
        status("over", 150, 100),
        status("pod", 45, 50, Group(pod_id="pod-a", pod_name="train-a")),
        status("mid", 80, 100),
    ]
    d = summary(config(), spend_data(), statuses)
    assert [(b.name, b.percent) for b in d.budgets] == [
        ("over", 150.0),
        ("pod", 90.0),
        ("mid", 80.0),
        ("low", 10.0),
    ]
    assert all(isinstance(b, DigestBudget) for b in d.budgets)
    assert d.budgets[0].spend == 150 and d.budgets[0].limit == 100
    assert d.budgets[0].window == "day"


def test_no_data_gives_zeros_and_empty_lists() -> None:
    d = summary(config(), spend_data())
    assert (d.spend_today, d.spend_week, d.spend_month) == (0, 0, 0)
    assert d.top_pods == () and d.top_gpu_types == () and d.budgets == ()
    assert DigestItem("x", 0.0).hourly == ()


def test_digest_shows_the_split_by_family_and_the_top_endpoints() -> None:
    # storage keeps billing with every pod stopped; serverless runs today only
    acct = [
        SpendPoint(utc(2026, 11, d), name, amount, 24)
        for d in range(1, 24)
        for name, amount in ((TOTAL, 2.0), ("pods", 1.0), ("storage", 1.0))
    ] + [
        SpendPoint(utc(2026, 11, 24, 10), TOTAL, 3.5),
        SpendPoint(utc(2026, 11, 24, 10), "storage", 0.5),
        SpendPoint(utc(2026, 11, 24, 10), "serverless", 3.0),
    ]
    endpoints = [SpendPoint(utc(2026, 11, 24, 10), "ep-1", 3.0)]
    d = SpendData.of(
        {ACC: acct, SeriesKey("default", "serverless"): endpoints},
        {},
        {("default", "serverless"): {"ep-1": "sdxl"}},
    )
    got = summary(config("UTC"), d)
    by = {f: (t, w, m) for f, t, w, m in got.families}
    assert by == {
        "pods": (0.0, 1.0, 23.0),
        "serverless": (3.0, 3.0, 3.0),
        "storage": (0.5, 1.5, 23.5),
    }
    assert [(i.label, i.spend) for i in got.top_endpoints] == [("sdxl (ep-1)", 3.0)]
    payload = digest_payload(got, NOW)
    assert payload["by_family"][2] == {
        "family": "storage", "today": 0.5, "week_to_date": 1.5, "month_to_date": 23.5,
    }
