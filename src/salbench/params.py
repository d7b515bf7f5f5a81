"""Parameter handling shared by every registry entry: paper defaults, overrides, clear errors."""

from __future__ import annotations

import json
from typing import Any, Mapping


class ParamError(ValueError):
    """An unknown or ill-typed parameter for a registry entry."""


class ConfigError(ValueError):
    """An invalid study config; the message names the key and the allowed values.

    Defined here, not in :mod:`salbench.config` (which re-exports it), so that modules raising it do not import
    the config module and, through it, every registry: the rules' source hashes follow imports.
    """


def resolve_params(kind: str, name: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by ``given``; an unknown key names the entry and lists the allowed keys."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "(none)"
        raise ParamError(f"{kind} {name!r} has no parameter {unknown[0]!r}; allowed: {allowed}")
    return {**defaults, **given}


def check_choice(kind: str, name: str, param: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise a :class:`ParamError` naming the entry and the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ParamError(f"{kind} {name!r}: {param}={value!r} is not one of {', '.join(allowed)}")


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys) for rule params and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
