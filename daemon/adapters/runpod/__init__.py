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
from typing import Any, Literal

import httpx

from daemon.adapters.runpod import graphql, v1, v2
from daemon.adapters.runpod.graphql import GraphQLBalance
from daemon.adapters.runpod.parse import MAX_AMOUNT
from daemon.adapters.runpod.ratelimit import RateLimits
from daemon.adapters.runpod.transport import RequestInfo, Transport
from daemon.adapters.runpod.v1 import RunPodV1
from daemon.adapters.runpod.v2 import RunPodV2

Version = Literal["v1", "v2"]
DEFAULT_BASE_URLS: dict[str, str] = {"v1": v1.DEFAULT_BASE_URL, "v2": v2.DEFAULT_BASE_URL}
DEFAULT_GRAPHQL_URL: str = graphql.DEFAULT_URL


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
    if version not in DEFAULT_BASE_URLS:
        raise ValueError(f"unknown RunPod API version {version!r}: expected v1 or v2")
    base = base_url or os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_BASE_URLS[version]
    gone = v1.GONE if version == "v1" else v2.GONE
    transport = Transport(api_key, base, api=version, gone=gone, timeout=timeout,
                          deadline=deadline, cancel=cancel, on_request=on_request, http=http,
                          **options)
    return RunPodV1(transport) if version == "v1" else RunPodV2(transport)


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
    target = url or os.environ.get("RUNPOD_GRAPHQL_URL") or graphql.DEFAULT_URL
    transport = Transport(api_key, target, api="graphql", gone=graphql.GONE, timeout=timeout,
                          deadline=deadline, cancel=cancel, on_request=on_request, http=http,
                          **options)
    return GraphQLBalance(transport)


__all__ = [
    "DEFAULT_BASE_URLS",
    "MAX_AMOUNT",
    "GraphQLBalance",
    "RateLimits",
    "RequestInfo",
    "RunPodV1",
    "RunPodV2",
    "Transport",
    "make_api",
    "make_balance_api",
]
