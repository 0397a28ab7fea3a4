"""What the pipeline reports about itself (metrics), without importing the app.

The app's ``Metrics`` satisfies this Protocol; ``NullObserver`` is the default
for one-shot commands and tests that do not look at metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from daemon.core.model import Balance, InstanceStatus


class Observer(Protocol):
    def replace_instances(self, statuses: Sequence[InstanceStatus]) -> None: ...

    def notification(self, notifier: str, kind: str, ok: bool, permanent: bool) -> None: ...

    def set_pending(self, counts: Mapping[str, int]) -> None: ...

    def enforcement(self, action: str, reason: str) -> None: ...

    def balance(self, account: str, balance: Balance | None) -> None: ...

    def idle(self, account: str, guard: str, pods: int, burn: float) -> None: ...


class NullObserver:
    def replace_instances(self, statuses: Sequence[InstanceStatus]) -> None:
        return None

    def notification(self, notifier: str, kind: str, ok: bool, permanent: bool) -> None:
        return None

    def set_pending(self, counts: Mapping[str, int]) -> None:
        return None

    def enforcement(self, action: str, reason: str) -> None:
        return None

    def balance(self, account: str, balance: Balance | None) -> None:
        return None

    def idle(self, account: str, guard: str, pods: int, burn: float) -> None:
        return None
