"""Idle and uptime guards: what a user of `guards:` would see, poll by poll."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.guards import (
    GuardFinding,
    GuardRule,
    IdleBook,
    IdleRule,
    PodMatch,
    evaluate_guards,
    idle_book_from_json,
    idle_book_to_json,
    run_guards,
    track_guards,
    track_idle,
)
from daemon.core.model import Pod, PodStatus, fold_gpu
from daemon.core.payload_pods import idle_payload, uptime_payload

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
POLL = timedelta(minutes=5)
GAP = 2 * POLL
ACC = "research"


def pod(
    pid: str = "p1",
    util: tuple[float, ...] | None = (0.0,),
    *,
    name: str = "dev-box",
    status: PodStatus = PodStatus.RUNNING,
    started: datetime | None = START,
    gpu: str | None = "NVIDIA H100 80GB HBM3",
    cost: float = 2.5,
) -> Pod:
    return Pod(
        pid,
        name,
        status,
        cost,
        gpu_type=gpu,
        gpu_count=len(util or ()),
        gpu_util=util,
        started_at=started,
    )


def idle_guard(
    name: str = "idle-dev", below: float = 5, for_min: int = 30, **kw: object
) -> GuardRule:
    return GuardRule(name=name, idle=IdleRule(below, timedelta(minutes=for_min)), **kw)  # type: ignore[arg-type]


def uptime_guard(name: str = "ttl", hours: float = 12, **kw: object) -> GuardRule:
    return GuardRule(name=name, uptime_over=timedelta(hours=hours), **kw)  # type: ignore[arg-type]


class Poller:
    """The daemon's loop in miniature: state carried from poll to poll."""

    def __init__(self, *rules: GuardRule, account: str = ACC) -> None:
        self.rules = rules
        self.account = account
        self.book: IdleBook = {}
        self.log: list[tuple[datetime, GuardFinding]] = []

    def poll(self, now: datetime, *pods: Pod) -> list[GuardFinding]:
        found, self.book = run_guards(self.rules, self.account, pods, self.book, now, max_gap=GAP)
        self.log.extend((now, f) for f in found)
        return found

    def ids(self) -> list[str]:
        """Distinct alert ids in order of first appearance: what dedupe lets through."""
        return list(dict.fromkeys(f.id for _, f in self.log))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --------------------------------------------------------------------------- idle


def test_idle_fires_after_for_and_not_before() -> None:
    p = Poller(idle_guard(for_min=30))
    for m in range(0, 30, 5):
        assert p.poll(at(m), pod(util=(1.0, 3.0))) == [], f"fired after {m} min"
    [f] = p.poll(at(30), pod(util=(1.0, 3.0)))
    assert f.kind == "idle"
    assert f.id == "research:idle-dev:pod=p1:2026-11-24T09:30:00Z:idle:2026-11-24T12:00:00Z"
    assert f.idle_since == T0
    assert f.idle_for == timedelta(minutes=30)
    assert f.gpu_util == 3.0
    assert f.idle_cost_usd == pytest.approx(1.25)  # 2.5 $/h for half an hour
    # still idle: the same id every poll, so dedupe sends it once per stretch
    for m in range(35, 120, 5):
        p.poll(at(m), pod(util=(0.0,)))
    assert p.ids() == [f.id]


def test_first_sample_is_never_idle_even_with_zero_for() -> None:
    p = Poller(idle_guard(for_min=0))
    assert p.poll(at(0), pod()) == []
    assert len(p.poll(at(5), pod())) == 1


def test_busy_pod_never_fires() -> None:
    p = Poller(idle_guard(for_min=10))
    for m in range(0, 300, 5):
        assert p.poll(at(m), pod(util=(90.0,))) == []


def test_one_busy_gpu_makes_the_pod_busy_and_the_level_is_strict() -> None:
    p = Poller(idle_guard(below=5, for_min=10))
    for m in range(0, 60, 5):
        p.poll(at(m), pod(util=(0.0, 0.0, 40.0, 0.0)), pod("p2", util=(5.0,)))  # 5 is not < 5
    assert p.ids() == []
    assert p.book["5"]["p2"].last_util == 5.0


