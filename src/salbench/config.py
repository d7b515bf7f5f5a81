"""Study config: load, fill schema defaults, and validate with one clear message per error.

Cheap to import (no torch): the Snakefile calls :func:`validate_config` on every DAG build. Names of
data sets, architectures, methods and metrics, and their parameters' keys and types, are checked
against ``schemas/catalog.json``, a snapshot of the registries (``salbench catalog`` rewrites it; a
test keeps it equal to the live registries).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "config.schema.yaml"
CATALOG_PATH = SCHEMA_DIR / "catalog.json"
SRC_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """An invalid study config; the message names the key and the allowed values."""


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads(CATALOG_PATH.read_text())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's contents, unvalidated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    return validate_config(read_config_file(path))


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A validated copy of ``config`` with defaults filled; raises :class:`ConfigError` on the first problem."""
    config = copy.deepcopy(config)
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of keys, got {type(config).__name__}")
    _check_schema(config)
    _check_names(config)
    _check_grid(config)
    _check_references(config)
    return config


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _check_schema(config: dict[str, Any]) -> None:
    schema = load_schema()
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    error = errors[0]
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(f"config key {_key([*error.absolute_path, extra[0]])!r} is not allowed; allowed keys: {allowed}")
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        raise ConfigError(f"config key {key!r}: {error.instance!r} is not allowed; allowed values: {allowed}")
    if error.validator == "required":
        raise ConfigError(f"config key {key!r}: {error.message}")
    if error.validator == "propertyNames":
        raise ConfigError(f"config key {key!r}: name {error.instance!r} must match {error.schema['pattern']}")
    raise ConfigError(f"config key {key!r}: {error.message}")


def _fill_defaults(validator, properties, instance, schema):
    if isinstance(instance, dict):
        for name, subschema in properties.items():
            if "default" in subschema and name not in instance:
                instance[name] = copy.deepcopy(subschema["default"])
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_DefaultFillingValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_defaults})


def _check_names(config: dict[str, Any]) -> None:
    catalog = load_catalog()
    for name, spec in config["datasets"].items():
        _check_entry(catalog, "datasets", f"datasets.{name}.source", spec["source"], spec["params"], f"datasets.{name}.params")
        source = spec.get("models_from")
        if source is not None:
            trainable = [n for n, s in config["datasets"].items() if "models_from" not in s]
            if source not in trainable:
                raise ConfigError(f"config key 'datasets.{name}.models_from': {source!r} is not a training data set of "
                                  f"this config; allowed values: {', '.join(trainable) or '(none)'}")
    if all("models_from" in s for s in config["datasets"].values()):
        raise ConfigError("config key 'datasets': at least one data set must train models (no models_from)")
    for name, spec in config["models"].items():
        _check_entry(catalog, "archs", f"models.{name}.arch", spec["arch"], {}, "")
    for section, field in (("methods", "method"), ("metrics", "metric")):
        for name, spec in config[section].items():
            spec.setdefault(field, name)
            _check_entry(catalog, section, f"{section}.{name}.{field}", spec[field], spec["params"],
                         f"{section}.{name}.params")


def _check_entry(catalog, section: str, key: str, name: str, params: dict[str, Any], params_key: str) -> None:
    entries = catalog[section]
    if name not in entries:
        raise ConfigError(f"config key {key!r}: unknown {section[:-1]} {name!r}; allowed values: {', '.join(sorted(entries))}")
    defaults = entries[name].get("params", {})
    for param, value in params.items():
        if param not in defaults:
            allowed = ", ".join(sorted(defaults)) or "(none)"
            raise ConfigError(f"config key '{params_key}.{param}' is not a parameter of {name!r}; allowed keys: {allowed}")
        if not _same_kind(value, defaults[param]):
            raise ConfigError(f"config key '{params_key}.{param}': {value!r} has the wrong type; expected "
                              f"{type(defaults[param]).__name__} like the default {defaults[param]!r}")


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def grid_enabled(config: dict[str, Any]) -> bool:
    """Whether a validated config builds localisation grids (a ``grid`` section without ``enabled: false``)."""
    return bool((config.get("grid") or {}).get("enabled", False))


def grid_class_error(n: int, num_classes: int, dataset: str) -> str | None:
    """Why ``n x n`` grids of distinct classes cannot be built from a data set of ``num_classes`` (None if they can)."""
    if n * n <= num_classes:
        return None
    largest = math.isqrt(num_classes)
    allowed = f"allowed values: {', '.join(map(str, range(2, largest + 1)))}" if largest >= 2 else "no n fits"
    return (f"config key 'grid.n': {n} needs {n * n} distinct classes per grid, but data set {dataset!r} has "
            f"{num_classes}; {allowed}")


def _check_grid(config: dict[str, Any]) -> None:
    """Every single-object data set must have at least ``n*n`` classes when grids are on."""
    if not grid_enabled(config):
        return
    catalog = load_catalog()["datasets"]
    for name, spec in config["datasets"].items():
        entry = catalog[spec["source"]]
        if entry["objects"] == 1:
            error = grid_class_error(config["grid"]["n"], len(entry["classes"]), name)
            if error:
                raise ConfigError(error)


def _check_references(config: dict[str, Any]) -> None:
    """Each published reference names a metric, method and (optional) model of this config."""
    metrics = set(config["metrics"])
    if grid_enabled(config):
        metrics.add(f"grid_localisation_{config['grid']['n']}x{config['grid']['n']}")
    for i, ref in enumerate(config.get("references", [])):
        for field, allowed in (("metric", metrics), ("method", set(config["methods"])), ("model", set(config["models"]))):
            if field in ref and ref[field] not in allowed:
                raise ConfigError(f"config key 'references.{i}.{field}': {ref[field]!r} is not in this config; "
                                  f"allowed values: {', '.join(sorted(allowed))}")


def training_dataset(config: dict[str, Any], dataset: str) -> str:
    """The data set whose models ``dataset`` is evaluated with (itself unless ``models_from``)."""
    return config["datasets"][dataset].get("models_from", dataset)


_RELATIVE_IMPORT = re.compile(r"^\s*from (\.+)([\w.]*) import ([\w, ()]+)", re.MULTILINE)


def _imported_files(rel: str) -> set[str]:
    """Package files that ``rel`` imports relatively (``from .x import y``, ``from . import x``)."""
    found = set()
    here = (SRC_DIR / rel).parent
    for dots, module, names in _RELATIVE_IMPORT.findall((SRC_DIR / rel).read_text()):
        base = here
        for _ in range(len(dots) - 1):
            base = base.parent
        targets = [module] if module else [n.strip(" ()") for n in names.split(",")]
        for target in targets:
            path = base.joinpath(*target.split("."))
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if candidate.is_file():
                    found.add(candidate.relative_to(SRC_DIR).as_posix())
                    break
    return found


@lru_cache(maxsize=None)
def source_closure(rel: str) -> frozenset[str]:
    """``rel`` and every package file it imports, transitively (relative imports only)."""
    seen, todo = set(), [rel]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_imported_files(current) - seen)
    return frozenset(seen)


def source_hash(entry_files: Iterable[str]) -> str:
    """Short sha256 over the source files under ``src/salbench`` that ``entry_files`` depend on.

    Snakemake does not track imported modules, so rules carry this as a param: editing a method's
    module (or anything it imports) reruns that method's jobs and nothing else.
    """
    digest = hashlib.sha256()
    files = sorted(set().union(*(source_closure(f) for f in entry_files)))
    for rel in files:
        digest.update(rel.encode())
        digest.update((SRC_DIR / rel).read_bytes())
    return digest.hexdigest()[:16]


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys) for rule params and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
