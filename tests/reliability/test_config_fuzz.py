"""Property-based fuzz of the study config (issue 25): configs mutated at keys drawn from the schema and the
registry catalog are either refused before any job, with one line naming a key, or accepted and then valid
for every job.

A seeded generator (no extra dependency) mutates the tiny workflow study: wrong types, out-of-range and
non-finite numbers, bad seeds, unknown names and keys, names that are not strings or not safe file names,
duplicate keys, empty and non-mapping documents, and valid changes drawn from the schema. Each file goes
through ``salbench check-config`` (what the workflow checks before its first job); a sample of refused and
accepted files also goes through ``snakemake -n``, which must agree.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import math
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from salbench.cli import main
from salbench.config import check_registry_params, load_catalog, load_schema, validate_config
from salbench.train import train_classifier

from .helpers import snakemake
from workflow_runs import TINY  # noqa: E402 (on the path through .helpers)

BASE = yaml.safe_load(TINY.read_text())
SEED = 25
CASES = 240

KeyPath = tuple[Any, ...]


def _schema_leaves(schema: dict[str, Any], path: KeyPath = ()) -> list[tuple[KeyPath, dict[str, Any]]]:
    """(path, subschema) of every scalar or list key the schema describes by name (not the name-keyed sections)."""
    found = []
    for name, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            found += _schema_leaves(sub, (*path, name))
        elif sub.get("type") != "object":
            found.append(((*path, name), sub))
    return found


def _entry_leaves(config: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any]]]:
    """(path, subschema) of the keys of each data set, model, method and metric entry of ``config``, and of
    every parameter of its registered entry (the catalog's default as the subschema's ``default``)."""
    schema, catalog = load_schema()["properties"], load_catalog()
    found = []
    for section in ("datasets", "models", "methods", "metrics"):
        entry_schema = schema[section]["additionalProperties"]
        for name, entry in config[section].items():
            found += _schema_leaves(entry_schema, (section, name))
            found += [((section, name, "train", *p[2:]), s)
                      for p, s in _schema_leaves(entry_schema["properties"].get("train", {}), (section, name))]
            registered = {"datasets": entry.get("source"), "methods": entry.get("method", name),
                          "metrics": entry.get("metric", name)}.get(section)
            for param, default in catalog.get(section, {}).get(registered, {}).get("params", {}).items():
                found.append(((section, name, "params", param), {"default": default}))
    return found


LEAVES = _schema_leaves(load_schema()) + _entry_leaves(BASE)
#: registered names by the key that holds them
NAME_KEYS = {"source", "arch", "method", "metric"}
OTHER_TYPES = ["text", 7, 2.5, True, None, [1, "a"], {"a": 1}]
BAD_NUMBERS = [math.inf, -math.inf, math.nan]
BAD_SEEDS = [-1, -(2**40), 2**32, 2**63]
BAD_IDS = [".", "..", "-x", ".hidden", "a/b", "a b", "", "x" * 101]
DOCUMENTS = ["", "{}\n", "[]\n", "null\n", "3\n", "- a\n- b\n", "just text\n", "[{}]\n", "# only a comment\n"]


def _get(config: Any, path: KeyPath) -> Any:
    for key in path:
        config = config[key]
    return config


def _put(config: dict[str, Any], path: KeyPath, value: Any) -> None:
    """Set the value at ``path``, making the mappings on the way."""
    for key in path[:-1]:
        if not isinstance(config.get(key), dict):
            config[key] = {}
        config = config[key]
    config[path[-1]] = value


def _wrong_type(rng, config, path, schema):
    current = schema.get("default", _get_or_none(config, path))
    value = rng.choice([v for v in OTHER_TYPES if type(v) is not type(current)
                        and not (isinstance(current, float) and type(v) is int)])
    _put(config, path, value)


def _get_or_none(config, path):
    try:
        return _get(config, path)
    except (KeyError, TypeError, IndexError):
        return None


def _out_of_range(rng, config, path, schema):
    if "minimum" in schema or "exclusiveMinimum" in schema:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = low - (1 if "minimum" in schema else 0)
    elif "maximum" in schema or "exclusiveMaximum" in schema:
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = high + (1 if "maximum" in schema else 0)
    else:  # a registry parameter: its entry's own range
        value = rng.choice([-1, 0, -10**9, 10**12])
    if isinstance(schema.get("default"), float) or isinstance(value, float):
        value = float(value)
    _put(config, path, value)


def _non_finite(rng, config, path, schema):
    _put(config, path, rng.choice(BAD_NUMBERS))


def _valid_value(rng, config, path, schema):
    """A value the schema allows at ``path`` (a registry parameter keeps its default)."""
    if "enum" in schema:
        value = rng.choice(schema["enum"])
    elif schema.get("type") == "boolean":
        value = rng.random() < 0.5
    elif schema.get("type") == "integer":
        low = schema.get("minimum", 0)
        value = rng.randint(low, min(schema.get("maximum", low + 3), low + 3))
    elif schema.get("type") == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 1))
        value = low + (high - low) * rng.uniform(0.1, 0.9)
    else:
        value = schema.get("default", _get_or_none(config, path))
    if value is not None:
        _put(config, path, value)


MUTATIONS: dict[str, Callable] = {"wrong type": _wrong_type, "out of range": _out_of_range,
                                  "non-finite": _non_finite, "valid": _valid_value}
#: the kinds of case drawn, "valid" twice: about one case in six is accepted
KINDS = [*MUTATIONS, "valid", "seed", "unknown key", "unknown name", "name not a string", "unsafe id",
         "duplicate key", "document"]


def _numeric(schema: dict[str, Any]) -> bool:
    return schema.get("type") in ("integer", "number") or (
        isinstance(schema.get("default"), (int, float)) and not isinstance(schema.get("default"), bool))


def _schema_of(path: KeyPath) -> dict[str, Any]:
    return next((s for p, s in LEAVES if p == path), {})


def draw(rng: random.Random) -> tuple[str, str, list[KeyPath]]:
    """One fuzz case: (kind, config file text, the key paths it changes)."""
    config = copy.deepcopy(BASE)
    kind = rng.choice(KINDS)
    if kind == "document":
        return kind, rng.choice(DOCUMENTS), [()]
    if kind in MUTATIONS:
        path, schema = rng.choice([(p, s) for p, s in LEAVES if kind in ("wrong type", "valid") or _numeric(s)])
        MUTATIONS[kind](rng, config, path, schema)
    elif kind == "seed":
        path = rng.choice([p for p, _ in LEAVES if p[-1] == "seed"])
        _put(config, path, rng.choice(BAD_SEEDS))
    elif kind == "unknown key":
        mappings = [p[:-1] for p, _ in LEAVES if len(p) > 1] + [()]
        path = (*rng.choice(mappings), "zz_unknown")
        _put(config, path, 1)
    elif kind == "unknown name":
        path = rng.choice([p for p, _ in LEAVES if p[-1] in NAME_KEYS or "enum" in _schema_of(p)])
        _put(config, path, "no_such_name")
    elif kind == "name not a string":
        section = rng.choice(["datasets", "models", "methods", "metrics", "sanity", None])
        name = rng.choice([1, True, None, 2.5])
        node = config if section is None else config[section]
        node[name] = copy.deepcopy(next(iter(node.values()))) if section else 1
        path = (section, name) if section else (name,)
    elif kind == "unsafe id":
        section = rng.choice(["datasets", "models", "methods", "metrics"])
        old = rng.choice(sorted(config[section]))
        entry = config[section].pop(old)
        if section in ("methods", "metrics"):
            entry.setdefault(section[:-1], old)  # the registered name stays
        config[section][rng.choice(BAD_IDS)] = entry
        path = (section,)
    elif kind == "duplicate key":
        lines = yaml.safe_dump(config, sort_keys=False).splitlines()
        candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w@.-]+: \S", line)]
        i = rng.choice(candidates)
        lines.insert(i + 1, lines[i])
        key = lines[i].split(":")[0].strip()
        return kind, "\n".join(lines) + "\n", [(key,)]
    paths = [path]
    if rng.random() < 0.25:  # a second, valid change on top
        path2, schema2 = rng.choice(LEAVES)
        _valid_value(rng, config, path2, schema2)
        paths.append(path2)
    return kind, yaml.safe_dump(config, sort_keys=False), paths


def check_config(path: Path) -> tuple[int, str]:
    """``salbench check-config`` in this process: exit code and standard error (an exception fails the test)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check-config", str(path)])
    return code, err.getvalue().strip()


