"""Plugins: methods, metrics, sanity checks and model architectures from the user's own code.

A study config names a plugin by import path (``methods: {mine: {method: "my_package.attribution:MyMethod"}}``,
``metrics.<m>.metric``, ``models.<m>.arch``), or an installed package registers it under a plain name through an
entry point of group ``salbench.methods``, ``salbench.metrics``, ``salbench.checks`` or ``salbench.models``
(:mod:`importlib.metadata`). Either way the registry (:meth:`salbench.registry.Registry.get`) imports it on
first use, checks it against the contract of its family (:data:`CONTRACTS`) and registers it like a built-in
entry, recording its package, version and source hash (:func:`loaded_plugins`, written into every store's
provenance). Finding a plugin (:func:`find_plugin`) imports nothing, so the Snakefile can hash its sources.

The contract of each family:

- method: a non-abstract :class:`~salbench.methods.base.Method` subclass with ``attribute(self, model, inputs,
  target)``; its capability flags (``needs_layer``, ``requires``, ...) have the built-in types;
- metric: a non-abstract :class:`~salbench.metrics.base.Metric` subclass with ``score(self, batch)``;
- model architecture: an :class:`~salbench.models.base.Arch` (builder + :class:`~salbench.models.base.ModelSpec`);
- check: a :class:`~salbench.sanity.checks.base.Check` whose name is its entry-point name (one named by import
  path in ``sanity.checks`` is registered, and its verdict named, by that path). Installed checks run in every
  sanity job; the sanity rule's code hash covers every check plugin a study runs (:func:`check_sources`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from .sources import PLUGIN_PREFIX, PluginSourceError, plugin_hash, plugin_version

#: ``package.module:Attribute`` (the attribute may be dotted: ``module:Class.inner``)
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
#: registry kind -> entry-point group
GROUPS = {"method": "salbench.methods", "metric": "salbench.metrics", "check": "salbench.checks",
          "model architecture": "salbench.models"}


class PluginError(ValueError):
    """A plugin cannot be imported or breaks its family's contract; one line, naming the plugin."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` is a plugin import path (``package.module:Attribute``)."""
    return bool(IMPORT_PATH.match(name))


@dataclass(frozen=True)
class PluginRef:
    """Where a plugin lives, found without importing it: its registry kind and name, ``module:attribute``
    target, and the distribution that provides it ("" when it is plain code on the Python path)."""

    kind: str
    name: str
    target: str
    package: str = ""
    version: str = ""

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def source(self) -> str:
        """The entry file naming this plugin in a rule's :func:`~salbench.sources.source_hash`."""
        return PLUGIN_PREFIX + self.module

    def record(self) -> dict[str, str]:
        """Package, version and source hash (stores' provenance, ``salbench list``, the catalog)."""
        return {"plugin": self.target, "package": self.package or self.module.split(".")[0],
                "version": self.version, "source_hash": plugin_hash(self.module)}


