"""The fast reader (libyaml, no marks) gives exactly the round-trip reader's
data, or declines: a good config means the same and a bad one is reported
the same, whichever reader ends up reading it."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from daemon.config import fast_yaml
from daemon.config.fast_yaml import plain_or_none
from daemon.config.loader import ConfigError, _parse_with_marks, parse_config
from daemon.config.problems import Marks, plain, yaml_loader
from tests.config.helpers import BAD, GOOD, GOOD_ENV, REPO

SHIPPED_ENV = {
    **GOOD_ENV,
    "RUNPOD_API_KEY_RESEARCH": "rpa_R",
    "DEMO_POLL_INTERVAL": "5m",
    "RUNPOD_BUDGET_STATE_URL": "sqlite:///state/state.db",
    "PGPASSWORD": "pw",
}


def _configmap_config() -> str:
    doc = YAML(typ="safe").load((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text())
    text: str = doc["data"]["budgets.yaml"]
    return text


SHIPPED: dict[str, str] = {
    **{
        str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
        for p in [
            REPO / "config" / "budgets.example.yaml",
            REPO / "daemon" / "config" / "data" / "budgets.example.yaml",
            REPO / "daemon" / "config" / "data" / "budgets.init.yaml",
            REPO / "daemon" / "app" / "demo.yaml",
            REPO / "deploy" / "docker" / "budgets.yaml",
            *sorted(GOOD.glob("*.yaml")),
        ]
    },
    "deploy/kubernetes/configmap.yaml#budgets.yaml": _configmap_config(),
}


def _fenced_yaml() -> dict[str, str]:
    """Every ```yaml block of the docs (examples users copy)."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    contract = REPO.parent / "shared" / "spec" / "contract.md"
    docs += [contract] if contract.is_file() else []
    out = {}
    for doc in docs:
        for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", doc.read_text(), re.S)):
            out[f"{doc.name}#{i}"] = block
    return out


def round_trip_data(text: str) -> Any:
    """What the loader read before the fast reader existed."""
    return plain(yaml_loader().load(text), (), Marks())


def canon(x: Any) -> Any:
    """Data with its types and key order made comparable (nan == nan)."""
    if isinstance(x, dict):
        return ("dict", [(canon(k), canon(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [canon(v) for v in x])
    if isinstance(x, float) and math.isnan(x):
        return ("nan", math.copysign(1, x))
    return (type(x).__name__, repr(x))


def assert_same_or_declined(text: str) -> Any:
    """The fast reader's data is the round-trip reader's, or it declined."""
    fast = plain_or_none(text)
    if fast is not None:
        assert canon(fast) == canon(round_trip_data(text))
    return fast


def outcome(parse: Any, text: str, env: dict[str, str]) -> Any:
    try:
        return parse(text)
    except ConfigError as e:
        return [str(p) for p in e.problems]


def assert_loads_the_same(text: str, env: dict[str, str]) -> Any:
    """parse_config (fast reader first) == the round-trip path alone."""
    got = outcome(lambda t: parse_config(t, file="c.yaml", env=env), text, env)
    want = outcome(lambda t: _parse_with_marks(t, "c.yaml", env, True), text, env)
    assert got == want
    return got


def test_the_c_parser_is_installed_and_used() -> None:
    # ruamel.yaml.clib is a dependency: without it every check pays ~100 ms more
    assert fast_yaml.available()
    assert YAML(typ="safe", pure=False).Parser.__module__.endswith("_ruamel_yaml")


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_config_reads_the_same_fast(name: str) -> None:
    text = SHIPPED[name]
    assert assert_same_or_declined(text) is not None, "the fast reader should take it"
    config = assert_loads_the_same(text, SHIPPED_ENV)
    assert not isinstance(config, list), config


@pytest.mark.parametrize("name", sorted(_fenced_yaml()))
def test_every_yaml_example_in_the_docs_reads_the_same(name: str) -> None:
    assert_same_or_declined(_fenced_yaml()[name])


@pytest.mark.parametrize("fixture", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bad_fixture_reads_the_same(fixture: Path) -> None:
    # (test_bad_corpus pins the messages; this pins the data behind them)
    assert_same_or_declined(fixture.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tricky documents

TAKEN = {  # the fast reader must read these, and read them the same
    "yaml 1.2 booleans": "a: [yes, no, on, off, y, n, true, false, True, TRUE, FALSE, tRue]",
    "ints": "a:\n- 0o17\n- 017\n- 0x1F\n- 0b101\n- 1_000\n- +5\n- -0\n- 12:30\n- 010\n- 0X1F\n",
    "floats": "a:\n- 1.5\n- .5\n- 1.\n- 1e3\n- -.inf\n- .Inf\n- .NaN\n- 6.85e+5\n- 1_0.5\n- 1E5\n",
    "nulls": "a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: ''\n",
    "strings": "a: '1'\nb: \"x\\ty\\u00e9\\/\\x41\\N\"\nc: 'it''s'\nd: b#c\ne: x #c\n",
    "block scalars": (
        "a: |\n  l1\n   l2\nb: >\n  f\n  t\n\n  p\nc: |-\n  x\nd: >+\n  y\n\ne: |2\n   z\n"
    ),
    "multi-line plain and quoted": 'a: x\n  y\n\n  z\nb: "x\n  y"\nc: "x\\\n  y"\n',
    "json flavour": '{"version": 1, "a": [1, 2.0, "x", null, true], "b": {"c":1}}',
    "anchors and merges": (
        "x-d: &d {window: day, limit: 5}\nb:\n  - <<: *d\n    name: a\n"
        "  - {<<: *d, limit: 7, name: b}\n  - <<: *d\n"
    ),
    "merge of several, first wins, own keys first": (
        "x-a: &a {p: 1, q: 1}\nx-b: &b {q: 2, r: 2}\nm:\n  <<: [*a, *b]\n  s: 3\n  p: 0\n"
    ),
    "<< between own keys": "x: &x {p: 1, a: 0}\nm:\n  a: 1\n  <<: *x\n  b: 2\n",
    "nested merges": "x-a: &a {p: 1}\nx-b: &b {<<: *a, q: 2}\nm: {<<: *b, r: 3}\n",
    "merge of an inline mapping": "m: {<<: {a: 1}, b: 2}\n",
    "quoted << is a key": "x-a: &a {p: 1}\nm: {'<<': *a}\n",
    "aliases to scalars and collections": "x: &s 5\ny: &l [1, {a: b}]\nz: [*s, *l]\n",
    "an alias as a key": "x-a: &k key\n*k : v\n",
    "non-string keys": "{3: a, 2.5: b, null: c, true: d, 0o10: e, '3': f}",
    "crlf": "a: 1\r\nb: 'x\r\n  y'\r\nc: |\r\n  z\r\n",
    "byte-order mark": "\ufeffa: 1\n",
    "explicit document": "--- # c\na: 1\n...\n",
    "complex key syntax": "? a\n: b\n",
    "flow mappings inside flow lists": "a: [{x: 1}, {y: [2, {z: 3}]}]\n",
    "unicode": "a: héllo — ✓ \U0001f600\nb: \"\\u263a\"\n",
    "long key": "? " + "k" * 1100 + "\n: v\n",
    "${VAR} and $${": "a: ${X}\nb: $${x}\nc: '${Y}'\n",
}

DECLINED = {  # the fast reader must leave these to the round-trip reader
    "yaml 1.1 directive": "%YAML 1.1\n---\na: yes\nb: 017\n",
    "a tag": "a: !!str 123\n",
    "a local tag": "a: !foo bar\n",
    "a set": "a: !!set {x, y}\n",
    "a tab": "a:\tb\n",
    "a next-line character": "a: x\x85y\n",
    "a byte-order mark inside": "a: 1\n\ufeffb: 2\n",
    "a timestamp": "a: 2001-12-14t21:59:43.10-05:00\n",
    "a date": "a: 2002-12-14\n",
    "=": "a: {=: 1}\n",
    "duplicate key": "a: 1\na: 2\n",
    "duplicate key next to a merge": "x-a: &a {p: 1}\nm:\n  <<: *a\n  k: 1\n  k: 2\n",
    "duplicate key in a merged mapping": "m: {<<: {a: 1, a: 2}}\n",
    "equal keys of different types": "{1: a, true: b}",
    "two <<": "x-a: &a {p: 1}\nm:\n  <<: *a\n  <<: *a\n",
    "<< of a scalar": "m: {<<: 1}\n",
    "<< of nothing": "m: {<<: [], a: 1}\n",
    "a list as a key": "? [a, b]\n: c\n",
    "a mapping as a key": "? {a: b}\n: c\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "empty": "",
    "only a comment": "# hi\n",
    "a list": "- a\n",
    "a scalar": "hello\n",
    "a recursive alias": "&a [*a]\n",
    "an alias to its own mapping": "&a {b: {<<: *a}}\n",
    "an anchor name with a colon": "&e:a_1b:\n  x: 1\n",
    "an anchor right before ':'": "a: &b1: x\n",
    "an anchor defined twice": "a: &x 1\nb: &x 2\nc: *x\n",
    "an unknown alias": "a: *nope\n",
    "'key':value in a list": "a: ['x':1]\n",
    "key: value in a list": "a: [x: 1]\n",
    "comment glued to a block scalar": "a: |#c\n  x\n",
    "block scalar whose first line is spaces": "a: |\n  \n   x\n",
    "same, with crlf": "a: |\r\n  \r\n   x\r\n",
    "colon inside flow plain": "a: [http://x, a:b]\n",
    "nul": "a: x\x00\n",
}


@pytest.mark.parametrize("name", sorted(TAKEN))
def test_tricky_documents_are_read_the_same(name: str) -> None:
    assert assert_same_or_declined(TAKEN[name]) is not None


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_documents_the_readers_may_disagree_on_are_left_to_the_round_trip(name: str) -> None:
    assert plain_or_none(DECLINED[name]) is None


def test_yaml_1_2_meaning_of_scalars() -> None:
    data = plain_or_none("a: [yes, on, 0o17, 017, 0x1F, 1_000, .inf, ~]\n")
    assert data == {"a": ["yes", "on", 15, 17, 31, 1000, math.inf, None]}


def test_merge_keys_keep_the_round_trip_order() -> None:
    data = plain_or_none("x-a: &a {p: 1, q: 1}\nx-b: &b {q: 2, r: 2}\nm: {<<: [*a, *b], s: 3}\n")
    assert data is not None
    assert list(data["m"].items()) == [("s", 3), ("p", 1), ("q", 1), ("r", 2)]


def test_a_mapping_of_only_merged_keys_loads() -> None:
    # (the round-trip path used to fail on it with a TypeError in problems._owner)
    text = (
        "version: 1\nnotifiers: {ops: {type: console}}\ndefaults: {notify: [ops]}\n"
        "x-a: &a {name: a, window: day, limit: 5}\nbudgets:\n  - <<: *a\n"
    )
    config = assert_loads_the_same(text, SHIPPED_ENV)
    assert [(b.name, b.limit) for b in config.budgets] == [("a", 5)]
    bad = text.replace("limit: 5", "limit: -5")
    assert assert_loads_the_same(bad, SHIPPED_ENV) == [
        "c.yaml:4:39: budgets.0.limit: must be greater than 0"
    ]


def test_without_the_c_parser_the_round_trip_reads_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fast_yaml, "_C_PARSER", None)
    assert not fast_yaml.available()
    assert plain_or_none("a: 1\n") is None
    text = (GOOD / "anchors-and-escapes.yaml").read_text()
    assert parse_config(text, env=GOOD_ENV) == _parse_with_marks(text, "<string>", GOOD_ENV, True)


def test_problems_are_found_by_the_round_trip_reader() -> None:
    text = "version: 1\nbudgets:\n  - {name: a, window: day, limit: -1}\n"
    assert plain_or_none(text) is not None  # read fast, found wrong, read again with marks
    assert assert_loads_the_same(text, SHIPPED_ENV) == [
        "c.yaml:3:5: budgets.0: notifies nobody (set notify here or defaults.notify)",
        "c.yaml:3:35: budgets.0.limit: must be greater than 0",
    ]


def test_a_missing_api_key_is_reported_after_a_fast_read() -> None:
    text = "version: 1\nnotifiers: {ops: {type: console}}\ndefaults: {notify: [ops]}\n"
    env = {k: v for k, v in SHIPPED_ENV.items() if k != "RUNPOD_API_KEY"}
    assert assert_loads_the_same(text, env) == [
        "c.yaml:1:1: accounts: environment variable RUNPOD_API_KEY is not set"
        " (nor RUNPOD_API_KEY_FILE, nor a systemd credential)"
    ]
    accounts = text + "accounts: [{name: r, api_key_env: RUNPOD_API_KEY_NOPE}]\n"
    assert isinstance(assert_loads_the_same(accounts, env), list)


# --------------------------------------------------------------------------- generated documents

TOKENS = [
    " ", "  ", "\n", "\n  ", "\n- ", ":", ": ", "- ", "[", "]", "{", "}", ",", ", ", '"', "'",
    "#", " #", "&a ", "*a", "&b", "*b ", "<<: ", "? ", "|", ">", "|-", ">+", "|2", "---", "...",
    "\r\n", "\\", "\\n", "\\x41", "0", "1", "0x1", "0o7", "017", "1e3", ".5", "-", "_", ".inf",
    ".nan", "true", "yes", "null", "~", "=", "@", "`", "%", "é", "\u00a0", "a", "b", "key",
    "x-", "2024-01-01", "12:30", "${X}", "$${", "\n\n", "\n   ", "::", "'a':1", '{"a":1}',
]
SEEDS = [
    (GOOD / "anchors-and-escapes.yaml").read_text(),
    (GOOD / "several-accounts.yaml").read_text(),
    "x-a: &a {p: 1, q: [1, 2]}\nm:\n  <<: *a\n  r: 3\nn: {<<: [*a], s: 'x'}\n",
    'a: "x\\ty"\nb: |\n  l1\n   l2\nc: >-\n  f\n\n  g\n',
    "a: [1, 'b', \"c\", {d: e}, [f]]\n? g\n: h\n- i\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_token_soup_is_read_the_same_or_declined(text: str) -> None:
    assert_same_or_declined(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False))
def test_mutated_configs_are_read_the_same_or_declined(seed: str, rng: random.Random) -> None:
    text = seed
    for _ in range(rng.choice([1, 1, 2, 3])):
        i = rng.randrange(len(text) + 1)
        if rng.random() < 0.6:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        else:
            text = text[:i] + text[i + rng.randint(1, 4) :]
    assert_same_or_declined(text)
