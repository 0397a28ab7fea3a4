"""Where a config problem is: ``Problem`` and ``ConfigError``, and the YAML
reader that remembers the line and column of every key and value.

ruamel.yaml's round-trip loader keeps positions (``.lc``) on its own
container types; ``plain`` turns them into dict/list/scalars and records
each position by path in ``Marks``, so a pydantic error location can be
turned into ``FILE:LINE:COL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from daemon.config.base import Loc

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config; ``str()`` is the line ``validate`` prints."""

    file: str
    line: int  # 1-based
    col: int  # 1-based
    key: str  # dotted path, e.g. "budgets.0.limit", or "-" when unknown
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The config is unusable; ``problems`` lists everything wrong with it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(format_problems(self))

    def __str__(self) -> str:
        return format_problems(self)


def format_problems(err: ConfigError) -> str:
    """Every problem, one per line, in file order."""
    return "\n".join(str(p) for p in err.problems)


def dotted(path: Loc) -> str:
    return ".".join(str(p) for p in path) if path else "-"


# --------------------------------------------------------------------------- YAML with marks


class Marks:
    """Positions (0-based) of every node, by path: of the value, and of the key
    for mapping entries."""

    def __init__(self) -> None:
        self.value: dict[Loc, tuple[int, int]] = {}
        self.key: dict[Loc, tuple[int, int]] = {}
        self.collections: set[Loc] = set()

    def at(self, path: Loc) -> tuple[int, int]:
        """Where to point for ``path`` (which exists): the key of a mapping
        entry whose value is a mapping or a list, else the value itself."""
        if path in self.collections and path in self.key:
            return self.key[path]
        return self.value.get(path) or self.key.get(path) or (0, 0)


def plain(node: Any, path: Loc, marks: Marks) -> Any:
    """ruamel's round-trip objects -> plain dict/list/str/int/float/bool/None,
    recording positions on the way."""
    if isinstance(node, CommentedMap):
        marks.collections.add(path)
        marks.value.setdefault(path, (node.lc.line, node.lc.col))
        out: dict[Any, Any] = {}
        for k, v in node.items():
            key = _plain_scalar(k)
            child = (*path, key)
            owner = _owner(node, k)
            try:
                marks.key[child] = owner.lc.key(k)
                marks.value[child] = owner.lc.value(k)
            except (KeyError, TypeError, AttributeError):
                marks.key.setdefault(child, (node.lc.line, node.lc.col))
                marks.value.setdefault(child, (node.lc.line, node.lc.col))
            out[key] = plain(v, child, marks)
        return out
    if isinstance(node, CommentedSeq):
        marks.collections.add(path)
        marks.value.setdefault(path, (node.lc.line, node.lc.col))
        items: list[Any] = []
        for i, v in enumerate(node):
            child = (*path, i)
            try:
                marks.value[child] = node.lc.item(i)
            except (KeyError, TypeError, AttributeError):
                marks.value[child] = (node.lc.line, node.lc.col)
            items.append(plain(v, child, marks))
        return items
    return _plain_scalar(node)


def _owner(node: CommentedMap, key: Any) -> CommentedMap:
    """The mapping that really holds ``key``: ``node``, or for a key that came
    through a merge (``<<: *anchor``) the anchored mapping, which has the marks."""
    if key in (node.lc.data or ()):  # None when every key came through '<<'
        return node
    for merged in getattr(node, "merge", None) or []:
        source = merged[-1] if isinstance(merged, tuple) else merged  # older ruamel: (i, map)
        if isinstance(source, CommentedMap) and key in source:
            return _owner(source, key)
    return node


def _plain_scalar(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if type(v).__name__ == "ScalarBoolean":
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str(v)
    return v


def yaml_loader(allow_duplicates: bool = False) -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = allow_duplicates
    return y


def syntax_problem(file: str, text: str, e: MarkedYAMLError) -> Problem:
    problem = str(e.problem or "")
    context = str(e.context or "")
    mark = e.problem_mark or e.context_mark
    key = "-"
    if "duplicate key" in problem:
        m = re.search(r'found duplicate key "(.*?)"', problem)
        name = m.group(1) if m else "?"
        message = f"duplicate key {name!r}"
        if mark is not None:
            key = _duplicate_key_path(text, mark.line, mark.column, name)
    elif "'\\t'" in problem:
        message = "tab character: YAML indents with spaces only"
    elif "end of stream" in problem and "quoted scalar" in context:
        message = "unclosed quote"
        mark = e.context_mark or mark
    elif "mapping values are not allowed" in problem:
        message = "unexpected ':' (bad indentation, or a value containing ': ' needs quotes)"
    elif "expected <block end>" in problem or "could not find expected ':'" in problem:
        message = "bad indentation: this line does not line up with the keys above it"
    elif "alias" in context:
        message = "'*' starts an alias in YAML: quote the value (e.g. cron: \"* * * * *\")"
    elif "flow" in context and ("'{'" in problem or "'}'" in problem):
        message = "a value with '{' inside [...] or {...} needs quotes (e.g. [\"${VAR}\"])"
    elif "another document" in problem:
        message = "more than one YAML document (remove the extra '---')"
    else:
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    line, col = (mark.line, mark.column) if mark is not None else (0, 0)
    return Problem(file, line + 1, col + 1, key, message)


def _duplicate_key_path(text: str, line: int, col: int, name: str) -> str:
    """The dotted path of a duplicated key: the path of its first occurrence,
    found as the last key before it in the same column."""
    try:
        data = yaml_loader(allow_duplicates=True).load(text)
    except YAMLError:
        return "-"
    marks = Marks()
    plain(data, (), marks)
    best: Loc | None = None
    for path, (kl, kc) in marks.key.items():
        if kc == col and (kl, kc) < (line, col) and (best is None or marks.key[best] < (kl, kc)):
            best = path
    if best is None:
        return dotted((name,)) if col == 0 else "-"
    return dotted((*best[:-1], name))
