"""msgspec Structs for the parse_billing experiment (imported only when msgspec is
installed; msgspec is not a dependency of the daemon)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from daemon.adapters.runpod.parse import _RFC3339

Time = Annotated[str, msgspec.Meta(pattern=_RFC3339)]


class V1(msgspec.Struct, gc=False):
    amount: float
    time: Time
    podId: str | None = None


class V2(msgspec.Struct, gc=False):
    startTime: Time
    endTime: Time
    totalAmount: float
    podId: str


class Answer(msgspec.Struct):
    records: list[V2]
