"""Study config: load, fill schema defaults, and validate with one clear message per error.

Cheap to import (no torch): the Snakefile calls :func:`validate_config` on every DAG build. Names of
data sets, architectures, methods and metrics, and their parameters' keys and types, are checked
against ``schemas/catalog.json``, a snapshot of the registries (``salbench catalog`` rewrites it; a
test keeps it equal to the live registries).
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from .params import ConfigError, canonical_json  # noqa: F401 - canonical_json: the workflow's name
from .snapshot import CATALOG_PATH, load_catalog  # noqa: F401 - the validator's and the CLI's names
from .sources import source_closure, source_hash  # noqa: F401 - the rules' rerun triggers

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "config.schema.yaml"
SRC_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def read_config_file(path: str | Path) -> Any:
    """A JSON or YAML config file's contents, unvalidated (``{}`` for an empty file).

    Read as Snakemake reads ``--configfile`` (JSON first, then YAML), but a key given twice in one mapping is
    an error instead of the last value winning silently.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; name a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not a text file ({err.reason} at byte {err.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except DuplicateKeyError as err:
        raise ConfigError(f"config file {path}: {err}") from err
    except ValueError:
        pass  # not JSON: YAML (of which JSON is mostly a part)
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise ConfigError(f"config file {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(err).split())}") from err
    return {} if document is None else document


def workflow_config(config: dict[str, Any], configfiles: Iterable[str | Path], default: Path) -> dict[str, Any]:
    """The validated study of a Snakemake run: ``config`` as Snakemake merged it from ``configfiles`` (each read
    again here, which refuses a key given twice), or the default study at ``default`` when no config file and
    no ``--config`` value is given. An empty config file is an error, not the default study."""
    configfiles = list(configfiles)
    for path in configfiles:
        read_config_file(path)
    if not configfiles and not config:
        return validate_config(read_config_file(default))
    return validate_config(config)


class DuplicateKeyError(yaml.YAMLError):
    """A YAML or JSON mapping repeats a key (both keep the last value silently)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook that refuses a key given twice."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(f"config key {key!r} is given twice in one mapping; keep one")
        seen[key] = value
    return seen


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(f"config key {key!r} is given twice in one mapping (line "
                                        f"{key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    return validate_config(read_config_file(path))


def validate_config(config: Any) -> dict[str, Any]:
    """A validated copy of ``config`` with defaults filled; raises :class:`ConfigError` on the first problem."""
    config = copy.deepcopy(config)
    if not isinstance(config, dict):
        raise ConfigError(f"config key '(top level)': the config must be a mapping of keys (datasets, models, "
                          f"methods, metrics, ...), got {_kind(config)}")
    if not config:
        raise ConfigError("config key '(top level)': the config is empty; a study needs datasets, models, methods "
                          "and metrics (config/config.yaml is the default study, run when no --configfile is given)")
    _check_plain_data(config)
    _check_schema(config)
    _check_name_case(config)
    _check_names(config)
    _check_sanity_checks(config)
    _check_selections(config)
    _check_train_options(config)
    _check_grid(config)
    _check_shards(config)
    _check_references(config)
    _check_meta_evaluation(config)
    return config


def _check_meta_evaluation(config: dict[str, Any]) -> None:
    """The ``meta_evaluation`` section names configured methods, models, data sets and metric parameters."""
    from .meta_config import check_meta_config  # it imports this module

    check_meta_config(config, load_catalog())


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


#: how a config's values read, by Python type (YAML's own types, such as dates, fall back to the type's name)
_KINDS = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a number", type(None): "null"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")


def _check_plain_data(node: Any, path: tuple[Any, ...] = ()) -> None:
    """Every name a string, every number finite, every value one a JSON document can hold, anywhere in the config.

    YAML reads ``1:`` and ``yes:`` as an integer and a boolean name, ``.inf`` and ``.nan`` as numbers that JSON
    Schema's ``number`` lets through, and ``2024-01-02`` as a date: each would pass validation and then fail
    in a job (a name as a path part, a value in ``json.dumps``) or silently train a NaN model.
    """
    if isinstance(node, dict):
        for name, value in node.items():
            if not isinstance(name, str):
                raise ConfigError(f"config key {_key([*path, name])!r}: the name {name!r} is read as {_kind(name)}, "
                                  "not a string; names are strings: quote it in the config file")
            _check_plain_data(value, (*path, name))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_plain_data(value, (*path, index))
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"config key {_key(path)!r}: {node!r} is not a finite number; allowed values: finite numbers")
    elif type(node) not in _KINDS:
        raise ConfigError(f"config key {_key(path)!r}: {node} is read as {_kind(node)}, which a config cannot hold; "
                          "allowed values: strings, numbers, booleans, null, lists and mappings (quote it to keep "
                          "it as text)")


def _check_name_case(config: dict[str, Any]) -> None:
    """Names of one section that differ only in case would be one file on a case-insensitive file system."""
    for section in ("datasets", "models", "methods"):
        seen: dict[str, str] = {}
        for name in config[section]:
            other = seen.setdefault(name.lower(), name)
            if other != name:
                raise ConfigError(f"config key '{section}': names {other!r} and {name!r} differ only in case, so they "
                                  "would share files on a case-insensitive file system (macOS, Windows); rename one")


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
    if "propertyNames" in error.schema_path and "description" in error.schema:
        raise ConfigError(f"config key {key!r}: the name {error.instance!r} is not allowed; allowed names: "
                          f"{error.schema['description']}")
    raise ConfigError(f"config key {key!r}: {error.message}")


def _fill_defaults(validator, properties, instance, schema):
    if isinstance(instance, dict):
        for name, subschema in properties.items():
            if "default" in subschema and name not in instance:
                instance[name] = copy.deepcopy(subschema["default"])
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


def _is_integer(checker, instance) -> bool:
    """JSON Schema's ``integer`` without whole-number floats: ``2.0`` would reach ``range()`` as a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_DefaultFillingValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _fill_defaults},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _check_names(config: dict[str, Any]) -> None:
    from .catalog import study_catalog  # the snapshot plus the config's plugins (salbench.plugins)

    catalog = study_catalog(config)
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
    from .model_config import USER_ARCH, check_model_entry

    for name, spec in config["models"].items():
        if spec["arch"] != USER_ARCH:  # a user model's architecture is its own, not a registered one
            _check_entry(catalog, "archs", f"models.{name}.arch", spec["arch"], {}, "")
        check_model_entry(name, spec, catalog)
    for section, field in (("methods", "method"), ("metrics", "metric")):
        for name, spec in config[section].items():
            spec.setdefault(field, name)
            _check_entry(catalog, section, f"{section}.{name}.{field}", spec[field], spec["params"],
                         f"{section}.{name}.params")


def _check_sanity_checks(config: dict[str, Any]) -> None:
    """Every check ``sanity.checks`` names is registered or a plugin that imports and keeps the check contract."""
    from .plugins import validate_checks

    validate_checks(config)


def _check_selections(config: dict[str, Any]) -> None:
    """Every name in ``datasets.<d>.models``, ``datasets.<d>.methods`` and ``methods.<m>.models`` is in the config."""
    lists = [(f"datasets.{name}.{key}", spec.get(key), key) for name, spec in config["datasets"].items()
             for key in ("models", "methods")]
    lists += [(f"methods.{name}.models", spec.get("models"), "models") for name, spec in config["methods"].items()]
    for key, chosen, section in lists:
        unknown = [n for n in chosen or () if n not in config[section]]
        if unknown:
            raise ConfigError(f"config key {key!r}: {unknown[0]!r} is not in this config's {section}; "
                              f"allowed values: {', '.join(sorted(config[section]))}")


#: the largest seed, in a registry entry's parameters as in the schema: numpy's legacy seeding takes 32 bits
SEED_MAX = 2**32 - 1


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX


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
        if (param == "seed" or param.endswith("_seed")) and not _is_seed(value):
            raise ConfigError(f"config key '{params_key}.{param}': {value!r} is not a seed; allowed values: "
                              f"integers 0 to {SEED_MAX}")


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


#: training options that only apply with another option's value: option -> (key, required value)
TRAIN_OPTION_NEEDS = {"lr_step": ("schedule", "step"), "lr_decay": ("schedule", "step"),
                      "crop_padding": ("augmentation", "flip_crop")}


def _check_train_options(config: dict[str, Any]) -> None:
    """A training option that only applies with another's value (``lr_step`` with ``schedule: step``) is an
    error without it: it would be ignored silently."""
    for name, spec in config["models"].items():
        train = spec.get("train", {})
        for option, (key, needed) in TRAIN_OPTION_NEEDS.items():
            if option in train and train.get(key) != needed:
                raise ConfigError(f"config key 'models.{name}.train.{option}' applies only with {key}: {needed} "
                                  f"(got {key}: {train.get(key, '(default)')}); set {key}: {needed} or remove {option}")


def check_registry_params(config: dict[str, Any], fetched: Iterable[str] = ()) -> None:
    """Construct every configured data set, method and metric, so that a parameter value its entry refuses
    (out of range, not one of its choices) fails now, naming the key, instead of in a job; and check the
    folders of the user's own images, except for the ``fetched`` data sets (their images are read already).

    Imports the registries (and torch): :func:`validate_config` stays cheap for the Snakefile, which runs this
    once before the first job (``onstart``); ``salbench check-config`` runs both.
    """
    from .data import create_dataset
    from .meta_config import check_meta_grid_values
    from .methods import create_method
    from .metrics import create_metric
    from .params import ParamError

    config = validate_config(config)
    entries = [(f"datasets.{n}", create_dataset, s["source"], s["params"]) for n, s in config["datasets"].items()]
    entries += [(f"methods.{n}", create_method, s["method"], s["params"]) for n, s in config["methods"].items()]
    entries += [(f"metrics.{n}", create_metric, s["metric"], s["params"]) for n, s in config["metrics"].items()]
    made = {}
    for key, create, registered, params in entries:
        try:
            made[key] = create(registered, **params)
        except ParamError as err:
            raise ConfigError(f"config key '{key}.params': {err}") from err
    check_meta_grid_values(config)
    fetched = set(fetched)
    for name in config["datasets"]:
        if name not in fetched:
            _check_user_images(config, name, made[f"datasets.{name}"])


def _check_user_images(config: dict[str, Any], name: str, source: Any) -> None:
    """A data set of the user's own images (``image_folder``) needs its folder before its first job and, with
    grids on, ``n*n`` classes in it (the catalog cannot know how many: :func:`_check_grid` leaves it out)."""
    from .data.image_folder import ImageFolder

    if not isinstance(source, ImageFolder):
        return
    error = source.root_error()
    if error:
        raise ConfigError(f"config key 'datasets.{name}.params.root': data set {name!r}: {error}")
    error = grid_class_error(config["grid"]["n"], len(source.classes), name) if grid_enabled(config) else None
    if error:
        raise ConfigError(error)


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
    """Every single-object data set must have at least ``n*n`` classes when grids are on (one of the user's own
    images, whose classes the catalog cannot list, is checked by :func:`check_registry_params`)."""
    if not grid_enabled(config):
        return
    catalog = load_catalog()["datasets"]
    for name, spec in config["datasets"].items():
        entry = catalog[spec["source"]]
        if entry["objects"] == 1 and entry["classes"]:
            error = grid_class_error(config["grid"]["n"], len(entry["classes"]), name)
            if error:
                raise ConfigError(error)


def _check_shards(config: dict[str, Any]) -> None:
    """A data set's ``shard_size`` is a whole number of batches: shards then split the items where the
    unsharded run's batches do, so every batch (and each per-batch seed) holds the same items."""
    batch_size = config["batch_size"]
    for name, spec in config["datasets"].items():
        size = spec.get("shard_size")
        if size is not None and size % batch_size:
            lower = max(batch_size, size - size % batch_size)
            raise ConfigError(f"config key 'datasets.{name}.shard_size': {size} is not a multiple of batch_size "
                              f"({batch_size}); shards must hold whole batches, e.g. {lower} or {lower + batch_size}")


def _check_references(config: dict[str, Any]) -> None:
    """Each published reference names a metric, method and (optional) model of this config."""
    metrics = set(config["metrics"])
    if grid_enabled(config):
        metrics.add(f"grid_localisation_{config['grid']['n']}x{config['grid']['n']}")
    for i, ref in enumerate(config.get("references", [])):
        for field, allowed in (("metric", metrics), ("method", set(config["methods"])), ("model", set(config["models"])),
                               ("dataset", set(config["datasets"]))):
            if field in ref and ref[field] not in allowed:
                raise ConfigError(f"config key 'references.{i}.{field}': {ref[field]!r} is not in this config; "
                                  f"allowed values: {', '.join(sorted(allowed))}")


def training_dataset(config: dict[str, Any], dataset: str) -> str:
    """The data set whose models ``dataset`` is evaluated with (itself unless ``models_from``)."""
    return config["datasets"][dataset].get("models_from", dataset)