def test_busy_sample_rearms_with_a_new_idle_since() -> None:
    p = Poller(idle_guard(for_min=10))
    for m in (0, 5, 10):
        p.poll(at(m), pod())
    p.poll(at(15), pod(util=(80.0,)))
    for m in (20, 25, 30):
        p.poll(at(m), pod())
    assert p.ids() == [
        "research:idle-dev:pod=p1:2026-11-24T09:30:00Z:idle:2026-11-24T12:00:00Z",
        "research:idle-dev:pod=p1:2026-11-24T09:30:00Z:idle:2026-11-24T12:20:00Z",
    ]


def test_restart_starts_over_and_names_the_new_run() -> None:
    p = Poller(idle_guard(for_min=10))
    restarted = START + timedelta(hours=2, minutes=40)  # 12:10
    p.poll(at(0), pod())
    p.poll(at(5), pod())
    assert p.poll(at(10), pod(started=restarted)) == []  # new run: its first sample
    assert p.poll(at(15), pod(started=restarted)) == []
    [f] = p.poll(at(20), pod(started=restarted))
    assert f.id == "research:idle-dev:pod=p1:2026-11-24T12:10:00Z:idle:2026-11-24T12:10:00Z"
    assert f.run_started_at == restarted


def test_gap_in_samples_gives_no_idle_alert() -> None:
    p = Poller(idle_guard(for_min=30))
    p.poll(at(0), pod())
    # daemon down (or GET /pods failed) for 40 minutes: nothing known in between
    assert p.poll(at(40), pod()) == []
    for m in (45, 50, 55, 60, 65):
        assert p.poll(at(m), pod()) == []
    [f] = p.poll(at(70), pod())  # 30 min after the first sample after the gap
    assert f.idle_since == at(40)


def test_gap_up_to_max_gap_keeps_the_stretch() -> None:
    p = Poller(idle_guard(for_min=30))
    for m in (0, 10, 20, 30):  # every 10 min = max_gap: one failed poll each time
        p.poll(at(m), pod())
    assert [f.idle_since for _, f in p.log] == [T0]


@pytest.mark.parametrize(
    "gone",
    [
        pod(util=None),  # runtime missing
        pod(util=()),  # no GPU to judge
        pod(status=PodStatus.EXITED, util=None),
    ],
    ids=["no-runtime", "cpu-pod", "exited"],
)
def test_a_pod_without_utilisation_is_not_idle_and_loses_its_stretch(gone: Pod) -> None:
    p = Poller(idle_guard(for_min=10))
    p.poll(at(0), pod())
    p.poll(at(5), gone)
    assert p.book["5"] == {}
    assert p.poll(at(10), pod()) == []  # a new stretch begins here
    assert [f.idle_since for f in p.poll(at(20), pod())] == [at(10)]


def test_pod_missing_from_the_list_is_forgotten() -> None:
    p = Poller(idle_guard(for_min=10))
    p.poll(at(0), pod())
    p.poll(at(5))  # not listed any more
    assert p.book == {"5": {}}


def test_guards_with_different_levels_track_separately() -> None:
    loose, strict = (
        idle_guard("loose", below=10, for_min=10),
        idle_guard("strict", below=2, for_min=10),
    )
    p = Poller(loose, strict)
    for m in (0, 5, 10):
        p.poll(at(m), pod(util=(4.0,)))
    assert {f.guard for _, f in p.log} == {"loose"}
    assert set(p.book) == {"10", "2"}
    assert p.book["2"]["p1"].idle_since is None
    # a level no guard uses any more is dropped from the stored state
    assert set(track_guards(p.book, [loose], [pod()], at(15), GAP)) == {"10"}


def test_idle_requires_a_sample_at_now() -> None:
    book: IdleBook = {"5": track_idle({}, [pod()], 5, at(0), GAP)}
    book["5"] = track_idle(book["5"], [pod()], 5, at(30), GAP)
    # evaluating later without a new sample says nothing
    assert evaluate_guards([idle_guard(for_min=10)], ACC, [pod()], book, at(35)) == []


