"""Turning pydantic's errors into the messages ``validate`` prints: which
key (a path in the YAML data, without union tags), and words a user of the
config understands ("must be a number", "unknown key (did you mean …?)").
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from pydantic import BaseModel

from daemon.config.base import Loc
from daemon.config.models import NOTIFIER_TYPES, RESOURCES, Config

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


def locate(loc: Loc, data: Any) -> tuple[Loc, Loc, bool]:
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


def message_for(err: Mapping[str, Any], data: Any) -> tuple[Loc, str]:
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
    path, _, exists = locate(loc, data)
    if not exists:
        return None
    node = data
    for el in path:
        node = node[el]
    return node


def covered(path: Loc, bad: set[Loc]) -> bool:
    return any(path[: len(b)] == b for b in bad)
