"""Reading a config quickly when nothing is wrong with it: libyaml, no marks.

The round-trip reader (``problems.yaml_loader`` + ``problems.plain``) keeps
the line and column of every node, which a problem needs and a good config
does not, and costs most of a ``check``. ``plain_or_none`` reads the text
with libyaml (the C parser of ``ruamel.yaml.clib``, an order of magnitude
faster) into plain dict/list/str/int/float/bool/None and returns exactly
what the round-trip reader would have returned, or None whenever it cannot
promise that. None is never an error: the caller then reads the text the
round-trip way, which also words every problem, so this module changes how
fast a good config loads and nothing a user sees.

Scalars get the round-trip reader's meaning (YAML 1.2 core schema, with
ruamel.yaml's own resolver table: ``yes``/``on`` stay strings, ``0o17`` is
octal, ``017`` is 17), and merge keys its order: a mapping's own keys first,
then the merged mappings' keys in order, the first one winning.

None when: ``ruamel.yaml.clib`` is not installed (the pure-Python parser
would be no faster); the text holds something the two parsers read
differently or that has no plain value: a ``!`` (tags), a ``%`` starting a
line (directives: ``%YAML 1.1`` changes what ``yes`` means), a tab, a
Unicode line break or a byte-order mark past the start, an anchor name that
the round-trip reader would read longer (``&a:``), a block scalar whose first
line holds only spaces, a mapping without braces inside ``[...]``; libyaml
rejects it; it is not one mapping; a timestamp or ``=``; a key that is not a
scalar; a duplicate key or anchor; a second ``<<``; an alias to an unknown
anchor or to a collection that contains it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import ruamel.yaml.main
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.resolver import VersionedResolver

# The C parser YAML(pure=False) uses: None without ruamel.yaml.clib (and then
# YAML(pure=False) silently parses in Python, no faster than the round trip).
_C_PARSER = getattr(ruamel.yaml.main, "CParser", None)

__all__ = ["available", "plain_or_none"]

_T = "tag:yaml.org,2002:"
_INT, _FLOAT, _BOOL, _NULL, _MERGE = (_T + s for s in ("int", "float", "bool", "null", "merge"))
_SCALAR, _SEQ, _MAP = "scalar", "sequence", "mapping"

# Characters that announce tags and directives, or that libyaml and ruamel.yaml
# treat differently (see the module docstring).
_UNSURE_TEXT = re.compile(r"[!\t\x85\u2028\u2029]|^%", re.MULTILINE)
# A block scalar's header as both parsers read it: indicators, then spaces
# and a comment, and not followed by a line of only spaces (ruamel.yaml
# rejects some of those: "more indented follow up line than first").
_BLOCK_HEADER = re.compile(
    r"(?:&[A-Za-z0-9_-]+ +)?[|>](?:[1-9][-+]?|[-+][1-9]?)?(?: +(?:#[^\r\n]*)?)?"
    r"(?>\r\n|\r|\n|$)(?! +(?:\r|\n|$))"
)
# what may follow an anchor or alias name for ruamel.yaml to end it there too
_NAME_END = frozenset(" \r\n,[]{}")


class _Unsure(Exception):
    """The fast reader cannot promise the round-trip reader's result."""


def available() -> bool:
    """Whether the C parser is installed (else every call returns None)."""
    return _C_PARSER is not None


def plain_or_none(text: str) -> dict[Any, Any] | None:
    """The top-level mapping of ``text`` as plain data, exactly as
    ``problems.plain`` gives it from the round-trip reader, or None when
    that cannot be promised (including every invalid or non-mapping
    document: the round-trip reader reports those)."""
    if _C_PARSER is None or _UNSURE_TEXT.search(text) or "\ufeff" in text[1:]:
        return None
    try:
        data = _Reader(text).document()
    # Any failure, whatever its type, only means "read it the round-trip way",
    # which reports it properly (or fails exactly as it always did).
    except Exception:  # noqa: BLE001
        return None
    return data if isinstance(data, dict) else None


@lru_cache(maxsize=1)
def _resolvers() -> dict[str, list[tuple[str, Any]]]:
    """ruamel.yaml's YAML 1.2 implicit resolvers by first character, as
    (tag, match function): the table its round-trip reader resolves plain
    scalars with."""
    table = VersionedResolver(version=(1, 2)).versioned_resolver
    return {first: [(tag, regexp.match) for tag, regexp in rules] for first, rules in table.items()}


