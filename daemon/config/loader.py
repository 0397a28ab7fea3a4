"""Loading the YAML config: marks, ``${VAR}``, and every problem at once.

``load_config`` reads the file with ruamel.yaml's round-trip loader (which
keeps the line and column of every key and value; a good config is read
faster without them, see ``parse_config``), substitutes ``${VAR}``
(from ``$CREDENTIALS_DIRECTORY/VAR``, the file named by ``VAR_FILE``, or the
variable itself; ``$${`` is a literal ``${``), validates with the pydantic
models and, when anything is wrong, raises one ``ConfigError`` listing every
problem as
``FILE:LINE:COL: dotted.key: message`` (1-based, sorted by position).

Secret values never appear in a problem: messages name keys and variables,
never the values that came from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from daemon.config.fast_yaml import plain_or_none
from daemon.config.messages import covered, locate, message_for
from daemon.config.models import (
    REFERENCE_ERROR_TYPE,
    Account,
    Config,
    Loc,
    looks_like_api_key,
    reference_errors,
)
from daemon.config.problems import (
    ConfigError,
    Marks,
    Problem,
    dotted,
    format_problems,
    plain,
    syntax_problem,
    yaml_loader,
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


def _missing_secretmessage_for(name: str, env: Mapping[str, str]) -> str:
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
                    _missing_secretmessage_for(account.api_key_env, env),
                )
            ]
        )
    return key


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
                errors.append((path, _missing_secretmessage_for(name, env)))
            else:
                errors.append((path, f"environment variable {name} is not set"))
            return text
        return value

    return _VAR.sub(replace, data)


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
    """Like ``load_config`` for text already read; ``file`` names it in problems.

    A good config is read by ``fast_yaml`` (libyaml, without marks); the
    round-trip reader, which knows where every key is, reads it again only
    when something is wrong or the fast reader cannot promise the same data
    (or ``ruamel.yaml.clib`` is not installed), so problems are worded
    exactly as before and a good config means exactly what it did."""
    env = os.environ if env is None else env
    data = plain_or_none(text)
    if data is not None:
        config = _config_if_valid(data, env, require_api_keys)
        if config is not None:
            return config
    return _parse_with_marks(text, file, env, require_api_keys)


def _config_if_valid(
    data: dict[Any, Any], env: Mapping[str, str], require_api_keys: bool
) -> Config | None:
    """The config of plain ``data`` when nothing at all is wrong with it,
    else None (``_parse_with_marks`` then says what)."""
    env_errors: list[tuple[Loc, str]] = []
    data = _substitute(_without_anchor_keys(data), (), env, env_errors)
    if env_errors:
        return None
    try:
        config = Config.model_validate(data)
    except ValidationError:
        return None
    if require_api_keys:
        if "accounts" in data:
            if any(_api_key_errors(data["accounts"], env)):
                return None
        elif resolve_secret("RUNPOD_API_KEY", env) is None:
            return None
    return config


def _without_anchor_keys(data: dict[Any, Any]) -> dict[Any, Any]:
    # top-level "x-…" keys hold YAML anchors to reuse (as in docker compose)
    return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}


def _parse_with_marks(
    text: str, file: str, env: Mapping[str, str], require_api_keys: bool
) -> Config:
    """``parse_config`` with the round-trip reader: every problem, with its
    line and column."""
    # Long on purpose: one pass that collects every problem (YAML, types,
    # references) before reporting them together.
    try:
        doc = yaml_loader().load(text)
    except MarkedYAMLError as e:
        raise ConfigError([syntax_problem(file, text, e)]) from None
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
    marks = Marks()
    data = _without_anchor_keys(plain(doc, (), marks))

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
            loc, message = message_for(err, data)
            path, _, _ = locate(loc, data)
            crossed = crossed or err["type"] == REFERENCE_ERROR_TYPE
            if not covered(path, bad_paths):
                errors.append((path, message))
        if not crossed:
            # _cross did not run (a field failed first): still report references
            failed = {p for p, _ in errors}
            for loc, message in reference_errors(data):
                path, _, _ = locate(loc, data)
                if not covered(path, failed) and (path, message) not in errors:
                    errors.append((path, message))

    fixed: list[Problem] = []
    if require_api_keys:
        if "accounts" not in data:
            if resolve_secret("RUNPOD_API_KEY", env) is None:
                message = _missing_secretmessage_for("RUNPOD_API_KEY", env)
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
            yield ("accounts", i, "api_key_env"), _missing_secretmessage_for(name, env)


def _problems(
    file: str, errors: list[tuple[Loc, str]], data: Any, marks: Marks, fixed: list[Problem]
) -> list[Problem]:
    out: list[Problem] = list(fixed)
    for path, message in errors:
        _, found, exists = locate(path, data)
        if path == ():
            line, col = 0, 0
        elif exists and message.startswith(("unknown key", "key must be")):
            line, col = marks.key.get(found, marks.at(found))
        else:
            line, col = marks.at(found) if found else (0, 0)
        p = Problem(file, line + 1, col + 1, dotted(path), message)
        if p not in out:
            out.append(p)
    out.sort(key=lambda p: (p.line, p.col))
    return out