def _related(named: str, path: KeyPath) -> bool:
    """The named key is the changed key, one above it, one below it, or beside it in the same section (a
    constraint across keys, such as a section that needs at least two methods, names the other key)."""
    changed = ".".join(map(str, path))
    parent = ".".join(map(str, path[:-1]))
    return (named in ("(top level)", changed) or named.startswith(f"{changed}.") or changed.startswith(f"{named}.")
            or (bool(parent) and named.rpartition(".")[0] == parent))


def assert_valid_for_every_job(config: dict[str, Any]) -> None:
    """What each job receives from an accepted config is valid: its params as strict JSON (no NaN, names that are
    strings), every data set, method and metric constructible, every training setting one the trainer takes."""
    validated = validate_config(config)
    assert json.loads(json.dumps(validated, sort_keys=True, allow_nan=False)) == validated
    check_registry_params(validated)
    bind = inspect.signature(train_classifier).bind
    for model in validated["models"].values():
        bind(None, None, None, seed=0, **model["train"])
        permuted = {**model["train"], **validated["sanity"]["data_randomisation"], **model.get("permuted_train", {})}
        bind(None, None, None, seed=0, **permuted, permute_labels=True, augment=False)


#: kinds of change that no valid config holds
ALWAYS_REFUSED = {"non-finite", "seed", "unknown key", "name not a string", "unsafe id", "duplicate key", "document"}


