"""Loading the YAML config: marks, ``${VAR}``, and every problem at once.

``load_config`` reads the file with ruamel.yaml's round-trip loader (which
keeps the line and column of every key and value), substitutes ``${VAR}``
(from ``$CREDENTIALS_DIRECTORY/VAR``, the file named by ``VAR_FILE``, or the
variable itself; ``$${`` is a literal ``${``), validates with the pydantic
models and, when anything is wrong, raises one ``ConfigError`` listing every
problem as
``FILE:LINE:COL: dotted.key: message`` (1-based, sorted by position).

Secret values never appear in a problem: messages name keys and variables,
never the values that came from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from daemon.config.models import (
    NOTIFIER_TYPES,
    REFERENCE_ERROR_TYPE,
    RESOURCES,
    Account,
    Config,
    Loc,
    looks_like_api_key,
    reference_errors,
)

__all__ = [
    "ConfigError",
    "Problem",
    "api_key_for",
    "default_config_path",
    "format_problems",
    "load_config",
    "parse_config",
    "resolve_secret",
    "state_url",
]

DEFAULT_CONFIG = Path("config/budgets.yaml")
DEFAULT_STATE_DIR = "./state"
_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


def _dotted(path: Loc) -> str:
    return ".".join(str(p) for p in path) if path else "-"


# --------------------------------------------------------------------------- environment


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$RUNPOD_BUDGET_CONFIG``, else ``./config/budgets.yaml``."""
    env = os.environ if env is None else env
    value = env.get("RUNPOD_BUDGET_CONFIG")
    return Path(value) if value else DEFAULT_CONFIG


def state_url(config: Config, env: Mapping[str, str] | None = None) -> str:
    """The configured ``state`` URL, else SQLite under ``$STATE_DIRECTORY``
    (the first of its colon-separated paths, as systemd may set several), else
    under ``./state``."""
    env = os.environ if env is None else env
    if config.state is not None:
        return config.state.get_secret_value()
    directory = (env.get("STATE_DIRECTORY") or "").split(":")[0] or DEFAULT_STATE_DIR
    return f"sqlite:///{directory.rstrip('/')}/state.db"


def _read_secret_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text


def resolve_secret(name: str, env: Mapping[str, str]) -> str | None:
    """The secret called ``name``: systemd's ``$CREDENTIALS_DIRECTORY/<name>``
    (LoadCredential=), then the file named by ``<name>_FILE``, then the variable
    ``<name>`` itself. One trailing newline is stripped from files. None when
    not found or empty."""
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        candidate = Path(creds) / name
        if candidate.is_file():
            value = _read_secret_file(candidate)
            if value:
                return value
    file_name = env.get(f"{name}_FILE")
    if file_name:
        value = _read_secret_file(Path(file_name))
        if value:
            return value
    value = env.get(name)
    return value or None


def _variable(name: str, env: Mapping[str, str]) -> str | None:
    """The value of ``${name}``: like ``resolve_secret`` (so secrets can come
    from ``<name>_FILE`` or a systemd credential), but an empty variable is a
    value, not a missing one."""
    return resolve_secret(name, env) or env.get(name)


def _missing_secret_message(name: str, env: Mapping[str, str]) -> str:
    file_name = env.get(f"{name}_FILE")
    if file_name:
        path = Path(file_name)
        if not path.is_file() or _read_secret_file(path) is None:
            return f"{name}_FILE names a file that cannot be read: {file_name}"
        return f"{name}_FILE names an empty file: {file_name}"
    if name in env:
        return f"environment variable {name} is empty"
    return f"environment variable {name} is not set (nor {name}_FILE, nor a systemd credential)"


def api_key_for(account: Account, env: Mapping[str, str] | None = None) -> str:
    """The API key of ``account``; raises ConfigError naming the variable when
    there is none (the problem's file is ``<environment>``)."""
    env = os.environ if env is None else env
    key = resolve_secret(account.api_key_env, env)
    if key is None:
        raise ConfigError(
            [
                Problem(
                    "<environment>",
                    1,
                    1,
                    f"accounts.{account.name}.api_key_env",
                    _missing_secret_message(account.api_key_env, env),
                )
            ]
        )
    return key


# --------------------------------------------------------------------------- YAML with marks


class _Marks:
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


def _plain(node: Any, path: Loc, marks: _Marks) -> Any:
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
            out[key] = _plain(v, child, marks)
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
            items.append(_plain(v, child, marks))
        return items
    return _plain_scalar(node)


def _owner(node: CommentedMap, key: Any) -> CommentedMap:
    """The mapping that really holds ``key``: ``node``, or for a key that came
    through a merge (``<<: *anchor``) the anchored mapping, which has the marks."""
    if key in node.lc.data:
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


def _yaml(allow_duplicates: bool = False) -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = allow_duplicates
    return y


