"""One registry shape for methods, models, data sets and metrics (in the spirit of timm's).

Each family keeps a :class:`Registry`; entries are registered by an explicit name with a decorator,
a duplicate name is an error, and an unknown name raises an error that lists the allowed names.
"""

from __future__ import annotations

import fnmatch
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
        """The object registered as ``name``; an unknown name lists the allowed ones."""
        try:
            return self._entries[name].obj
        except KeyError:
            allowed = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r}; allowed: {allowed}") from None

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
        """(name, one-line description) pairs for ``salbench list``."""
        return [(e.name, e.description) for e in self.entries()]


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def create(registry: Registry[Callable[..., Any]], name: str, **params: Any) -> Any:
    """Instantiate the entry ``name`` with ``params``, dropping None values so defaults survive."""
    return registry.get(name)(**{k: v for k, v in params.items() if v is not None})