class _Reader:
    """libyaml's events -> plain data, as the round-trip reader builds it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.events: Iterator[Event] = iter(YAML(typ="safe", pure=False).parse(text))
        self.anchors: dict[str, tuple[str, Any]] = {}
        self.building: set[str] = set()  # anchored collections not finished yet
        self.resolvers = _resolvers()

    def document(self) -> Any:
        self._expect(StreamStartEvent)
        event = next(self.events)
        if isinstance(event, StreamEndEvent):
            return None
        if not isinstance(event, DocumentStartEvent):
            raise _Unsure(event)
        _, value = self.node(next(self.events))
        self._expect(DocumentEndEvent)
        self._expect(StreamEndEvent)  # one document only
        return value

    def _expect(self, kind: type[Event]) -> None:
        event = next(self.events)
        if not isinstance(event, kind):
            raise _Unsure(event)

    def node(self, event: Any, in_flow_sequence: bool = False) -> tuple[str, Any]:
        """(kind, value) of the node that starts with ``event``."""
        if isinstance(event, AliasEvent):
            self._check_name(event, "*")
            if event.anchor not in self.anchors or event.anchor in self.building:
                raise _Unsure("an alias to an unknown anchor, or to its own collection")
            return self.anchors[event.anchor]
        anchor = event.anchor
        if anchor is not None:
            self._check_name(event, "&")
            if anchor in self.anchors or anchor in self.building:
                raise _Unsure("an anchor defined twice")
        if isinstance(event, ScalarEvent):
            result = (_SCALAR, self._scalar(event))
        elif isinstance(event, SequenceStartEvent):
            if anchor is not None:
                self.building.add(anchor)
            result = (_SEQ, self._sequence(bool(event.flow_style)))
        elif isinstance(event, MappingStartEvent):
            if in_flow_sequence and not self.text.startswith("{", event.start_mark.index):
                # [key: value]: libyaml also accepts ['key':value], ruamel.yaml does not
                raise _Unsure("a mapping without braces inside [...]")
            if anchor is not None:
                self.building.add(anchor)
            result = (_MAP, self._mapping())
        else:
            raise _Unsure(event)
        if anchor is not None:
            self.building.discard(anchor)
            self.anchors[anchor] = result
        return result

    def _check_name(self, event: Any, indicator: str) -> None:
        """libyaml ends a name at the first character outside [A-Za-z0-9_-];
        ruamel.yaml goes on (``&a:b``), so only a clear end is safe."""
        token = indicator + event.anchor
        start = event.start_mark.index
        end = start + len(token)
        if not self.text.startswith(token, start) or (
            end < len(self.text) and self.text[end] not in _NAME_END
        ):
            raise _Unsure("an anchor name the two parsers may read differently")

    def _sequence(self, flow: bool) -> list[Any]:
        items: list[Any] = []
        for event in self.events:
            if isinstance(event, SequenceEndEvent):
                return items
            items.append(self.node(event, in_flow_sequence=flow)[1])
        raise _Unsure("no end of sequence")

    def _mapping(self) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] | None = None
        for event in self.events:
            if isinstance(event, MappingEndEvent):
                break
            if isinstance(event, ScalarEvent) and self._is_merge(event):
                if merged is not None:
                    raise _Unsure("a second '<<'")
                merged = self._merged(next(self.events))
                continue
            kind, key = self.node(event)
            if kind != _SCALAR or key in out:
                raise _Unsure("a key that is not a scalar, or a duplicate key")
            out[key] = self.node(next(self.events))[1]
        else:
            raise _Unsure("no end of mapping")
        for source in merged or ():
            for key, value in source.items():
                out.setdefault(key, value)
        return out

    def _is_merge(self, event: Any) -> bool:
        if event.anchor is not None and event.value == "<<":
            raise _Unsure("an anchored '<<'")
        return bool(event.implicit[0]) and event.value == "<<"

    def _merged(self, event: Any) -> list[dict[Any, Any]]:
        """The mappings of ``<<: *a``, ``<<: {...}`` or ``<<: [*a, *b]``."""
        kind, value = self.node(event)
        sources = [value] if kind == _MAP else value if kind == _SEQ else []
        if not sources or not all(isinstance(s, dict) for s in sources):
            raise _Unsure("'<<' of something else than mappings")
        return sources

    def _scalar(self, event: Any) -> Any:
        text = event.value
        if event.style in ("|", ">") and not _BLOCK_HEADER.match(
            self.text, event.start_mark.index
        ):
            raise _Unsure("a block scalar header the two parsers may read differently")
        if not event.implicit[0]:  # quoted or block: a string
            return text
        for tag, match in self.resolvers.get(text[:1], ()):
            if match(text):
                return _typed(tag, text)
        return text


def _typed(tag: str, text: str) -> Any:
    """The round-trip reader's value of a plain scalar resolved to ``tag``."""
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        return _int(text)
    if tag == _FLOAT:
        return _float(text)
    raise _Unsure(tag)  # timestamps, '=', '<<' as a value: not plain values


def _int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
        if digits.startswith(prefix):
            return sign * int(digits[2:], base)
    return sign * int(digits)


def _float(text: str) -> float:
    digits = text.replace("_", "").lower()
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == ".inf":
        return sign * SafeConstructor.inf_value
    if digits == ".nan":
        return SafeConstructor.nan_value
    return sign * float(digits)
