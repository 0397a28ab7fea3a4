"""Checks that need the whole config: names, cross-references, and what the
chosen ``api.version`` can do.

They run on plain data, so they work on a validated config
(``Config.model_dump(by_alias=True)``) and on raw YAML data that failed
validation elsewhere: a file with a type error still gets its unknown-notifier
errors reported. Anything of an unexpected shape is skipped (pydantic reports
it); a key holding None counts as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.config.base import Loc, name_problem

Errors = list[tuple[Loc, str]]
NOBODY = "notifies nobody (set notify here or defaults.notify)"
_V1_VOLUMES = (
    "v1 reports network-volume spend only for the whole account; "
    "volume budgets need api.version: v2"
)
_V1_RESOURCES = {
    "clusters": "v1 has no clusters billing; use api.version: v2",
    "public_endpoints": "v1 has no public endpoints billing; use api.version: v2",
}
_V1_IDLE = "v1 reports no GPU utilisation; idle guards need api.version: v2"


def _strs(v: object) -> list[str] | None:
    """A list of strings, or None when ``v`` is not one (its own error is elsewhere)."""
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def _mapping(v: object) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _items(data: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    v = data.get(key)
    return [(i, x) for i, x in enumerate(v) if isinstance(x, Mapping)] if isinstance(
        v, list
    ) else []


def _account_names(data: Mapping[str, Any], errors: Errors) -> set[str] | None:
    accounts = data.get("accounts", [{"name": "default"}])
    if not isinstance(accounts, list):
        return None
    names: set[str] = set()
    for i, a in enumerate(accounts):
        name = a.get("name") if isinstance(a, Mapping) else None
        if isinstance(name, str):
            if name in names:
                errors.append((("accounts", i, "name"), f"duplicate account name {name!r}"))
            names.add(name)
    return names


def reference_errors(data: Mapping[str, Any]) -> Errors:
    """Name, cross-reference and API-version errors of a config given as plain
    data, each at its own key."""
    # Long on purpose: each cross-check is a few lines over the same raw data;
    # split up they would re-walk it.
    errors: Errors = []
    notifiers = data.get("notifiers", {})
    known: set[str] | None = None
    if isinstance(notifiers, Mapping):
        known = {str(n) for n in notifiers}
        for name in notifiers:
            problem = name_problem(name, "notifier name")
            if problem:
                errors.append((("notifiers", name), problem))
    account_names = _account_names(data, errors)

    def check_notify(loc: Loc, names: object) -> None:
        for n in _strs(names) or []:
            if known is not None and n not in known:
                allowed = ", ".join(sorted(known)) or "none are defined"
                errors.append((loc, f"unknown notifier {n!r} (notifiers: {allowed})"))

    def check_accounts(loc: Loc, names: object) -> None:
        for a in _strs(names) or []:
            if account_names is not None and a not in account_names:
                message = f"unknown account {a!r} (accounts: {', '.join(sorted(account_names))})"
                errors.append((loc, message))

    defaults = _mapping(data.get("defaults"))
    default_notify = _strs(defaults.get("notify", [])) or []
    if "notify" in defaults:
        check_notify(("defaults", "notify"), defaults["notify"])

    def check_item(section: str, i: int, item: Mapping[str, Any], stops: bool) -> None:
        notify = item.get("notify")
        if notify is not None:
            check_notify((section, i, "notify"), notify)
        check_accounts((section, i, "accounts"), item.get("accounts"))
        effective = _strs(notify) if notify is not None else default_notify
        if effective == [] and not stops:
            where: Loc = (section, i, "notify") if notify is not None else (section, i)
            errors.append((where, NOBODY))

    for section, stop_key in (("budgets", "enforce"), ("guards", "stop")):
        seen: set[str] = set()
        for i, item in _items(data, section):
            name = item.get("name")
            if isinstance(name, str):
                if name in seen:
                    what = section[:-1]
                    errors.append(((section, i, "name"), f"duplicate {what} name {name!r}"))
                seen.add(name)
            stop = item.get(stop_key)
            check_item(section, i, item, isinstance(stop, Mapping) and stop.get("dry_run") is False)

    for section in ("digest", "health", "balance"):
        block = data.get(section)
        if isinstance(block, Mapping) and block.get("notify") is not None:
            check_notify((section, "notify"), block["notify"])
    for section, needs in (("digest", "cron"), ("balance", None)):
        block = data.get(section)
        if (
            isinstance(block, Mapping)
            and block.get("notify") is None
            and not default_notify
            and (needs is None or needs in block)
        ):
            errors.append(((section,), NOBODY))
    errors.extend(version_errors(data))
    return errors


def version_errors(data: Mapping[str, Any]) -> Errors:
    """What ``api.version: v1`` cannot do, each at the key that asks for it."""
    if _mapping(data.get("api")).get("version") != "v1":
        return []
    errors: Errors = []
    for i, b in _items(data, "budgets"):
        for j, r in enumerate(b.get("resources") or []):
            if isinstance(r, str) and r in _V1_RESOURCES:
                errors.append((("budgets", i, "resources", j), _V1_RESOURCES[r]))
        match = _mapping(b.get("match"))
        for key in ("volume_id", "volume_name"):
            if match.get(key) is not None:
                errors.append((("budgets", i, "match", key), _V1_VOLUMES))
        if b.get("per") == "volume":
            errors.append((("budgets", i, "per"), _V1_VOLUMES))
    for i, g in _items(data, "guards"):
        if g.get("idle") is not None:
            errors.append((("guards", i, "idle"), _V1_IDLE))
    return errors

