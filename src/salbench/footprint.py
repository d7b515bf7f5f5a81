"""The disk footprint of a study, estimated from its config, and the refusal of one that cannot fit.

A count such as ``datasets.shapes.params.n_eval: 5000000000`` is valid YAML and a valid number, but its
data and maps need petabytes: the run would fill the disk hours in. :func:`check_fits` estimates, from
the validated config alone (cheap: no torch, no data read; the Snakefile calls it at the start of a run
and ``salbench check-config`` prints it), the bytes the study writes under ``resources/`` and
``results/`` and refuses a config whose estimate exceeds the free space of the results folder, naming
the config key that drives most of it. The estimate counts uncompressed array bytes (an upper bound on
the zstd/deflate-compressed stores) per part:

- data: every split of each data set (``resources/datasets``) and its eval items (``data.zarr``),
- maps: one map per eval item for each (model, method) pair a data set runs (twice for a sharded data
  set, whose shards stay beside the gathered store), and the localisation grids,
- sanity: the stored cascade maps of each pair's sanity checks,
- tables: score and curve rows (about :data:`ROW_BYTES` each).
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import grid_enabled, load_catalog, load_schema
from .params import ConfigError

#: bytes a table row takes on disk, about (ids, metric name, value; parquet compresses repeated strings)
ROW_BYTES = 48
#: bytes an item carries besides its arrays (ids, target, flags)
ITEM_OVERHEAD = 64
#: randomised blocks assumed for a sanity cascade when the architecture is not in the catalog (a user model)
DEFAULT_BLOCKS = 20

#: (images, items per image) of a split whose count param is null ("all") or that has none: the published
#: sizes of the downloaded data sets (their split counts are fixed by the files); None: not known beforehand
_FULL_SPLITS: dict[str, dict[str, tuple[int, float] | None]] = {
    "cifar10": {"train": (50000, 1), "val": None, "eval": (10000, 1)},
    "cub200": {"train": (5994, 1), "eval": (5794, 1)},
    "coco2014": {"eval": (40504, 2.9)},
    "voc2007": {"eval": (4952, 1.4)},
    "imagenet_val": {"eval": (50000, 1)},
    "image_folder": {"eval": None},
}
#: image side of sources without an ``image_size`` param
_FIXED_SIZE = {"cifar10": 32}
SPLITS = ("train", "val", "eval")
PARTS = ("data", "maps", "sanity", "tables")


@dataclass
class Footprint:
    """Estimated bytes per part (:data:`PARTS`) and per config key that drives them."""

    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    keys: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, key: str, size: float) -> None:
        self.parts[part] += size
        self.keys[key] = self.keys.get(key, 0.0) + size

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def largest_key(self) -> str:
        return max(self.keys, key=self.keys.__getitem__) if self.keys else "datasets"

    def summary(self) -> str:
        parts = ", ".join(f"{part} {human_bytes(size)}" for part, size in self.parts.items())
        return f"about {human_bytes(self.total)} ({parts})"


def human_bytes(size: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _split_items(source: str, params: dict[str, Any], split: str, objects: int) -> tuple[float, str]:
    """Items of one split and the config key that sets them (the source's for a fixed-size split)."""
    key = f"n_{split}"
    if params.get(key) is not None:
        return float(params[key]) * objects, f"params.{key}"
    full = _FULL_SPLITS.get(source, {}).get(split)
    if full is None:  # no such split (its count param absent) or a size only the files tell
        return 0.0, f"params.{key}"
    images, per_image = full
    return images * per_image * objects, f"params.{key}" if key in params else "source"


def estimate(config: dict[str, Any]) -> Footprint:
    """The footprint of a validated config (see the module doc for what is counted)."""
    catalog = load_catalog()
    footprint = Footprint()
    map_bytes = 2 if config.get("maps_dtype") == "float16" else 4
    sanity = config.get("sanity", {})
    for name, entry in config["datasets"].items():
        source = catalog["datasets"][entry["source"]]
        params = {**source["params"], **entry.get("params", {})}
        side = params.get("image_size", _FIXED_SIZE.get(entry["source"], 224))
        item_bytes = 4 * side * side + ITEM_OVERHEAD  # RGB uint8 image and a bool mask
        counts = {split: _split_items(entry["source"], params, split, source["objects"]) for split in SPLITS}
        for split, (items, key) in counts.items():
            copies = 2 if split == "eval" else 1  # the fetched split file and the data store
            footprint.add("data", f"datasets.{name}.{key}", copies * items * item_bytes)
        eval_items, eval_key = counts["eval"]
        eval_key = f"datasets.{name}.{eval_key}"
        pairs = _pairs(config, name)
        shard_copies = 2 if entry.get("shard_size") else 1
        rows = sum(_rows_per_item(catalog, metric_id, metric) for metric_id, metric in config["metrics"].items())
        for model, _method in pairs:
            footprint.add("maps", eval_key, shard_copies * eval_items * side * side * map_bytes)
            footprint.add("tables", eval_key, shard_copies * eval_items * rows * ROW_BYTES)
            if sanity.get("enabled", True):
                blocks = _blocks(catalog, config["models"][model])
                # the cascade store: the original maps, then every block's stage per randomisation order
                stages = 1 + blocks * len(sanity.get("orders", ["top_down"]))
                stored = min(sanity.get("figure_items", 4), eval_items) * stages * side * side * 4
                footprint.add("sanity", "sanity.figure_items", stored * len(sanity.get("modes", ["cascading"])))
        if grid_enabled(config) and source["objects"] == 1:  # per model: grids of n x n items; a row per cell
            cells = config["grid"].get("n_grids", 100) * config["grid"].get("n", 2) ** 2
            footprint.add("maps", "grid.n_grids", len({model for model, _ in pairs}) * cells * item_bytes)
            footprint.add("tables", "grid.n_grids", len(pairs) * cells * ROW_BYTES)
    return footprint


def _pairs(config: dict[str, Any], dataset: str) -> list[tuple[str, str]]:
    """The (model, method) pairs a data set runs (its selections; methods that skip a model still counted)."""
    entry = config["datasets"][dataset]
    models = entry.get("models", sorted(config["models"]))
    methods = entry.get("methods", sorted(config["methods"]))
    return [(model, method) for model in models for method in methods
            if config["methods"][method].get("models") is None or model in config["methods"][method]["models"]]


def _rows_per_item(catalog: dict[str, Any], metric_id: str, metric: dict[str, Any]) -> int:
    """Score rows per item of one metric: one, plus a curve of ``steps + 1`` points for a curve metric."""
    params = {**catalog["metrics"].get(metric.get("metric", metric_id), {}).get("params", {}),
              **metric.get("params", {})}
    return 1 + (int(params["steps"]) + 1 if "steps" in params else 0)


def _blocks(catalog: dict[str, Any], model: dict[str, Any]) -> int:
    spec = catalog["archs"].get(model.get("arch"), {}).get("spec", {})
    return len(spec.get("extra", {}).get("randomisation_blocks", [])) or DEFAULT_BLOCKS


#: size keys outside the data sets, each with its section in the schema
_SIZE_KEYS = (("grid", "n"), ("grid", "n_grids"), ("sanity", "figure_items"))


def driving_key(config: dict[str, Any], footprint: Footprint) -> str:
    """The size key the user set whose reset to its default shrinks the estimate most (a count, an image size,
    a grid size, a curve's steps); the key of the largest part when every size key is at its default."""
    catalog, schema = load_catalog(), load_schema()["properties"]
    resets = {}
    for name, entry in config["datasets"].items():
        defaults = catalog["datasets"][entry["source"]]["params"]
        for key in ("n_train", "n_val", "n_eval", "image_size"):
            if key in entry.get("params", {}) and key in defaults:
                resets[f"datasets.{name}.params.{key}"] = (("datasets", name, "params", key), defaults[key])
    for name, entry in config["metrics"].items():  # a curve's points per item (score tables)
        defaults = catalog["metrics"].get(entry.get("metric", name), {}).get("params", {})
        if "steps" in entry.get("params", {}) and "steps" in defaults:
            resets[f"metrics.{name}.params.steps"] = (("metrics", name, "params", "steps"), defaults["steps"])
    for section, key in _SIZE_KEYS:
        if key in config.get(section, {}):
            resets[f"{section}.{key}"] = ((section, key), schema[section]["properties"][key]["default"])
    drops = {}
    for dotted, (path, default) in resets.items():
        reset = copy.deepcopy(config)
        *parents, last = path
        node = reset
        for part in parents:
            node = node[part]
        node[last] = default
        drops[dotted] = footprint.total - estimate(reset).total
    best = max(drops, key=drops.__getitem__, default=None)
    return best if best is not None and drops[best] > 0 else footprint.largest_key()


def disk_space(results: Path) -> tuple[int, int, Path]:
    """Free and total bytes of the file system that holds ``results`` (its nearest existing ancestor), and that
    folder."""
    folder = Path(results).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return usage.free, usage.total, folder


def check_fits(config: dict[str, Any], results: str | Path = "results", strict: bool = True) -> str:
    """One line with the estimate and the free space of ``results``, or a :class:`ConfigError` naming the key
    that drives most of the estimate when the study cannot fit: ``strict`` (a run, ``check-config``), in the
    free space; otherwise (planning, ``snakemake -n``), on the whole disk (the line then says it does not fit
    the free space now)."""
    footprint = estimate(config)
    free, total, folder = disk_space(Path(results))
    needs = f"config key {driving_key(config, footprint)!r}: the study needs {footprint.summary()} on disk, more than"
    if strict and footprint.total > free:
        raise ConfigError(f"{needs} the {human_bytes(free)} free in {folder}; lower it or free space")
    if footprint.total > total:
        raise ConfigError(f"{needs} the whole {human_bytes(total)} disk that holds {folder}; lower it")
    line = f"estimated disk footprint {footprint.summary()}; {human_bytes(free)} free in {folder}"
    return line if footprint.total <= free else f"{line}: too little, a run will stop before its first job"
