"""Build the running parts from a config file: secrets, store, clients, notifiers.

This is the composition root: the only module that knows which adapter
implements which port. Every secret it reads is registered with the log
redactor before anything can log it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

import structlog
from pydantic import BaseModel, SecretStr
from stamina.instrumentation import StructlogOnRetryHook, set_on_retry_hooks

from daemon.adapters.notifiers import build_notifiers, close_notifiers
from daemon.adapters.runpod import (
    default_base_url,
    default_graphql_url,
    make_api,
    make_balance_api,
)
from daemon.adapters.store import open_store
from daemon.app import logging as applog
from daemon.config.loader import api_key_for, load_config, resolve_secret, state_url
from daemon.config.models import Config
from daemon.core.ports import BalanceApi, Notifier, RunPodApi, Store
from daemon.pipeline.cycle import Deps
from daemon.pipeline.enforcer import AccountRouter, Enforcer
from daemon.pipeline.observer import NullObserver, Observer
from daemon.pipeline.outbox import disabled_key

if TYPE_CHECKING:
    from daemon.adapters.runpod import RequestInfo

log = structlog.get_logger("daemon.runtime")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _revealed(value: object) -> object:
    """A setting with its secrets shown: only for hashing, never for output."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    return value


def _secrets_of(model: BaseModel) -> list[str]:
    """Every ``SecretStr`` among a model's fields (also inside lists), so a
    secret field added later is redacted without anyone listing it here."""
    out: list[str] = []
    for _, value in model:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr):
                out.append(item.get_secret_value())
    return out


def config_secrets(config: Config, env: Mapping[str, str]) -> list[str]:
    """Every secret value the config resolves to, for the log redactor."""
    out = [key for acc in config.accounts if (key := resolve_secret(acc.api_key_env, env))]
    for n in config.notifiers.values():
        out += _secrets_of(n)
    out += _secrets_of(config)  # the state URL may carry a password
    return [s for s in out if s and len(s) >= 4]


def notifier_fingerprint(config: Config, name: str) -> str:
    """A digest of one notifier's settings, secrets included, so a disabled
    notifier comes back exactly when its config is edited."""
    fields = {k: _revealed(v) for k, v in config.notifiers[name]}
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def restore_disabled(config: Config, store: Store) -> dict[str, str]:
    """Notifiers that disabled themselves (410 Gone) under their current
    config. A changed config clears the mark."""
    out: dict[str, str] = {}
    for name in config.notifiers:
        fp_key = f"notifier:{name}:fingerprint"
        fp = notifier_fingerprint(config, name)
        reason = store.get_meta(disabled_key(name))
        if store.get_meta(fp_key) != fp:
            store.set_meta(fp_key, fp)
            if reason:
                store.set_meta(disabled_key(name), "")
                log.info("notifier.reenabled", notifier=name, reason="config changed")
            continue
        if reason:
            out[name] = reason
            log.warning("notifier.disabled", notifier=name, reason=reason)
    return out


class RuntimeObserver(Observer, Protocol):
    """What the running parts report to: the pipeline's events and every
    RunPod API request. ``run`` passes its Prometheus ``Metrics``."""

    def on_api_request(self, info: RequestInfo) -> None: ...


class NullRuntimeObserver(NullObserver):
    """Reports go nowhere: the one-shot commands export no metrics, so they
    neither import prometheus_client nor keep a series per budget instance."""

    def on_api_request(self, info: RequestInfo) -> None:
        return None


