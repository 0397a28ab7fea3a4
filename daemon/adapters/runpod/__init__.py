"""RunPod adapters: REST v1 and v2 behind the :class:`RunPodApi` port, GraphQL
behind :class:`BalanceApi`, all on one :class:`~.transport.Transport`.

Use the factories; nothing above the adapters needs to know the version::

    api = make_api("v2", key, deadline=60, cancel=stop_event, on_request=metrics)
    api.billing("pods", bucket="hour", start=t0, end=t1)
    balance = make_balance_api(key).balance()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import httpx

from daemon.adapters.runpod.parse import MAX_AMOUNT
from daemon.adapters.runpod.ratelimit import RateLimits
from daemon.adapters.runpod.transport import RequestInfo, Transport

# v1, v2 and graphql build their pydantic validators at import (~35 ms
# together): each is imported when a client of its kind is made, so a
# process imports the one API version it talks to, and GraphQL only with
# ``balance:`` configured. Their names below are imported on first access.
if TYPE_CHECKING:
    from daemon.adapters.runpod.graphql import GraphQLBalance
    from daemon.adapters.runpod.v1 import RunPodV1
    from daemon.adapters.runpod.v2 import RunPodV2

    DEFAULT_BASE_URLS: dict[str, str]
    DEFAULT_GRAPHQL_URL: str

Version = Literal["v1", "v2"]
VERSIONS: tuple[Version, ...] = ("v1", "v2")


def default_base_url(version: Version) -> str:
    """The RunPod base URL of ``version`` (it includes the version prefix).
    Raises ValueError for an unknown version."""
    if version == "v1":
        from daemon.adapters.runpod import v1

        return v1.DEFAULT_BASE_URL
    if version == "v2":
        from daemon.adapters.runpod import v2

        return v2.DEFAULT_BASE_URL
    raise ValueError(f"unknown RunPod API version {version!r}: expected v1 or v2")


def default_graphql_url() -> str:
    """RunPod's GraphQL endpoint (balance)."""
    from daemon.adapters.runpod import graphql

    return graphql.DEFAULT_URL


def __getattr__(name: str) -> Any:
    """The names whose modules are imported on use (PEP 562)."""
    if name == "DEFAULT_BASE_URLS":
        return {v: default_base_url(v) for v in VERSIONS}
    if name == "DEFAULT_GRAPHQL_URL":
        return default_graphql_url()
    if name == "GraphQLBalance":
        from daemon.adapters.runpod.graphql import GraphQLBalance

        return GraphQLBalance
    if name == "RunPodV1":
        from daemon.adapters.runpod.v1 import RunPodV1

        return RunPodV1
    if name == "RunPodV2":
        from daemon.adapters.runpod.v2 import RunPodV2

        return RunPodV2
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_api(
    version: Version,
    api_key: str,
    *,
    base_url: str | None = None,
    timeout: float = 10.0,
    deadline: float = 60.0,
    cancel: threading.Event | None = None,
    on_request: Callable[[RequestInfo], None] | None = None,
    http: httpx.Client | None = None,
    **options: Any,
) -> RunPodV1 | RunPodV2:
    """The RunPod REST adapter for ``version``. ``base_url`` defaults to
    ``$RUNPOD_API_BASE_URL``, then the version's RunPod URL (it includes the
    version prefix). ``options`` go to :class:`Transport` (retry waits,
    ``max_body_bytes``, ``retry_after_cap``, ...). Raises ValueError for an
    unknown version or an empty key."""
    default = default_base_url(version)  # raises ValueError for an unknown version
    base = base_url or os.environ.get("RUNPOD_API_BASE_URL") or default

    def transport(gone: str) -> Transport:
        return Transport(api_key, base, api=version, gone=gone, timeout=timeout,
                         deadline=deadline, cancel=cancel, on_request=on_request, http=http,
                         **options)

    if version == "v1":
        from daemon.adapters.runpod import v1

        return v1.RunPodV1(transport(v1.GONE))
    from daemon.adapters.runpod import v2

    return v2.RunPodV2(transport(v2.GONE))


def make_balance_api(
    api_key: str,
    *,
    url: str | None = None,
    timeout: float = 10.0,
    deadline: float = 30.0,
    cancel: threading.Event | None = None,
    on_request: Callable[[RequestInfo], None] | None = None,
    http: httpx.Client | None = None,
    **options: Any,
) -> GraphQLBalance:
    """The GraphQL balance adapter: ``url`` defaults to ``$RUNPOD_GRAPHQL_URL``,
    then ``https://api.runpod.io/graphql``."""
    from daemon.adapters.runpod import graphql

    target = url or os.environ.get("RUNPOD_GRAPHQL_URL") or graphql.DEFAULT_URL
    transport = Transport(api_key, target, api="graphql", gone=graphql.GONE, timeout=timeout,
                          deadline=deadline, cancel=cancel, on_request=on_request, http=http,
                          **options)
    return graphql.GraphQLBalance(transport)


__all__ = [
    "DEFAULT_BASE_URLS",
    "DEFAULT_GRAPHQL_URL",
    "MAX_AMOUNT",
    "VERSIONS",
    "GraphQLBalance",
    "RateLimits",
    "RequestInfo",
    "RunPodV1",
    "RunPodV2",
    "Transport",
    "Version",
    "default_base_url",
    "default_graphql_url",
    "make_api",
    "make_balance_api",
]
