"""RunPod's GraphQL ``myself`` query: the prepaid balance, as the :class:`BalanceApi` port.

The balance is readable only there (REST v1 and v2 have no balance call).
RunPod is retiring GraphQL too; a 410 raises ``ApiError(reason="gone")`` whose
message says that balance alerts are unavailable.
"""

from __future__ import annotations

import math
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from daemon.adapters.runpod.parse import STRICT, BadAnswer, explain
from daemon.adapters.runpod.transport import Adapter, Transport
from daemon.core.model import Balance

DEFAULT_URL: Final = "https://api.runpod.io/graphql"
GONE: Final = ("RunPod has retired its GraphQL API (HTTP 410 Gone): balance alerts are "
               "unavailable")
QUERY: Final = "query Balance { myself { clientBalance currentSpendPerHr spendLimit } }"


@dataclass(config=STRICT, slots=True)
class _Myself:
    clientBalance: float
    currentSpendPerHr: float
    spendLimit: float | None = None


@dataclass(config=STRICT, slots=True)
class _Data:
    myself: _Myself | None = None


@dataclass(config=STRICT, slots=True)
class _Error:
    message: str = ""


@dataclass(config=STRICT, slots=True)
class _Answer:
    data: _Data | None = None
    errors: list[_Error] | None = None


_ANSWER = TypeAdapter(_Answer)


class GraphQLBalance(Adapter):
    """``balance()`` from ``POST {url}`` with the account's bearer key."""

    version = "graphql"

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)

    def balance(self) -> Balance:
        """The balance, spend per hour and spend limit. GraphQL ``errors`` raise
        ``ApiError(reason="bad_body")`` (not retried), missing or non-numeric
        fields ``bad_record``, 410 ``gone`` (permanent)."""
        return self._t.call("POST", "/graphql", "", json={"query": QUERY}, parse=parse_balance)


def parse_balance(body: bytes | bytearray) -> Balance:
    """A :class:`Balance` from a GraphQL answer; raises :class:`BadAnswer`."""
    try:
        answer = _ANSWER.validate_json(body)
    except ValidationError as e:
        raise _refusal(e, body) from None
    if answer.errors:
        text = "; ".join(" ".join(err.message.split())[:200] for err in answer.errors[:3])
        raise BadAnswer("bad_body", f"returned GraphQL errors: {text or '(no message)'}",
                        retry=False)
    me = answer.data.myself if answer.data else None
    if me is None:
        raise BadAnswer("bad_record", "returned no 'myself' object: field 'myself': missing")
    for name, value in (("clientBalance", me.clientBalance),
                        ("currentSpendPerHr", me.currentSpendPerHr)):
        if not math.isfinite(value) or (name == "currentSpendPerHr" and value < 0):
            raise BadAnswer("bad_record", f"field '{name}': implausible value {value!r}")
    return Balance(balance=me.clientBalance, spend_per_hr=me.currentSpendPerHr,
                   spend_limit=me.spendLimit)


def _refusal(e: ValidationError, body: bytes | bytearray) -> BadAnswer:
    err = e.errors(include_url=False)[0]
    loc: tuple[Any, ...] = tuple(err["loc"])
    if err["type"] == "json_invalid":
        what = ("an HTML page instead of JSON" if bytes(body[:64]).lstrip()[:1] == b"<"
                else "malformed JSON")
        return BadAnswer("bad_body", f"returned {what} ({len(body)} bytes)")
    if loc[:2] == ("data", "myself") and len(loc) > 2:
        field = ".".join(str(x) for x in loc[2:])
        return BadAnswer("bad_record", f"field '{field}': "
                         f"{explain(err['type'], err.get('input'), err['msg'])}")
    where = ".".join(str(x) for x in loc) or "the top level"
    return BadAnswer("bad_body", f"returned an unexpected shape at {where}: {err['msg']}")