@dataclass
class Runtime:
    config_path: Path
    config: Config
    store: Store
    apis: dict[str, RunPodApi]
    notifiers: dict[str, Notifier]
    observer: RuntimeObserver
    clock: Callable[[], datetime] = utcnow
    extra_close: list[Callable[[], None]] = field(default_factory=list)
    balance_apis: dict[str, BalanceApi] = field(default_factory=dict)

    def deps(self) -> Deps:
        on_event = self.observer.enforcement
        enforcer = Enforcer(AccountRouter(self.apis), self.store, on_event=on_event)
        return Deps(
            self.config, self.store, self.apis, self.notifiers, self.clock, self.observer,
            enforcer=enforcer, balance_apis=self.balance_apis,
        )

    def close(self) -> None:
        for fn in self.extra_close:
            fn()
        for api in [*self.apis.values(), *self.balance_apis.values()]:
            close = getattr(api, "close", None)
            if callable(close):
                close()
        close_notifiers(self.notifiers)
        self.store.close()


@functools.cache
def _retry_hooks_without_prometheus() -> None:
    """stamina's retry instrumentation: its structlog hook only. Its default
    also counts retries on prometheus_client's global registry, which this
    daemon never exports (its metrics have a registry of their own, and RunPod
    attempts log their own event instead of stamina's hooks); installing that
    hook would import prometheus_client into every one-shot command. Once per
    process: the clients wrap these hooks when they are made."""
    set_on_retry_hooks([StructlogOnRetryHook])


def build_clients(
    config: Config,
    env: Mapping[str, str],
    observer: RuntimeObserver,
    cancel: threading.Event | None = None,
) -> tuple[dict[str, RunPodApi], dict[str, BalanceApi]]:
    """One RunPod client per account in the configured API version, and one
    balance (GraphQL) client per account when the config has ``balance``."""
    _retry_hooks_without_prometheus()
    # read from ``env`` (not os.environ): the commands and tests pass their own
    base = env.get("RUNPOD_API_BASE_URL") or default_base_url(config.api.version)
    graphql = None
    if config.balance is not None:
        graphql = env.get("RUNPOD_GRAPHQL_URL") or default_graphql_url()
    timeout = config.api.timeout.total_seconds()
    deadline = config.api.deadline.total_seconds()
    clients: dict[str, RunPodApi] = {}
    balances: dict[str, BalanceApi] = {}
    for acc in config.accounts:
        key = api_key_for(acc, env)
        applog.register_secret(key)
        clients[acc.name] = make_api(
            config.api.version, key, base_url=base, timeout=timeout, deadline=deadline,
            on_request=observer.on_api_request, cancel=cancel,
        )  # fmt: skip
        if graphql is not None:
            balances[acc.name] = make_balance_api(
                key, url=graphql, timeout=timeout, deadline=deadline,
                on_request=observer.on_api_request, cancel=cancel,
            )  # fmt: skip
    return clients, balances


def build_runtime(
    config_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    console: TextIO | None = None,
    observer: RuntimeObserver | None = None,
    clock: Callable[[], datetime] = utcnow,
    config: Config | None = None,
    read_only: bool = False,
    cancel: threading.Event | None = None,
) -> Runtime:
    """Load the config (raises ConfigError), open the store (raises StoreError)
    and build clients and notifiers. ``read_only`` (dry runs, ``status``) does
    not create a SQLite state file that does not exist yet. ``observer``
    (``run``: its Prometheus metrics) defaults to one that reports nowhere."""
    env = os.environ if env is None else env
    if config is None:
        config = load_config(config_path, env)
    for s in config_secrets(config, env):
        applog.register_secret(s)
    observer = NullRuntimeObserver() if observer is None else observer
    url = state_url(config, env)
    if read_only and url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        # a dry run records nothing, not even an empty database: a missing
        # file means an empty ledger, which an in-memory store is
        url = "sqlite://"
    store = open_store(url)
    try:
        apis, balances = build_clients(config, env, observer, cancel)
        disabled = restore_disabled(config, store)
        notifiers = build_notifiers(
            config.notifiers, zone=config.zone, console_stream=console, disabled=disabled
        )
    except Exception:
        store.close()
        raise
    return Runtime(
        config_path, config, store, apis, notifiers, observer, clock, balance_apis=balances
    )
