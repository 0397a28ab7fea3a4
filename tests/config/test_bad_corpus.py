"""The bad-config corpus: each tests/config/bad/NAME.yaml is one realistic
mistake (or several), and NAME.expected pins every line `validate` prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.config.loader import ConfigError, load_config
from tests.config.helpers import BAD, ENV

FIXTURES = sorted(BAD.glob("*.yaml"))
LINE = re.compile(r"^[^:]+\.yaml:\d+:\d+: [^ :]+: \S.*$")


def test_corpus_is_large_and_every_fixture_is_pinned() -> None:
    assert len(FIXTURES) >= 30
    missing = [f.name for f in FIXTURES if not f.with_suffix(".expected").is_file()]
    assert missing == []
    orphans = [f.name for f in BAD.glob("*.expected") if not f.with_suffix(".yaml").is_file()]
    assert orphans == []


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_bad_config(fixture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    expected = fixture.with_suffix(".expected").read_text().splitlines()
    with pytest.raises(ConfigError) as info:
        load_config(fixture.name, ENV)
    got = [str(p) for p in info.value.problems]
    assert got == expected
    assert str(info.value) == "\n".join(expected)
    for line in got:
        assert LINE.match(line), line
    positions = [(p.line, p.col) for p in info.value.problems]
    assert positions == sorted(positions)


def test_several_problems_are_all_reported() -> None:
    multi = [f for f in FIXTURES if len(f.with_suffix(".expected").read_text().splitlines()) >= 5]
    assert len(multi) >= 2


def test_problem_lines_use_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "budgets.yaml"
    path.parent.mkdir()
    path.write_text((BAD / "limit-negative.yaml").read_text())
    with pytest.raises(ConfigError) as info:
        load_config(path, ENV)
    assert str(info.value) == f"{path}:11:12: budgets.0.limit: must be greater than 0"