def test_clock_going_back_starts_over() -> None:
    states = track_idle({}, [pod()], 5, at(30), GAP)
    states = track_idle(states, [pod()], 5, at(0), GAP)
    assert states["p1"].idle_since == at(0)


# --------------------------------------------------------------------------- uptime


def test_uptime_fires_once_per_run_with_a_stable_id() -> None:
    p = Poller(uptime_guard(hours=3))  # started 09:30, so over at 12:30
    assert p.poll(at(30), pod()) == []  # exactly 3h: not over
    [f] = p.poll(at(35), pod())
    assert f.kind == "uptime"
    assert f.id == "research:ttl:pod=p1:2026-11-24T09:30:00Z:uptime"
    assert f.uptime_hours == pytest.approx(3 + 5 / 60)
    for m in range(40, 200, 5):
        p.poll(at(m), pod())
    restarted = at(200)
    p.poll(at(200), pod(started=restarted))
    p.poll(at(200 + 181), pod(started=restarted))
    assert p.ids() == [f.id, "research:ttl:pod=p1:2026-11-24T15:20:00Z:uptime"]


def test_uptime_needs_a_known_start_and_a_running_pod() -> None:
    p = Poller(uptime_guard(hours=1))
    assert p.poll(at(0), pod(started=None)) == []
    assert p.poll(at(0), pod(status=PodStatus.EXITED)) == []
    assert p.poll(at(0), pod(util=None)) != []  # uptime does not need utilisation


# --------------------------------------------------------------------------- scope


def test_scope_match_except_and_accounts() -> None:
    rule = uptime_guard(
        hours=1,
        match=PodMatch(pod_name="dev-*", gpu_type=("nvidia  h100 80gb hbm3",)),
        except_pods=("keep1", "dev-keep-by-name"),
    )
    pods = [
        pod("a", name="dev-a"),
        pod("b", name="Dev-b"),  # glob is case-sensitive
        pod("c", name="dev-c", gpu="NVIDIA A100 80GB PCIe"),
        pod("d", name="dev-d", gpu=None),
        pod("keep1", name="dev-x"),
        pod("e", name="dev-keep-by-name"),
    ]
    assert [f.pod_id for f in evaluate_guards([rule], ACC, pods, {}, at(0))] == ["a"]
    by_id = uptime_guard(hours=1, match=PodMatch(pod_id=("b", "c")), accounts=("research",))
    assert [f.pod_id for f in evaluate_guards([by_id], ACC, pods, {}, at(0))] == ["b", "c"]
    assert evaluate_guards([by_id], "other", pods, {}, at(0)) == []


def test_fold_gpu_matches_scopes_rule() -> None:
    assert fold_gpu(" NVIDIA  RTX a4500 ") == "nvidia rtx a4500"


# --------------------------------------------------------------------------- payload


def test_findings_carry_the_payload_and_the_stop_request() -> None:
    rule = GuardRule(
        name="both",
        idle=IdleRule(5, timedelta(minutes=10)),
        uptime_over=timedelta(hours=1),
        stop=True,
        dry_run=False,
    )
    p = Poller(rule)
    p.poll(at(0), pod(util=(1.0, 2.0)))
    p.poll(at(6), pod(util=(0.0,)))
    last = pod(util=(4.0, 2.0))
    idle, uptime = p.poll(at(12), last)
    assert (idle.stop, idle.dry_run, uptime.stop) == (True, False, True)
    assert idle.idle_for == timedelta(minutes=12) and idle.idle_cost_usd == 0.5
    # the payload the pipeline sends for this finding (core/payload_pods.py)
    record = idle_payload(
        account=idle.account, guard=idle.guard, pod=last, gpu_util=idle.gpu_util or 0.0,
        idle_since=idle.idle_since or at(0), fired_at=at(12),
    )
    assert record.id == idle.id
    assert record.to_json() == {
        "id": "research:both:pod=p1:2026-11-24T09:30:00Z:idle:2026-11-24T12:00:00Z",
        "kind": "idle",
        "account": "research",
        "guard": "both",
        "pod_id": "p1",
        "pod_name": "dev-box",
        "gpu_type": "NVIDIA H100 80GB HBM3",
        "cost_per_hr": 2.5,
        "run_started_at": "2026-11-24T09:30:00Z",
        "gpu_util": 4.0,
        "idle_since": "2026-11-24T12:00:00Z",
        "fired_at": "2026-11-24T12:12:00Z",
    }
    up = uptime_payload(
        account=uptime.account, guard=uptime.guard, pod=last, uptime_over="1h", fired_at=at(12)
    )
    assert up.id == uptime.id and uptime.uptime_hours == 2.7
    assert up.to_json()["uptime_hours"] == 2.7 and "gpu_util" not in up.to_json()


