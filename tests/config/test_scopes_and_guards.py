"""What budgets count, guards, balance, durations and api.version, as the
engine sees them through the config's helpers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from daemon.config.loader import ConfigError, parse_config
from daemon.config.models import Api, Config, format_duration, parse_duration
from tests.config.helpers import ENV

HEAD = """\
version: 1
notifiers:
  ops: {type: console}
  pager: {type: console}
defaults: {notify: [ops]}
"""


def load(body: str, version: str = "v2") -> Config:
    return parse_config(f"{HEAD}api: {{version: {version}}}\n{body}", file="c.yaml", env=ENV)


def problems(body: str, version: str = "v2") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(body, version)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


# ------------------------------------------------------------------ api.version


def test_api_version_defaults_to_v2_and_says_what_it_can_do() -> None:
    c = parse_config(HEAD, env=ENV)
    assert c.api.version == "v2"
    assert c.api.families == ("pods", "serverless", "storage", "clusters", "public_endpoints")
    assert c.api.reports_gpu_util is True
    assert c.api.default_base_url == "https://api.runpod.io/v2"
    v1 = load("", "v1").api
    assert (v1.families, v1.reports_gpu_util) == (("pods", "serverless", "storage"), False)
    assert v1.default_base_url == "https://rest.runpod.io/v1"


# ------------------------------------------------------------------ what a budget counts


BUDGETS = """\
budgets:
  - {name: everything, window: day, limit: 10}
  - {name: compute, window: day, limit: 10, resources: [serverless, pods]}
  - {name: storage-only, window: day, limit: 10, resources: [storage]}
  - {name: h100, window: day, limit: 10, match: {gpu_type: [H100]}, per: pod}
  - {name: each-gpu, window: day, limit: 10, per: gpu_type}
  - {name: each-endpoint, window: day, limit: 10, per: endpoint}
  - {name: api, window: day, limit: 10, match: {endpoint_name: "api-*"}}
  - {name: data, window: day, limit: 10, match: {volume_id: [v1]}, per: volume}
"""


def test_scope_family_and_families_follow_match_then_per_then_resources() -> None:
    c = load(BUDGETS)
    got = {b.name: (b.scope_family, c.budget_families(b), b.can_contain_pods) for b in c.budgets}
    assert got == {
        "everything": (None, c.api.families, True),
        "compute": (None, ("pods", "serverless"), True),
        "storage-only": (None, ("storage",), False),
        "h100": ("pods", ("pods",), True),
        "each-gpu": ("pods", ("pods",), True),
        "each-endpoint": ("serverless", ("serverless",), False),
        "api": ("serverless", ("serverless",), False),
        "data": ("storage", ("storage",), False),
    }


def test_an_unscoped_budget_under_v1_counts_what_v1_reports() -> None:
    c = load("budgets:\n  - {name: all, window: day, limit: 10}\n", "v1")
    assert c.budget_families(c.budgets[0]) == ("pods", "serverless", "storage")


def test_v1_accepts_endpoint_budgets_and_storage_for_the_whole_account() -> None:
    c = load(
        "budgets:\n"
        "  - {name: s, window: day, limit: 10, resources: [storage, pods]}\n"
        "  - {name: e, window: day, limit: 10, per: endpoint}\n",
        "v1",
    )
    assert [b.name for b in c.budgets] == ["s", "e"]


def test_per_must_agree_with_the_match_family() -> None:
    body = (
        "budgets:\n"
        "  - {name: a, window: day, limit: 10, per: volume, match: {pod_name: 'x*'}}\n"
        "  - {name: b, window: day, limit: 10, per: pod, match: {volume_name: 'x*'}}\n"
    )
    assert problems(body) == [
        "budgets.0.per: per: volume does not fit a match on pods "
        "(use per: pod or per: gpu_type)",
        "budgets.1.per: per: pod does not fit a match on network volumes (use per: volume)",
    ]


def test_except_pods_is_fine_on_unscoped_and_pod_budgets_only() -> None:
    ok = load(
        "budgets:\n"
        "  - {name: a, window: day, limit: 10, except_pods: [p1]}\n"
        "  - {name: b, window: day, limit: 10, per: pod, except_pods: [p1]}\n"
    )
    assert [b.except_pods for b in ok.budgets] == [["p1"], ["p1"]]
    assert problems(
        "budgets:\n  - {name: a, window: day, limit: 10, per: endpoint, except_pods: [p1]}\n"
    ) == [
        "budgets.0.except_pods: except_pods applies only to budgets that count pods, "
        "this one counts serverless endpoints"
    ]


def test_empty_or_repeated_resources_are_errors() -> None:
    assert problems(
        "budgets:\n"
        "  - {name: a, window: day, limit: 10, resources: []}\n"
        "  - {name: b, window: day, limit: 10, resources: [pods, pods]}\n"
    ) == [
        "budgets.0.resources: must list at least one resource (or leave the key out)",
        "budgets.1.resources: resource 'pods' is listed twice",
    ]


# ------------------------------------------------------------------ guards


GUARDS = """\
guards:
  - name: idle
    idle: {gpu_util_below: 5, for: 30m}
    match: {gpu_type: [H100], pod_name: "dev-*"}
    stop: {}
  - name: ttl
    uptime_over: 12h
    notify: [pager]
    stop: {dry_run: false}
