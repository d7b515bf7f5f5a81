"""Snapshot of the registries for cheap config validation and DAG building.

The Snakefile must not import torch (every cluster job re-parses it), so names, parameter defaults
and capability flags of every registered entry are written to ``schemas/catalog.json`` by
``salbench catalog --write``; a test fails when the snapshot and the live registries differ.

Plugins (:mod:`salbench.plugins`) are the study's, not the package's: :func:`study_catalog` adds the configured
ones to the snapshot as a *fragment* built by importing them (their entries, and a probe call on a tiny random
model, :mod:`salbench.plugin_probe`). The fragment is cached in ``$SALBENCH_PLUGIN_CACHE`` (default
``resources/plugins`` in the study folder) under a key over the plugins' names, parameters, versions and source
hashes (found by parsing, not importing), so the Snakemake main process builds it once and every later DAG
build, each job's Snakefile parse included, reads a small JSON file; editing a plugin changes its key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import CATALOG_PATH, SRC_DIR, load_catalog, source_hash
from .params import ConfigError


def _module_file(obj: Any) -> str:
    return Path(inspect.getfile(obj)).resolve().relative_to(SRC_DIR).as_posix()


def method_record(cls: Any, description: str, module: str) -> dict[str, Any]:
    """A method's catalog entry: what the config validation and the workflow's skip logic read."""
    return {"module": module, "description": description, "params": cls.defaults, "needs_layer": cls.needs_layer,
            "needs_gap_fc": cls.needs_gap_fc, "model_family": cls.model_family, "requires": list(cls.capabilities()),
            "uses_model": cls.uses_model, "citation": cls.citation}


def metric_record(cls: Any, description: str, module: str) -> dict[str, Any]:
    """A metric's catalog entry."""
    return {"module": module, "description": description, "params": cls.defaults, "needs_model": cls.needs_model,
            "needs_mask": cls.needs_mask, "aggregate": cls.aggregate, "higher_is_better": cls.higher_is_better,
            "citation": cls.citation}


def arch_record(arch: Any, description: str, module: str) -> dict[str, Any]:
    """A model architecture's catalog entry."""
    return {"module": module, "description": description, "spec": asdict(arch.spec)}


def check_record(check: Any, description: str, module: str) -> dict[str, Any]:
    """A sanity check's catalog entry."""
    return {"module": module, **check.summary()}


def build_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """The live registries' built-in entries as plain JSON-able data (plugins are not part of the snapshot)."""
    from .data import DATASETS
    from .methods import METHODS
    from .metrics import METRICS
    from .models import ARCHS
    from .sanity.checks import CHECKS

    datasets = {
        e.name: {"module": _module_file(e.obj), "description": e.description, "params": e.obj.defaults,
                 "classes": list(e.obj.classes), "objects": e.obj.objects}
        for e in DATASETS.builtin_entries()
    }
    sections = {"datasets": datasets}
    for section, registry, record, code in (("archs", ARCHS, arch_record, lambda o: o.build),
                                            ("methods", METHODS, method_record, lambda o: o),
                                            ("metrics", METRICS, metric_record, lambda o: o),
                                            ("checks", CHECKS, check_record, lambda o: o.compute)):
        sections[section] = {e.name: record(e.obj, e.description, _module_file(code(e.obj)))
                             for e in registry.builtin_entries()}
    return json.loads(json.dumps(sections))


def render_catalog() -> str:
    return json.dumps(build_catalog(), indent=1, sort_keys=True) + "\n"


def write_catalog(path: Path = CATALOG_PATH) -> Path:
    path.write_text(render_catalog())
    return path


#: config section -> (registry kind, field naming the entry, catalog section)
PLUGIN_SECTIONS = {"methods": ("method", "method", "methods"), "metrics": ("metric", "metric", "metrics"),
                   "models": ("model architecture", "arch", "archs")}
CACHE_ENV = "SALBENCH_PLUGIN_CACHE"


def configured_plugins(config: dict[str, Any]) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """``(config key, catalog section, plugin ref, params)`` of every plugin a schema-checked config names:
    a name the snapshot lacks that is an import path or an installed entry point (imports nothing)."""
    from .plugins import find_plugin

    catalog = load_catalog()
    found = []
    for section, (kind, field, target) in PLUGIN_SECTIONS.items():
        for name, spec in config.get(section, {}).items():
            entry = spec.get(field, name)
            ref = None if entry in catalog[target] else find_plugin(kind, entry)
            if ref is not None:
                found.append((f"{section}.{name}.{field}", target, ref, spec.get("params", {})))
    return found


def study_catalog(config: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The snapshot plus the config's plugins (see the module docstring); a broken plugin is a ConfigError
    naming its config key."""
    catalog = load_catalog()
    plugins = configured_plugins(config)
    if not plugins:
        return catalog
    fragment = plugin_fragment(plugins)
    return {section: {**entries, **fragment.get(section, {})} for section, entries in catalog.items()}


def _fragment_key(plugins: list[tuple[str, str, Any, dict[str, Any]]]) -> str:
    from .plugins import not_found
    from .sources import PluginSourceError

    described = []
    for key, section, ref, params in plugins:
        try:
            described.append([key, section, ref.name, ref.record(), params])
        except PluginSourceError as err:
            raise ConfigError(f"config key {key!r}: {not_found(ref, err)}") from None
    own = source_hash(["catalog.py", "plugins.py", "plugin_probe.py"])
    return hashlib.sha256(json.dumps([own, described], sort_keys=True).encode()).hexdigest()[:24]


def plugin_fragment(plugins: list[tuple[str, str, Any, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The catalog entries of ``plugins`` (:func:`configured_plugins`), from the cache or built and cached."""
    cache = Path(os.environ.get(CACHE_ENV) or "resources/plugins") / f"{_fragment_key(plugins)}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    fragment = build_fragment(plugins)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(fragment, sort_keys=True))
    tmp.replace(cache)
    return fragment


def build_fragment(plugins: list[tuple[str, str, Any, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Import each plugin, check its contract and probe it (imports torch); entries as in the snapshot, with
    ``module`` naming the plugin's source (``plugin:<module>``) and ``plugin`` its package record."""
    from .methods import METHODS
    from .metrics import METRICS
    from .models import ARCHS
    from .plugin_probe import probe
    from .plugins import PluginError

    registries = {"methods": (METHODS, method_record), "metrics": (METRICS, metric_record),
                  "archs": (ARCHS, arch_record)}
    fragment: dict[str, dict[str, dict[str, Any]]] = {}
    for key, section, ref, params in plugins:
        registry, record = registries[section]
        try:
            obj = registry.get(ref.name)
            probe(section, ref.name, params)
        except PluginError as err:
            raise ConfigError(f"config key {key!r}: {err}") from None
        fragment.setdefault(section, {})[ref.name] = {**record(obj, registry.description(ref.name), ref.source),
                                                      "plugin": ref.record()}
    return json.loads(json.dumps(fragment))