# --------------------------------------------------------------------------- storage


def test_book_survives_a_restart_of_the_daemon() -> None:
    p = Poller(idle_guard(for_min=10))
    p.poll(at(0), pod(started=START.replace(microsecond=250)))
    p.book = idle_book_from_json(idle_book_to_json(p.book))
    assert len(p.poll(at(10), pod(started=START.replace(microsecond=250)))) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "[1]",
        "{",
        '{"5": 3}',
        '{"5": {"p1": {"run_start": null}}}',
        '{"5": {"p1": [null, null, "2026-11-24T12:00:00", 1.0]}}',  # no zone
        '{"5": {"p1": [null, null, null, 1.0]}}',  # no sample time
    ],
)
def test_bad_book_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an idle book"):
        idle_book_from_json(bad)


def test_empty_book() -> None:
    assert idle_book_from_json(None) == {}
    assert idle_book_from_json("") == {}


# --------------------------------------------------------------------------- property

FOR = timedelta(minutes=20)
# weighted so that long idle stretches, gaps, restarts and busy samples all occur
RARE = st.integers(min_value=0, max_value=9).map(lambda x: x == 0)
UTILS = st.one_of(
    st.lists(st.sampled_from([0.0, 0.0, 4.9, 4.9, 5.0, 60.0]), min_size=1, max_size=3),
    st.lists(st.just(1.0), min_size=1, max_size=2),
    st.sampled_from([None, ()]),
)
STEP = st.tuples(
    st.integers(min_value=1, max_value=14),  # minutes since the previous sample
    UTILS,
    RARE,  # restarted before this sample
    RARE.map(lambda x: not x),  # listed as RUNNING (else EXITED)
)


def expected_idle_since(samples: Sequence[tuple[datetime, Pod]], i: int) -> datetime | None:
    """Oracle: start of the unbroken idle run of samples ending at i, if it counts."""

    def idle(p: Pod) -> bool:
        return p.running and bool(p.gpu_util) and max(p.gpu_util or (0.0,)) < 5

    t, p = samples[i]
    if not idle(p):
        return None
    j = i
    while j > 0:
        tp, pp = samples[j - 1]
        tj, pj = samples[j]
        if not idle(pp) or pp.started_at != pj.started_at or tj - tp > GAP:
            break
        j -= 1
    start = samples[j][0]
    return start if start < t and t - start >= FOR else None


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=40))
def test_idle_fires_exactly_when_two_idle_samples_for_apart_with_nothing_between(
    steps: list[tuple[int, tuple[float, ...] | None, bool, bool]],
) -> None:
    p = Poller(GuardRule("g", idle=IdleRule(5, FOR)))
    now, started = T0, START
    samples: list[tuple[datetime, Pod]] = []
    for minutes, util, restart, running in steps:
        now += timedelta(minutes=minutes)
        if restart:
            started = now
        status = PodStatus.RUNNING if running else PodStatus.EXITED
        current = pod(util=util, started=started, status=status)
        samples.append((now, current))
        found = p.poll(now, current)
        want = expected_idle_since(samples, len(samples) - 1)
        assert [f.idle_since for f in found] == ([want] if want else [])