@dataclass
class Case:
    kind: str
    path: Path
    changed: list[KeyPath]
    code: int
    err: str


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    """The fuzz cases, each written to a file and checked with ``salbench check-config``."""
    folder, rng, found = tmp_path_factory.mktemp("fuzz"), random.Random(SEED), []
    for number in range(CASES):
        kind, text, changed = draw(rng)
        path = folder / f"case{number}.yaml"
        path.write_text(text)
        found.append(Case(kind, path, changed, *check_config(path)))
    return found


def test_mutated_configs_are_refused_naming_a_key_or_valid_for_every_job(cases):
    for case in cases:
        if case.code:
            assert case.code == 2 and "\n" not in case.err and case.err.startswith("salbench: "), case
            named = re.search(r"config key '([^']*)'", case.err)
            assert named and any(_related(named.group(1), key) for key in case.changed), case
        else:
            assert case.kind not in ALWAYS_REFUSED, (case, case.path.read_text())
            assert_valid_for_every_job(yaml.safe_load(case.path.read_text()))
    assert {case.kind for case in cases} == set(KINDS)  # every kind drawn
    refused = sum(1 for case in cases if case.code)
    assert refused >= CASES // 2 and CASES - refused >= CASES // 20, refused


@pytest.mark.slow
def test_snakemake_agrees_with_check_config_on_a_sample_of_the_fuzz(cases, tmp_path):
    """A refused file stops a run with the same line before any job (the registry's ranges are checked when the
    run starts, so not by a dry run); an accepted one plans its jobs. (Not the non-mapping documents: Snakemake
    reads the file itself first and refuses those with its own one-line error.)"""
    rng = random.Random(SEED)
    sample = (rng.sample([case for case in cases if case.code and case.kind != "document"], 2)
              + rng.sample([case for case in cases if not case.code], 2))
    with ThreadPoolExecutor(2) as pool:  # mostly start-up: two at a time
        runs = list(pool.map(lambda case: snakemake(tmp_path / case.path.stem, case.path,
                                                    *([] if case.code else ["-n"])), sample))
    for case, result in zip(sample, runs):
        if case.code:
            assert result.returncode != 0 and case.err in result.stderr.splitlines(), (case, result.stderr[-2000:])
            assert not (tmp_path / case.path.stem / "results").exists(), case
        else:
            assert result.returncode == 0, (case, result.stderr[-3000:])