"""


def test_guards_hold_typed_durations_and_default_to_a_dry_run() -> None:
    c = load(GUARDS)
    idle, ttl = c.guards
    assert idle.idle is not None and idle.idle.for_ == timedelta(minutes=30)
    assert idle.idle.gpu_util_below == 5
    assert idle.stop is not None and idle.stop.dry_run is True and idle.stops is False
    assert ttl.uptime_over == timedelta(hours=12) and ttl.stops is True
    assert c.effective_notify(idle) == ["ops"]
    assert c.effective_notify(ttl) == ["pager"]
    assert c.budget_accounts(idle) == ["default"]


def test_a_guard_that_really_stops_may_notify_nobody() -> None:
    c = parse_config(
        "version: 1\nguards:\n  - {name: g, uptime_over: 1d, stop: {dry_run: false}}\n",
        env=ENV,
    )
    assert c.effective_notify(c.guards[0]) == []


def test_guard_names_follow_the_budget_name_rule() -> None:
    assert problems("guards:\n  - {name: 'idle pods', uptime_over: 1h}\n") == [
        "guards.0.name: guard name 'idle pods' must start with a letter or digit and use "
        "only letters, digits, '_', '.', '-' (max 64)"
    ]


# ------------------------------------------------------------------ balance and grouping


def test_balance_levels_are_sorted_most_urgent_last_and_notify_defaults() -> None:
    c = load("balance: {below_usd: [25, 100.5], runway_below: [6h, 1d, 90m]}\n")
    assert c.balance is not None
    assert c.balance.below_usd == [100.5, 25]
    assert c.balance.runway_below == [timedelta(days=1), timedelta(hours=6), timedelta(minutes=90)]
    assert [format_duration(d) for d in c.balance.runway_below] == ["1d", "6h", "90m"]
    assert c.balance_notify() == ["ops"]
    assert load("balance: {below_usd: [5], notify: [pager]}\n").balance_notify() == ["pager"]
    assert load("").balance_notify() == []


def test_balance_amounts_must_be_above_zero_and_finite() -> None:
    assert problems("balance: {below_usd: [0, -5, .inf, true]}\n") == [
        "balance.below_usd.0: 0 is not an amount above 0",
        "balance.below_usd.1: -5 is not an amount above 0",
        "balance.below_usd.2: inf is not an amount above 0",
        "balance.below_usd.3: true is not an amount: write a number of USD, e.g. 25",
    ]


def test_balance_runway_must_be_a_minute_at_least() -> None:
    assert problems("balance: {runway_below: [6h, 0s]}\n") == [
        "balance.runway_below.1: must be at least 1m"
    ]


def test_balance_that_notifies_nobody_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            "version: 1\nbalance:\n  below_usd: [25]\n", file="c.yaml", env=ENV
        )
    assert [str(p) for p in info.value.problems] == [
        "c.yaml:2:1: balance: notifies nobody (set notify here or defaults.notify)"
    ]


def test_grouping_defaults_to_ten() -> None:
    assert load("").grouping.max_individual == 10
    assert load("grouping: {max_individual: 3}\n").grouping.max_individual == 3


# ------------------------------------------------------------------ durations


def test_duration_fields_are_timedeltas() -> None:
    c = load("poll_interval: 2m\nhealth: {after: 1h}\n")
    assert c.poll_interval == timedelta(minutes=2) == c.poll
    assert c.health.after == timedelta(hours=1)
    assert (c.api.timeout, c.api.deadline) == (timedelta(seconds=10), timedelta(seconds=60))


def test_models_built_in_code_accept_timedeltas_and_text() -> None:
    api = Api(timeout=timedelta(seconds=5), deadline="2m")  # type: ignore[arg-type]
    assert (api.timeout, api.deadline) == (timedelta(seconds=5), timedelta(minutes=2))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("300", "300 is not a duration: write it with a unit, e.g. 30s, 5m, 6h, 7d"),
        ("2.5", "2.5 is not a duration: write it with a unit, e.g. 30s, 5m, 6h, 7d"),
        ("true", "true is not a duration like 30s, 5m, 6h, 7d"),
        ("PT5M", "'PT5M' is not a duration like 30s, 5m, 6h, 7d"),
        ("[5m]", "must be a string"),
        ("0s", "poll_interval must be at least 1s"),
    ],
)
def test_poll_interval_says_how_to_write_a_duration(text: str, message: str) -> None:
    assert problems(f"poll_interval: {text}\n") == [f"poll_interval: {message}"]


def test_format_duration_is_the_inverse_of_parse_duration_up_to_units() -> None:
    for text in ("30s", "5m", "6h", "7d", "90m", "36h"):
        assert format_duration(parse_duration(text)) == text
    assert format_duration(parse_duration("24h")) == "1d"
    assert format_duration(parse_duration("2w")) == "14d"