def entry_points(kind: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The installed entry points of ``kind``'s group, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUPS[kind])}


def find_plugin(kind: str, name: str) -> PluginRef | None:
    """The plugin ``name`` of registry ``kind`` (an import path, or an installed entry point), None if it is
    neither; imports nothing."""
    if kind not in GROUPS:
        return None
    if is_import_path(name):
        installed = plugin_version(name.partition(":")[0])
        package, _, version = installed.partition("==")
        return PluginRef(kind, name, name, package, version)
    point = entry_points(kind).get(name)
    if point is None:
        return None
    dist = point.dist
    return PluginRef(kind, name, point.value.replace(" ", ""), dist.name if dist else "", dist.version if dist else "")


def not_found(ref: PluginRef, err: PluginSourceError) -> PluginError:
    """The error for a plugin whose module is not on the Python path."""
    return PluginError(f"{ref.kind} plugin {ref.name!r}: cannot import {ref.module!r} ({err}); install its package "
                       "or put its folder on PYTHONPATH")


def import_target(ref: PluginRef) -> Any:
    """The object ``ref.target`` names; a one-line :class:`PluginError` when the module or attribute is missing."""
    module_name, _, attribute = ref.target.partition(":")
    try:
        plugin_hash(module_name)  # a clear message when the module is not on the path, before importing it
        obj: Any = importlib.import_module(module_name)
    except PluginSourceError as err:
        raise not_found(ref, err) from None
    except Exception as err:  # the plugin's own import fails: show its error
        raise PluginError(f"{ref.kind} plugin {ref.name!r}: importing {module_name!r} fails "
                          f"({type(err).__name__}: {err})") from err
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{ref.kind} plugin {ref.name!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


def _signature_error(function: Any, arguments: tuple[str, ...]) -> str | None:
    """Why ``function`` cannot be called with ``arguments`` positionally (None when it can)."""
    try:
        inspect.signature(function).bind(*arguments)
    except (TypeError, ValueError):
        return f"{function.__name__}{inspect.signature(function)} cannot be called as {function.__name__}" \
               f"({', '.join(arguments)})"
    return None


#: (class attribute, allowed types, what it must be) of the flags every entry of a family declares
_FLAGS: dict[str, tuple[tuple[str, tuple[type, ...], str], ...]] = {
    "method": (("defaults", (dict,), "a dict"), ("citation", (str,), "a string"), ("needs_layer", (bool,), "a bool"),
               ("needs_gap_fc", (bool,), "a bool"), ("uses_model", (bool,), "a bool"),
               ("model_family", (str, type(None)), "a string or None"), ("requires", (tuple,), "a tuple of strings"),
               ("layer_role", (str,), "a string")),
    "metric": (("defaults", (dict,), "a dict"), ("citation", (str,), "a string"), ("needs_model", (bool,), "a bool"),
               ("needs_mask", (bool,), "a bool"), ("needs_method", (bool,), "a bool"),
               ("higher_is_better", (bool,), "a bool"), ("aggregate", (str,), "a string")),
}


def _class_contract(ref: PluginRef, obj: Any, base: type, function: str, arguments: tuple[str, ...]) -> type:
    what = f"{ref.kind} plugin {ref.name!r}"
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"{what}: {ref.target} is {obj!r}, not a subclass of {base.__module__}.{base.__name__}")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise PluginError(f"{what}: {obj.__name__} is abstract; implement {missing}")
    for attribute, types, kind in _FLAGS[ref.kind]:
        if not isinstance(getattr(obj, attribute), types):
            raise PluginError(f"{what}: {obj.__name__}.{attribute} must be {kind}, got {getattr(obj, attribute)!r}")
    error = _signature_error(getattr(obj, function), ("self", *arguments))
    if error:
        raise PluginError(f"{what}: {error}; the contract is {function}(self, {', '.join(arguments)})")
    obj.name = ref.name  # as register_method / register_metric name their classes
    return obj


def _method_contract(ref: PluginRef, obj: Any) -> Any:
    from .methods.base import Method

    cls = _class_contract(ref, obj, Method, "attribute", ("model", "inputs", "target"))
    if not all(isinstance(r, str) for r in cls.requires):
        raise PluginError(f"method plugin {ref.name!r}: {cls.__name__}.requires must be a tuple of strings")
    return cls


def _metric_contract(ref: PluginRef, obj: Any) -> Any:
    from .metrics.base import Metric

    cls = _class_contract(ref, obj, Metric, "score", ("batch",))
    if cls.aggregate not in ("mean", "class_mean"):
        raise PluginError(f"metric plugin {ref.name!r}: {cls.__name__}.aggregate must be 'mean' or 'class_mean', "
                          f"got {cls.aggregate!r}")
    return cls


def _arch_contract(ref: PluginRef, obj: Any) -> Any:
    import dataclasses

    from .models.base import Arch

    if not isinstance(obj, Arch):
        raise PluginError(f"model architecture plugin {ref.name!r}: {ref.target} is {type(obj).__name__}, not a "
                          "salbench.models.Arch(build, spec)")
    error = _signature_error(obj.build, ("num_classes",))
    if error:
        raise PluginError(f"model architecture plugin {ref.name!r}: {error}; the contract is build(num_classes)")
    return dataclasses.replace(obj, spec=dataclasses.replace(obj.spec, arch=ref.name))  # checkpoints name the plugin


def _check_contract(ref: PluginRef, obj: Any) -> Any:
    from .sanity.checks.base import Check

    if not isinstance(obj, Check):
        raise PluginError(f"check plugin {ref.name!r}: {ref.target} is {type(obj).__name__}, not a "
                          "salbench.sanity.checks.Check")
    if is_import_path(ref.name):  # registered, and its verdict named, by its import path; its rows keep their name
        import dataclasses

        return dataclasses.replace(obj, name=ref.name, rows=obj.rows)
    if obj.name != ref.name:
        raise PluginError(f"check plugin {ref.name!r}: the check's name is {obj.name!r}; name the entry point "
                          "after it")
    return obj


#: registry kind -> contract check returning the object to register
CONTRACTS: dict[str, Callable[[PluginRef, Any], Any]] = {
    "method": _method_contract, "metric": _metric_contract, "model architecture": _arch_contract,
    "check": _check_contract,
}

#: plugins imported by this process: (kind, name) -> record (see :func:`loaded_plugins`)
_LOADED: dict[tuple[str, str], dict[str, str]] = {}


def load_plugin(kind: str, name: str) -> tuple[Any, str, dict[str, str]] | None:
    """``(object, description, record)`` of plugin ``name`` of registry ``kind``, imported and checked
    against its contract; None when ``name`` names no plugin."""
    ref = find_plugin(kind, name)
    if ref is None:
        return None
    obj = CONTRACTS[kind](ref, import_target(ref))
    record = ref.record()
    _LOADED[(kind, name)] = record
    # a check's or an architecture's own description, else the class's (an architecture's builder's) docstring
    text = getattr(obj, "description", "") or getattr(getattr(obj, "build", obj), "__doc__", None) or ""
    doc = text.strip().splitlines()
    return obj, doc[0].strip() if doc else "", record


def loaded_plugins() -> dict[str, dict[str, str]]:
    """``{"<kind>:<name>": record}`` of every plugin this process imported (stores' provenance)."""
    return {f"{kind}:{name}": record for (kind, name), record in sorted(_LOADED.items())}


@lru_cache(maxsize=None)
def installed_names(kind: str) -> tuple[str, ...]:
    """Names of ``kind``'s installed entry-point plugins."""
    return tuple(sorted(entry_points(kind))) if kind in GROUPS else ()


#: the config key naming a study's extra sanity checks (registered names or import paths)
CHECKS_KEY = "sanity.checks"


def check_plugins(config: dict[str, Any]) -> list[PluginRef]:
    """The check plugins a study runs, found without importing them: every installed ``salbench.checks`` entry
    point (registered whenever :mod:`salbench.sanity.checks` is imported, so every sanity job runs them) and
    each plugin the config's ``sanity.checks`` names; a built-in name there names none. The sanity rule's code
    hash covers their modules (:func:`check_sources`)."""
    names = dict.fromkeys([*installed_names("check"), *config.get("sanity", {}).get("checks", [])])
    return [ref for ref in (find_plugin("check", name) for name in names) if ref is not None]


def check_sources(config: dict[str, Any]) -> list[str]:
    """The :func:`~salbench.sources.source_hash` entries of the study's check plugins (``plugin:<module>``)."""
    return sorted({ref.source for ref in check_plugins(config)})


def validate_checks(config: dict[str, Any]) -> None:
    """Import and register every check the config's ``sanity.checks`` names, before any job; a one-line
    :class:`~salbench.params.ConfigError` naming the key for an unknown name or a broken plugin."""
    names = config.get("sanity", {}).get("checks", [])
    if not names:  # the Snakefile validates on every parse: import the check registry only when needed
        return
    from .params import ConfigError
    from .registry import UnknownNameError
    from .sanity.checks import CHECKS

    for name in names:
        try:
            CHECKS.get(name)
        except (PluginError, UnknownNameError) as err:
            raise ConfigError(f"config key '{CHECKS_KEY}': {err}") from None