def _syntax_problem(file: str, text: str, e: MarkedYAMLError) -> Problem:
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
        data = _yaml(allow_duplicates=True).load(text)
    except YAMLError:
        return "-"
    marks = _Marks()
    _plain(data, (), marks)
    best: Loc | None = None
    for path, (kl, kc) in marks.key.items():
        if kc == col and (kl, kc) < (line, col) and (best is None or marks.key[best] < (kl, kc)):
            best = path
    if best is None:
        return _dotted((name,)) if col == 0 else "-"
    return _dotted((*best[:-1], name))


# --------------------------------------------------------------------------- ${VAR}


def _substitute(
    data: Any, path: Loc, env: Mapping[str, str], errors: list[tuple[Loc, str]]
) -> Any:
    if isinstance(data, dict):
        return {k: _substitute(v, (*path, k), env, errors) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, (*path, i), env, errors) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def replace(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "$${":
            return "${"
        name = m.group(1)
        if name is None:
            errors.append((path, "unclosed '${' (write '$${' for a literal '${')"))
            return text
        if not _ENV_NAME.fullmatch(name):
            message = f"'${{{name}}}' is not a variable name (write '$${{' for a literal '${{')"
            errors.append((path, message))
            return text
        value = _variable(name, env)
        if value is None:
            if env.get(f"{name}_FILE"):
                errors.append((path, _missing_secret_message(name, env)))
            else:
                errors.append((path, f"environment variable {name} is not set"))
            return text
        return value

    return _VAR.sub(replace, data)


# --------------------------------------------------------------------------- pydantic -> problems


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class validating the mapping at pydantic location ``loc``
    (which includes discriminator tags such as 'slack')."""
    tp: Any = Config
    for el in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(el))
            if field is None:
                return None
            tp = field.annotation
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin in (Union, types.UnionType):
            for member in typing.get_args(tp):
                fields = getattr(member, "model_fields", {})
                literal = fields.get("type")
                if literal is not None and el in typing.get_args(literal.annotation):
                    tp = member
                    break
            else:
                return None
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _locate(loc: Loc, data: Any) -> tuple[Loc, Loc, bool]:
    """Pydantic's ``loc`` -> (path in the data without union tags, the longest
    prefix of it that exists, whether the whole path exists)."""
    path: list[str | int] = []
    found: list[str | int] = []
    node = data
    exists = True
    for el in loc:
        if el == "[key]":
            continue
        if isinstance(node, dict) and el not in node and node.get("type") == el:
            continue  # a discriminated union's tag
        path.append(el)
        if not exists:
            continue
        in_list = isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node)
        if (isinstance(node, dict) and el in node) or in_list:
            node = node[el]
            found.append(el)
        else:
            exists = False
    return tuple(path), tuple(found), exists


_MESSAGES = {
    "missing": "required key is missing",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "finite_number": "must be a finite number",
}


def _message(err: Mapping[str, Any], data: Any) -> tuple[Loc, str]:
    """(loc, readable message) for one pydantic error."""
    kind = str(err["type"])
    loc: Loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        fields = model.model_fields.items() if model is not None else []
        allowed = [f.alias or name for name, f in fields]
        close = difflib.get_close_matches(str(loc[-1]).lower(), allowed, n=1, cutoff=0.6)
        if close:
            return loc, f"unknown key (did you mean {close[0]!r}?)"
        return loc, "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "union_tag_invalid":
        return (*loc, "type"), (
            f"unknown notifier type {ctx.get('tag')!r} (allowed: {', '.join(NOTIFIER_TYPES)})"
        )
    if kind == "union_tag_not_found":
        return (*loc, "type"), f"required key is missing (one of: {', '.join(NOTIFIER_TYPES)})"
    if loc == ("version",) and isinstance(data, dict) and isinstance(data.get("version"), str):
        return loc, "must be the number 1, not a string"
    if loc == ("version",) and kind == "missing":
        return loc, "required key is missing (write 'version: 1')"
    if loc == ("version",) and kind == "literal_error":
        version = data.get("version") if isinstance(data, dict) else None
        shown = f" {version!r}" if isinstance(version, int | float | str) else ""
        return loc, f"unsupported config version{shown} (this release reads version 1)"
    if kind == "literal_error" and len(loc) >= 2 and loc[-2] == "resources":
        value = _value_at(data, loc)
        shown = f" {value!r}" if isinstance(value, int | float | str) else ""
        return loc, f"unknown resource{shown} (resources: {', '.join(RESOURCES)})"
    if "[key]" in loc or kind == "invalid_key":
        return loc, "key must be a string (quote it)"
    if kind in _MESSAGES:
        return loc, _MESSAGES[kind]
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = msg.replace("Input should be", "must be").replace(
        "List should have", "must have"
    ).replace(" after validation", "")
    msg = msg.replace("String should have", "must have")
    if msg[:2] != msg[:2].upper():  # keep acronyms
        msg = msg[:1].lower() + msg[1:]
    return loc, msg


def _value_at(data: Any, loc: Loc) -> Any:
    """The raw value at pydantic location ``loc``, or None when it is not there."""
    path, _, exists = _locate(loc, data)
    if not exists:
        return None
    node = data
    for el in path:
        node = node[el]
    return node


def _covered(path: Loc, bad: set[Loc]) -> bool:
    return any(path[: len(b)] == b for b in bad)


# --------------------------------------------------------------------------- entry points


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    require_api_keys: bool = True,
) -> Config:
    """Read, substitute and validate the config at ``path``.

    Raises ConfigError listing every problem (file, YAML syntax, ``${VAR}``,
    schema, cross-references and, with ``require_api_keys``, each account's
    API key being findable)."""
    env = os.environ if env is None else env
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(file, 1, 1, "-", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(file, 1, 1, "-", "is a directory, not a file")]) from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError([Problem(file, 1, 1, "-", f"cannot read: {reason.lower()}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([Problem(file, 1, 1, "-", "not UTF-8 text")]) from None
    return parse_config(text, file=file, env=env, require_api_keys=require_api_keys)


def parse_config(
    text: str,
    *,
    file: str = "<string>",
    env: Mapping[str, str] | None = None,
    require_api_keys: bool = True,
) -> Config:
    """Like ``load_config`` for text already read; ``file`` names it in problems."""
    env = os.environ if env is None else env
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as e:
        raise ConfigError([_syntax_problem(file, text, e)]) from None
    except YAMLError as e:  # unmarked (rare): still one line, never a traceback
        raise ConfigError([Problem(file, 1, 1, "-", f"invalid YAML: {e}")]) from None
    if doc is None:
        raise ConfigError(
            [Problem(file, 1, 1, "-", "the file is empty (expected a mapping with 'version: 1')")]
        )
    if not isinstance(doc, CommentedMap):
        kind = "a list" if isinstance(doc, CommentedSeq) else "a single value"
        message = f"the top level must be a mapping (version: 1, …), not {kind}"
        raise ConfigError([Problem(file, 1, 1, "-", message)])
    marks = _Marks()
    data = _plain(doc, (), marks)
    # top-level "x-…" keys hold YAML anchors to reuse (as in docker compose)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}

    errors: list[tuple[Loc, str]] = []  # (path in data, message)
    env_errors: list[tuple[Loc, str]] = []
    data = _substitute(data, (), env, env_errors)
    errors.extend(env_errors)
    bad_paths = {p for p, _ in env_errors}

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        crossed = False
        for err in e.errors(include_url=False, include_input=False):
            loc, message = _message(err, data)
            path, _, _ = _locate(loc, data)
            crossed = crossed or err["type"] == REFERENCE_ERROR_TYPE
            if not _covered(path, bad_paths):
                errors.append((path, message))
        if not crossed:
            # _cross did not run (a field failed first): still report references
            failed = {p for p, _ in errors}
            for loc, message in reference_errors(data):
                path, _, _ = _locate(loc, data)
                if not _covered(path, failed) and (path, message) not in errors:
                    errors.append((path, message))

    fixed: list[Problem] = []
    if require_api_keys:
        if "accounts" not in data:
            if resolve_secret("RUNPOD_API_KEY", env) is None:
                message = _missing_secret_message("RUNPOD_API_KEY", env)
                fixed.append(Problem(file, 1, 1, "accounts", message))
        else:
            errors.extend(_api_key_errors(data["accounts"], env))

    if errors or fixed:
        raise ConfigError(_problems(file, errors, data, marks, fixed))
    assert config is not None
    return config


def _api_key_errors(accounts: Any, env: Mapping[str, str]) -> Iterator[tuple[Loc, str]]:
    if not isinstance(accounts, list):
        return
    for i, a in enumerate(accounts):
        if not isinstance(a, dict):
            continue
        name = a.get("api_key_env", "RUNPOD_API_KEY")
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name) or looks_like_api_key(name):
            continue
        if resolve_secret(name, env) is None:
            yield ("accounts", i, "api_key_env"), _missing_secret_message(name, env)


def _problems(
    file: str, errors: list[tuple[Loc, str]], data: Any, marks: _Marks, fixed: list[Problem]
) -> list[Problem]:
    out: list[Problem] = list(fixed)
    for path, message in errors:
        _, found, exists = _locate(path, data)
        if path == ():
            line, col = 0, 0
        elif exists and message.startswith(("unknown key", "key must be")):
            line, col = marks.key.get(found, marks.at(found))
        else:
            line, col = marks.at(found) if found else (0, 0)
        p = Problem(file, line + 1, col + 1, _dotted(path), message)
        if p not in out:
            out.append(p)
    out.sort(key=lambda p: (p.line, p.col))
    return out
