"""One registry shape for methods, models, data sets and metrics (in the spirit of timm's).

Each family keeps a :class:`Registry`; entries are registered by an explicit name with a decorator,
a duplicate name is an error, and an unknown name raises an error that lists the allowed names.
A name the registry does not hold may name a plugin (an import path ``package.module:Attribute`` or an
installed entry point, :mod:`salbench.plugins`): :meth:`Registry.get` imports it, checks it against the
family's contract and registers it, with its package, version and source hash in :attr:`Entry.plugin`.
"""

from __future__ import annotations

import fnmatch
import importlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the allowed names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str
    #: a plugin's package, version and source hash (None for a built-in entry)
    plugin: dict[str, str] | None = None


class Registry(Generic[T]):
    """Name -> object mapping for one family ("method", "model", "dataset", "metric")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; the description defaults to its docstring's first line."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, obj, description or _first_line(getattr(obj, "__doc__", None)))
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The object registered as ``name`` (a plugin is loaded on first use); an unknown name lists the
        allowed ones. A broken plugin raises :class:`salbench.plugins.PluginError`."""
        if name not in self._entries and not self.load_plugin(name):
            allowed = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r}; allowed: {allowed}")
        return self._entries[name].obj

    def load_plugin(self, name: str) -> bool:
        """Import, check and register plugin ``name`` (see :mod:`salbench.plugins`); False if it names none."""
        loaded = _plugins().load_plugin(self.kind, name)
        if loaded is not None:
            obj, description, record = loaded
            self._entries[name] = Entry(name, obj, description, record)
        return loaded is not None

    def load_installed_plugins(self) -> list[str]:
        """Register every installed entry-point plugin of this family (``salbench list``); the names registered.
        A broken one is left out with a warning (its one-line error), so one bad package hides no other."""
        plugins = _plugins()
        loaded = []
        for name in plugins.installed_names(self.kind):
            if name in self._entries:
                continue
            try:
                self.load_plugin(name)
            except plugins.PluginError as err:
                warnings.warn(str(err), stacklevel=2)
                continue
            loaded.append(name)
        return loaded

    def names(self, filter: str = "*", exclude: tuple[str, ...] = ()) -> list[str]:
        """Sorted names matching the fnmatch ``filter`` and none of ``exclude``."""
        return sorted(
            n for n in self._entries if fnmatch.fnmatch(n, filter) and not any(fnmatch.fnmatch(n, e) for e in exclude)
        )

    def entries(self) -> list[Entry[T]]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def description(self, name: str) -> str:
        """One-line description of ``name``."""
        self.get(name)
        return self._entries[name].description

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line description) pairs for ``salbench list``; a plugin's is marked with its package."""
        return [(e.name, e.description if e.plugin is None else
                 f"[plugin {e.plugin['package']} {e.plugin['version'] or '(not installed)'}] {e.description}")
                for e in self.entries()]

    def forget_plugins(self) -> None:
        """Drop the loaded plugins (a notebook reloading its edited plugin; tests)."""
        self._entries = {n: e for n, e in self._entries.items() if e.plugin is None}

    def builtin_entries(self) -> list[Entry[T]]:
        """The entries registered by salbench itself (the catalog snapshot), sorted by name."""
        return [e for e in self.entries() if e.plugin is None]


def _plugins() -> Any:
    """:mod:`salbench.plugins`, imported by name: the plugin loader is no source of a built-in entry, so the
    parse-based rule hashes (:mod:`salbench.sources`) must not follow it from every registry module; a plugin
    entry's hash covers it instead."""
    return importlib.import_module(f"{__package__}.plugins")


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def create(registry: Registry[Callable[..., Any]], name: str, **params: Any) -> Any:
    """Instantiate the entry ``name`` with ``params``, dropping None values so defaults survive."""
    return registry.get(name)(**{k: v for k, v in params.items() if v is not None})
