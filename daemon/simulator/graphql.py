"""RunPod's GraphQL endpoint, only as far as the balance: ``POST /graphql``.

Understands ``query { myself { clientBalance currentSpendPerHr spendLimit } }``
(optionally named, any subset of the fields plus ``id`` and ``__typename``)
and answers ``{"data": {"myself": {...}}}`` with the fields asked for.
Anything else gets GraphQL's ``{"errors": [{"message": ...}]}`` with 400
(a body that is not JSON, a syntax error, an unknown field, a mutation).

Balance semantics: ``clientBalance`` = scenario ``balance.start`` + top-ups -
every USD accrued by any resource since the scenario was loaded; it falls as
the clock runs. ``currentSpendPerHr`` = the rates billing at this instant
(running pods, serverless endpoints, volumes, clusters, public endpoints).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from daemon.simulator.wire import Reply

if TYPE_CHECKING:
    from daemon.simulator.server import Simulator

_TOKEN = re.compile(r"\s+|#[^\n]*|,|([A-Za-z_][A-Za-z0-9_]*|[{}()])|(.)")
FIELDS = ("clientBalance", "currentSpendPerHr", "spendLimit", "id", "__typename")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group(2):
            raise Reply(400, f"Syntax Error: Unexpected character {m.group(2)!r}.")
        if m.group(1):
            out.append(m.group(1))
    return out


def parse(text: str) -> list[str]:
    """The fields selected on ``myself``; raises Reply(400) with a GraphQL message."""
    toks = _tokens(text)
    pos = 0

    def expect(what: str) -> None:
        nonlocal pos
        found = toks[pos] if pos < len(toks) else "<EOF>"
        if found != what:
            raise Reply(400, f'Syntax Error: Expected "{what}", found {found}.')
        pos += 1

    if toks[:1] == ["mutation"]:
        raise Reply(400, "This simulator only answers queries.")
    if toks[:1] == ["query"]:
        pos = 2 if len(toks) > 1 and toks[1] not in "{}()" else 1
    expect("{")
    expect("myself")
    expect("{")
    fields: list[str] = []
    while pos < len(toks) and toks[pos] not in "{}()":
        fields.append(toks[pos])
        pos += 1
    if not fields:
        raise Reply(400, "Syntax Error: Expected Name, found "
                         f"{toks[pos] if pos < len(toks) else '<EOF>'}.")
    expect("}")
    expect("}")
    if pos != len(toks):
        raise Reply(400, f"Syntax Error: Unexpected {toks[pos]}.")
    for f in fields:
        if f not in FIELDS:
            raise Reply(400, f'Cannot query field "{f}" on type "User".')
    return fields


def handle(sim: Simulator, body: bytes) -> dict[str, Any]:
    """The GraphQL answer for one authorized request body."""
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        raise Reply(400, "Body is not valid JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
        raise Reply(400, "Must provide query string.")
    fields = parse(doc["query"])
    values: dict[str, Any] = {
        "clientBalance": round(sim.balance(), 6),
        "currentSpendPerHr": round(sim.spend_per_hr(), 6),
        "spendLimit": sim.scenario.balance.spend_limit,
        "id": "user_simulated",
        "__typename": "User",
    }
    return {"data": {"myself": {f: values[f] for f in fields}}}
