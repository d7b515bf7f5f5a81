"""One function per pipeline job: load inputs, call the library, write outputs with provenance.

Every Snakemake rule calls one ``salbench`` subcommand, which calls one of these. They are also
usable alone (from Python or the CLI) on files the workflow wrote.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .config import canonical_json
from .provenance import file_sha256, provenance
from .runtime import resolve_device, seed_everything  # re-exported: callers import them from here
from .shards import open_items, store_size
from .store import atomic_path, first_items, object_strings, open_store, write_store, write_table

log = logging.getLogger("salbench")

SCORE_COLUMNS = ["dataset", "model", "method", "item", "target", "metric", "value"]
#: the curves table beside a score table: one row per (item, curve metric, point of the curve); ``fraction`` is
#: the nominal share of pixels perturbed at that point (:meth:`salbench.metrics.faithfulness.CurveMetric.fractions`)
CURVE_DTYPES = {"dataset": object, "model": object, "method": object, "item": object, "target": np.int64,
                "metric": object, "step": np.int64, "fraction": np.float64, "value": np.float64}


def fetch_dataset(source_name: str, params: dict[str, Any], out: Path) -> None:
    """Download-and-verify or generate a data set into ``out`` (atomically)."""
    from .data import create_dataset

    source = create_dataset(source_name, **params)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        source.fetch(tmp)


def prepare_dataset(name: str, source_name: str, params: dict[str, Any], root: Path, out: Path) -> None:
    """Write the eval items of a fetched data set as ``data.zarr``."""
    from .data import create_dataset
    from .data.prepare import prepare_eval_store

    prepare_eval_store(name, create_dataset(source_name, **params), root, out)


def train(source_name: str, dataset_params: dict[str, Any], root: Path, arch: str, train_params: dict[str, Any],
          seed: int, device: str, out: Path, metrics_out: Path) -> dict[str, Any]:
    """Train ``arch`` on the train split of a fetched data set; write checkpoint and metrics JSON.

    The checkpoint holds no timings (they are in the metrics JSON): the same seed gives the same bytes.
    """
    from .data import create_dataset
    from .data.prepare import manifest_sha256
    from .models import build_model, save_checkpoint
    from .train import train_classifier, without_timing

    device = resolve_device(device)
    seed_everything(seed)
    source = create_dataset(source_name, **dataset_params)
    train_items, val_items = source.load(root, "train"), source.load(root, "val")
    model = build_model(arch, num_classes=len(source.classes))
    metrics = train_classifier(model, train_items, val_items, seed=seed, device=device, **train_params,
                               name=Path(out).name.split(".")[0])  # the workflow's {model}.pt, {model}.permuted.pt
    meta = {"num_classes": len(source.classes), "classes": list(source.classes), "seed": seed,
            "train_params": train_params, "data_manifest_sha256": manifest_sha256(root),
            "metrics": without_timing(metrics)}
    sha = save_checkpoint(model.cpu(), out, meta)
    record = {**metrics, "arch": arch, "checkpoint_sha256": sha, "provenance": provenance(device)}
    with atomic_path(metrics_out) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return record


def build_method(method_id: str, method_name: str, method_params: dict[str, Any], model: Any, model_name: str,
                 target_layer: str | None = None) -> Any:
    """The configured method for ``model``: layer methods get the spec's layer for their role (a config's
    ``target_layer`` overrides the CAM layer only); a method that cannot explain the model is an error."""
    from .methods import METHODS, create_method

    params = dict(method_params)
    method_cls = METHODS.get(method_name)
    if method_cls.needs_layer:
        override = target_layer if method_cls.layer_role == "target_layer" else None
        params.setdefault("layer", override or model.spec.layer(method_cls.layer_role))
    method = create_method(method_name, **params)
    reason = method.skip_reason(model.spec)
    if reason:
        raise ValueError(f"method {method_id!r} cannot explain model {model_name!r}: {reason}")
    return method


def saliency(dataset: str, model_name: str, method_id: str, method_name: str, method_params: dict[str, Any],
             data_path: Path, checkpoint: Path, seed: int, device: str, batch_size: int, out: Path,
             target_layer: str | None = None, items: tuple[int, int] | None = None,
             maps_dtype: str = "float32") -> None:
    """Compute one method's maps for every item of a data store, or for its items ``[start, stop)`` (a shard,
    recorded in the ``shard`` attr; see :mod:`salbench.shards`); write ``{method}.zarr``.

    Maps are computed in float32 and stored as ``maps_dtype`` (see :func:`storable_maps`)."""
    from .models import load_checkpoint

    start = time.perf_counter()
    device = resolve_device(device)
    seed_everything(seed)
    data, shard = open_items(data_path, items)
    model = load_checkpoint(checkpoint, device)
    method = build_method(method_id, method_name, method_params, model, model_name, target_layer)
    images = torch.from_numpy(data["image"].values)  # uint8 on the CPU; compute_maps scales per batch
    ds = saliency_dataset(dataset, model_name, method_id, method_name, method, model, images,
                          torch.from_numpy(data["target"].values), data["item"].values, seed, device, batch_size,
                          maps_dtype)
    ds.attrs.update({"checkpoint_sha256": file_sha256(checkpoint),
                     "data_manifest_sha256": data.attrs["manifest_sha256"],
                     "data_store_sha256": data.attrs["content_sha256"], "runtime_s": time.perf_counter() - start,
                     **shard})
    write_store(ds, out)


def saliency_dataset(dataset: str, model_name: str, method_id: str, method_name: str, method: Any, model: Any,
                     images: torch.Tensor, targets: torch.Tensor, items: np.ndarray, seed: int, device: str,
                     batch_size: int, maps_dtype: str = "float32", progress: bool = True) -> xr.Dataset:
    """One method's maps of ``images`` (uint8, or floats in [0, 1]) as a saliency store holds them: ``saliency``
    (item, y, x) with ``item`` and ``target`` coordinates and the attrs of the run (the job adds its files').

    The saliency job and :func:`salbench.api.explain` share it, so a notebook's maps are the workflow's."""
    from .saliency import compute_maps

    compute_start = time.perf_counter()
    maps = compute_maps(method, model, images, targets, batch_size=batch_size, progress=progress, device=device).numpy()
    compute_s = time.perf_counter() - compute_start
    nonfinite = nonfinite_items(maps, items)
    if nonfinite:
        log.warning("method %s gave non-finite values (NaN or Inf) in the maps of %d of %d items: %s", method_id,
                    len(nonfinite), len(targets), ", ".join(nonfinite[:20]) + (" ..." if len(nonfinite) > 20 else ""))
    stored, maps_dtype = storable_maps(maps, maps_dtype, method_id)
    return xr.Dataset(
        {"saliency": (("item", "y", "x"), stored)},
        coords={"item": object_strings(items), "target": ("item", targets.numpy())},
        attrs={"dataset": dataset, "model": model_name, "method": method_id, "method_name": method_name,
               "method_params": method.params, "citation": method.citation, "seed": seed, "device": device,
               "nonfinite_items": nonfinite, "compute_s": compute_s, "provenance": provenance(device),
               "maps_dtype": maps_dtype},
    )


def storable_maps(maps: np.ndarray, dtype: str, method_id: str) -> tuple[np.ndarray, str]:
    """``maps`` (float32) as ``dtype`` for the store, and the dtype used: float16 halves a store but holds
    magnitudes up to 65504 only, so maps beyond that stay float32 (with a warning) rather than turn to Inf."""
    if dtype == "float16":
        finite = np.abs(maps[np.isfinite(maps)])
        largest = float(finite.max()) if finite.size else 0.0
        if largest <= float(np.finfo(np.float16).max):
            return maps.astype(np.float16), dtype
        log.warning("method %s: maps reach %.3g, beyond float16's range; stored as float32", method_id, largest)
    return maps.astype(np.float32), "float32"


def read_maps(maps: xr.Dataset) -> np.ndarray:
    """A maps store's ``saliency`` as float32, whatever dtype it was stored in."""
    return maps["saliency"].values.astype(np.float32, copy=False)


def nonfinite_items(maps: np.ndarray, items: np.ndarray) -> list[str]:
    """Ids of the items whose map (first axis = item) holds a NaN or an Inf."""
    bad = ~np.isfinite(maps.reshape(len(maps), -1)).all(axis=1)
    return [str(i) for i in np.asarray(items)[bad]]


#: score-table column: JSON ``{metric id: reason}`` of the configured metrics the job skipped (same on every row,
#: so it survives the gather of shards; the report lists them in the leaderboard's notes)
SKIPPED_COLUMN = "skipped_metrics"


def mask_skips(instances: dict[str, Any], dataset: str, attrs: dict[str, Any]) -> dict[str, str]:
    """``{metric id: reason}`` of the metrics that need ground-truth masks when the data store has none
    (Imagenette, a user image folder without masks): they are skipped, not an error."""
    if attrs.get("has_masks", True):
        return {}
    return {name: f"data set {dataset!r} has no ground-truth masks, which {metric.name} needs"
            for name, metric in instances.items() if metric.needs_mask}


def score(dataset: str, model_name: str, method_id: str, metrics: dict[str, dict[str, Any]], data_path: Path,
          checkpoint: Path, maps_path: Path, device: str, batch_size: int, out: Path, method_name: str | None = None,
          method_params: dict[str, Any] | None = None, target_layer: str | None = None, seed: int = 0,
          items: tuple[int, int] | None = None, curves_out: Path | None = None) -> pd.DataFrame:
    """Score one method's maps with every configured metric; write a tidy parquet table.

    With ``curves_out``, also write the per-item curves of the curve metrics (deletion, insertion, ROAD: the
    curves their values reduce, from the same model evaluations) as a tidy table (:data:`CURVE_DTYPES`), empty
    when no curve metric is configured. A shard's tables record its item range (attr ``shard``) for the gather.

    With ``items``, only the data store's items ``[start, stop)`` (a shard); the maps store then holds either
    those items (a shard's maps) or every item of the data store.

    Items whose map holds a NaN or an Inf are not scored: every metric's value is NaN and the column
    ``map_finite`` is False for them (the report counts them apart from items a metric cannot score).
    Metrics skipped for the data set (:func:`mask_skips`) get no rows; column ``skipped_metrics`` names them
    with their reason (JSON).

    Metrics that re-run the method (``needs_method``) get it built as the saliency job builds it, from
    ``method_name``, ``method_params`` and ``target_layer``, after seeding everything with ``seed``.
    """
    from .models import load_checkpoint

    device = resolve_device(device)
    data, shard_attrs = open_items(data_path, items)
    # a shard scores its own maps, or its items of the whole data set's maps
    whole_maps = items is not None and store_size(maps_path) != data.sizes["item"]
    maps = open_store(maps_path, items=items if whole_maps else None)
    if list(data["item"].values) != list(maps["item"].values):
        raise ValueError(f"maps store {maps_path} does not hold the items of data store {data_path}")
    instances, skipped = metric_instances(metrics, dataset, data.attrs)
    needs_method = [name for name, m in instances.items() if m.needs_method]
    if needs_method and method_name is None:
        raise ValueError(f"metric {needs_method[0]!r} re-runs the saliency method: score needs its name (--method)")
    model = load_checkpoint(checkpoint, device) if needs_model(instances) else None
    method = None
    if needs_method:
        seed_everything(seed)
        method = build_method(method_id, method_name, method_params or {}, model, model_name, target_layer)
    table, curves = score_items(dataset, model_name, method_id, instances, skipped, data["image"].values,
                                read_maps(maps), data["target"].values, data["item"].values,
                                data["mask"].values if data.attrs.get("has_masks") else None, model, method,
                                batch_size, device)
    write_table(table, out, shard_attrs)
    if curves_out is not None:
        write_table(curves, curves_out, shard_attrs)
    return table


def metric_instances(metrics: dict[str, dict[str, Any]], dataset: str,
                     attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The configured metrics (``{id: {metric, params}}``) built, less those skipped for the data set, and the
    skipped ones' reasons (:func:`mask_skips`, logged)."""
    from .metrics import create_metric

    instances = {name: create_metric(spec["metric"], **spec.get("params", {})) for name, spec in metrics.items()}
    skipped = mask_skips(instances, dataset, attrs)
    for name, reason in skipped.items():
        log.warning("metric %s skipped: %s", name, reason)
        del instances[name]
    return instances, skipped


def needs_model(instances: dict[str, Any]) -> bool:
    """Whether any of the metric ``instances`` runs the model (itself, or through the method it re-runs)."""
    return any(m.needs_model or m.needs_method for m in instances.values())


def score_items(dataset: str, model_name: str, method_id: str, instances: dict[str, Any], skipped: dict[str, str],
                images: np.ndarray, saliency_maps: np.ndarray, targets: np.ndarray, items: np.ndarray,
                masks: np.ndarray | None, model: Any, method: Any, batch_size: int,
                device: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The score table and the curves table (:func:`curve_table`) of one method's ``saliency_maps`` of in-memory
    items: ``images`` uint8 (scaled per batch) or floats in [0, 1]. See :func:`score` for the columns; the score
    job and :func:`salbench.api.evaluate` share it, so a notebook's scores are the workflow's."""
    from .metrics import ScoringBatch
    from .metrics.faithfulness import CurveMetric
    from .saliency import pixels

    values = {name: [] for name in instances}
    curves = {name: [] for name, metric in instances.items() if isinstance(metric, CurveMetric)}
    n = len(saliency_maps)
    finite = np.isfinite(saliency_maps.reshape(n, -1)).all(axis=1)
    if not finite.all():
        log.warning("maps of %d of %d items are not finite (NaN or Inf); they are not scored: %s", int((~finite).sum()),
                    n, ", ".join(nonfinite_items(saliency_maps, items)[:20]))
        saliency_maps = np.where(np.isfinite(saliency_maps), saliency_maps, 0).astype(saliency_maps.dtype)
    for lo in range(0, n, batch_size):
        sl = slice(lo, min(lo + batch_size, n))
        batch = ScoringBatch(
            images=pixels(torch.from_numpy(images[sl]).to(device)),
            maps=torch.from_numpy(saliency_maps[sl]).to(device),
            targets=torch.from_numpy(targets[sl]).to(device),
            masks=torch.from_numpy(masks[sl]).to(device) if masks is not None else None,
            model=model,
            method=method,
        )
        for name, metric in instances.items():
            if name in curves:
                value, curve = metric.score_curves(batch)
                curves[name].append(curve)
            else:
                value = metric.score(batch)
            values[name].append(np.asarray(value, dtype=np.float64))
    frames = [
        pd.DataFrame({"dataset": dataset, "model": model_name, "method": method_id, "item": object_strings(items),
                      "target": np.asarray(targets).astype(np.int64), "metric": name,
                      "value": np.where(finite, np.concatenate(vals), np.nan), "map_finite": finite,
                      SKIPPED_COLUMN: json.dumps(skipped, sort_keys=True)})
        for name, vals in values.items()
    ]
    columns = [*SCORE_COLUMNS, "map_finite", SKIPPED_COLUMN]
    table = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    table.attrs = {}
    by_metric = {name: (instances[name].fractions(), np.concatenate(parts) if parts else
                        np.empty((0, len(instances[name].fractions()))))
                 for name, parts in curves.items()}
    return table, curve_table(dataset, model_name, method_id, items, targets, finite, by_metric)


def curve_table(dataset: str, model_name: str, method_id: str, items: np.ndarray, targets: np.ndarray,
                finite: np.ndarray, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Tidy curves (:data:`CURVE_DTYPES`): per metric ``(fractions [S], curves [N, S])``, metric by metric,
    item-major; NaN for items whose map is not ``finite`` (they are not scored either)."""
    frames = []
    for name, (fractions, values) in curves.items():
        n, steps = values.shape
        frames.append(pd.DataFrame({
            "dataset": dataset, "model": model_name, "method": method_id,
            "item": np.repeat(object_strings(items), steps),
            "target": np.repeat(np.asarray(targets, dtype=np.int64), steps), "metric": name,
            "step": np.tile(np.arange(steps, dtype=np.int64), n), "fraction": np.tile(fractions, n),
            "value": np.where(np.repeat(finite, steps), values.reshape(-1), np.nan)}))
    table = (pd.concat(frames, ignore_index=True) if frames else
             pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in CURVE_DTYPES.items()}))
    table = table[list(CURVE_DTYPES)].astype(CURVE_DTYPES)
    table.attrs = {}
    return table


def sanity(dataset: str, model_name: str, method_id: str, method_name: str, method_params: dict[str, Any],
           data_path: Path, checkpoint: Path, settings: dict[str, Any], seed: int, device: str, batch_size: int,
           out: Path, maps_out: Path | None = None, permuted_checkpoint: Path | None = None,
           maps_path: Path | None = None, target_layer: str | None = None) -> pd.DataFrame:
    """Run every sanity check that applies to the data set for one method on one model; write a tidy table.

    A data store with two items per image (``objects == 2``) gets the class checks and needs the method's
    ``maps_path``; otherwise the model checks run and ``maps_out`` receives the cascade's maps of the first
    ``figure_items`` items (dims ``stage, item, y, x``) for the report's figure.
    """
    from .models import load_checkpoint
    from .sanity.run import SanitySettings, class_checks

    start = time.perf_counter()
    device = resolve_device(device)
    seed_everything(seed)
    conf = SanitySettings.from_config(settings)
    data = first_items(data_path, conf.items)
    model = load_checkpoint(checkpoint, device)
    method = build_method(method_id, method_name, method_params, model, model_name, target_layer)
    n = min(conf.items, data.sizes["item"])
    items = object_strings(data["item"].values[:n])
    images = torch.from_numpy(data["image"].values[:n]).float().div_(255)
    targets = torch.from_numpy(data["target"].values[:n])
    if int(data.attrs.get("objects", 1)) == 2:
        if maps_path is None:
            raise ValueError("the class checks need the method's maps of the two-object data set (--maps)")
        maps = first_items(maps_path, n)
        if list(maps["item"].values[:n]) != list(data["item"].values[:n]):
            raise ValueError(f"maps store {maps_path} does not hold the items of data store {data_path}")
        table = class_checks(method, model, images, targets, torch.from_numpy(read_maps(maps.isel(item=slice(0, n)))),
                             torch.from_numpy(data["mask"].values[:n]), items,
                             object_strings(data["image_id"].values[:n]), len(data.attrs["classes"]), conf,
                             seed, batch_size, device)
    else:
        permuted = load_checkpoint(permuted_checkpoint, device) if permuted_checkpoint else None
        result = model_sanity(method, model, permuted, images, targets, items, conf, seed, batch_size, device)
        table = result.table
        if maps_out is not None:
            keep = min(conf.figure_items, n)
            ds = xr.Dataset(
                {"saliency": (("stage", "item", "y", "x"), result.cascade[:, :keep].numpy().astype(np.float32))},
                coords={"stage": object_strings(result.stages), "item": items[:keep],
                        "target": ("item", targets[:keep].numpy())},
                attrs={"dataset": dataset, "model": model_name, "method": method_id, "method_name": method_name,
                       "method_params": method.params, "seed": seed, "settings": settings,
                       "permuted_train_accuracy": (permuted.meta.get("metrics", {}).get("final_train_accuracy")
                                                   if permuted is not None else None),
                       "checkpoint_sha256": file_sha256(checkpoint), "device": device,
                       "runtime_s": time.perf_counter() - start, "provenance": provenance(device)},
            )
            write_store(ds, maps_out)
    table = labelled(table, dataset, model_name, method_id)
    write_table(table, out)
    return table


def model_sanity(method: Any, model: Any, permuted: Any, images: torch.Tensor, targets: torch.Tensor,
                 items: list[str], conf: Any, seed: int, batch_size: int, device: str,
                 checks: list[str] | None = None) -> Any:
    """The model-level checks (:func:`salbench.sanity.run.model_checks`, all or ``checks``) with the model's
    randomisation blocks when ``conf.granularity`` is ``block``; shared by the sanity job and the Python API."""
    from .sanity.run import model_checks

    blocks = model.spec.extra.get("randomisation_blocks") if conf.granularity == "block" else None
    return model_checks(method, model, permuted, images, targets, items, conf, seed, blocks, batch_size, device, checks)


def labelled(table: pd.DataFrame, dataset: str, model_name: str, method_id: str) -> pd.DataFrame:
    """A table with leading ``dataset``, ``model`` and ``method`` columns (in place), without attrs."""
    table.insert(0, "method", method_id)
    table.insert(0, "model", model_name)
    table.insert(0, "dataset", dataset)
    table.attrs = {}
    return table


def metric_info(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Aggregation rule, direction and description of each configured metric (for the report)."""
    from .metrics import METRICS

    info = {}
    for name, spec in metrics.items():
        cls = METRICS.get(spec["metric"])
        info[name] = {"aggregate": cls.aggregate, "higher_is_better": cls.higher_is_better,
                      "description": METRICS.description(spec["metric"]), "params": canonical_json(spec.get("params", {}))}
    return info


def build_grid(dataset: str, model_name: str, data_path: Path, checkpoint: Path, settings: dict[str, Any],
               device: str, batch_size: int, out: Path) -> xr.Dataset:
    """Build the grid-localisation grids of one (data set, model) (see :mod:`salbench.grid`); write ``grid.zarr``.

    Each item of the store is one grid (numbered 0..G-1): ``image`` (item, channel, y, x) uint8 as the model
    sees it and, per cell (row-major), ``source_index`` (into the data store), ``cell_target``, ``cell_logit``
    and ``cell_probability``; attrs record the settings, the seed and the source item ids per grid. With
    ``allow_empty``, a model with too few confident classes gets zero grids and the reason in ``empty_reason``.
    """
    from .config import grid_class_error
    from .grid import GridSettings, build_grids, resizes_grids
    from .models import load_checkpoint

    start = time.perf_counter()
    device = resolve_device(device)
    conf = GridSettings.from_config(settings)
    data = open_store(data_path)
    if int(data.attrs.get("objects", 1)) != 1:
        raise ValueError(f"grid localisation needs a single-object data set; {dataset!r} has "
                         f"{data.attrs['objects']} objects per image")
    error = grid_class_error(conf.n, len(data.attrs["classes"]), dataset)
    if error:
        raise ValueError(error)
    model = load_checkpoint(checkpoint, device)
    images = torch.from_numpy(data["image"].values)
    grids = build_grids(model, model.spec, images, torch.from_numpy(data["target"].values), conf, batch_size, device)
    if grids.reason:
        log.warning("no grids: %s", grids.reason)
    elif len(grids.items) < conf.n_grids:
        log.warning("built %d of %d grids: fewer than %d classes have confident items left", len(grids.items),
                    conf.n_grids, conf.cells)
    source = [str(i) for i in data["item"].values]
    cells = ("item", "cell")
    ds = xr.Dataset(
        {
            "image": (("item", "channel", "y", "x"), grids.images.numpy()),
            "source_index": (cells, grids.items), "cell_target": (cells, grids.targets),
            "cell_logit": (cells, grids.logits.astype(np.float64)),
            "cell_probability": (cells, grids.probabilities.astype(np.float64)),
        },
        coords={"item": np.arange(len(grids.items), dtype=np.int64), "cell": np.arange(conf.cells, dtype=np.int64)},
        attrs={
            "dataset": dataset, "model": model_name, "n": conf.n, "n_grids": conf.n_grids,
            "n_grids_built": len(grids.items), "min_probability": conf.min_probability, "seed": conf.seed,
            "resize": resizes_grids(model.spec, conf), "allow_empty": conf.allow_empty, "empty_reason": grids.reason,
            "probability": model.spec.probability, "metric": conf.metric, "chance": conf.chance,
            "source_item_ids": [[source[i] for i in row] for row in grids.items.tolist()],
            "source_items": len(source), "confident_per_class": {str(k): v for k, v in grids.confident.items()},
            "source_image_size": list(images.shape[-2:]), "classes": list(data.attrs["classes"]),
            "checkpoint_sha256": file_sha256(checkpoint), "data_manifest_sha256": data.attrs["manifest_sha256"],
            "data_store_sha256": data.attrs["content_sha256"], "device": device,
            "runtime_s": time.perf_counter() - start, "provenance": provenance(device),
        },
    )
    write_store(ds, out)
    return ds


def grid_score(dataset: str, model_name: str, method_id: str, method_name: str, method_params: dict[str, Any],
               grid_path: Path, checkpoint: Path, seed: int, device: str, batch_size: int, out: Path,
               target_layer: str | None = None, maps_out: Path | None = None, keep: int | None = None
               ) -> pd.DataFrame:
    """Score one method on the grids of ``grid.zarr``; write a tidy table like ``score``'s, one row per
    (grid, cell) with the metric ``grid_localisation_{n}x{n}``, plus the grid, cell and source item.

    With ``maps_out``, also write the maps scored on the first ``keep`` grids (default
    :data:`salbench.grid.KEPT_GRIDS`) as a store: ``saliency`` (item = grid, cell, y, x) float32, cell ``k``'s
    map explaining cell ``k``'s class, beside ``cell_target``, ``score`` (the table's values) and the grids'
    ``image`` (the report's grid examples read nothing else)."""
    from .grid import KEPT_GRIDS, GridSettings, cell_ids, score_and_keep
    from .models import load_checkpoint

    start = time.perf_counter()
    device = resolve_device(device)
    seed_everything(seed)
    grids = open_store(grid_path)
    model = load_checkpoint(checkpoint, device)
    method = build_method(method_id, method_name, method_params, model, model_name, target_layer)
    n = int(grids.attrs["n"])
    targets = grids["cell_target"].values
    keep = KEPT_GRIDS if keep is None else keep
    values, maps = score_and_keep(method, model, torch.from_numpy(grids["image"].values), targets, batch_size,
                                  device, keep=keep if maps_out is not None else 0, progress=True)
    numbers = grids["item"].values.astype(np.int64)
    table = pd.DataFrame({
        "dataset": dataset, "model": model_name, "method": method_id, "item": cell_ids(numbers, n),
        "target": targets.ravel().astype(np.int64), "metric": GridSettings(n=n).metric,
        "value": values.ravel().astype(np.float64), "grid": np.repeat(numbers, n * n),
        "cell": np.tile(np.arange(n * n, dtype=np.int64), len(numbers)),
        "source_item": [i for row in grids.attrs["source_item_ids"] for i in row],
    })
    table.attrs = {}
    if maps_out is not None:
        shown = len(maps)
        cells = ("item", "cell")
        write_store(xr.Dataset(
            {"saliency": ((*cells, "y", "x"), maps), "cell_target": (cells, targets[:shown].astype(np.int64)),
             "score": (cells, values[:shown].astype(np.float64)),
             "image": (("item", "channel", "y", "x"), grids["image"].values[:shown])},
            coords={"item": numbers[:shown], "cell": np.arange(n * n, dtype=np.int64)},
            attrs={"dataset": dataset, "model": model_name, "method": method_id, "method_name": method_name,
                   "method_params": method.params, "n": n, "metric": GridSettings(n=n).metric,
                   "kept_grids": keep, "n_grids_built": len(numbers), "classes": list(grids.attrs["classes"]),
                   "empty_reason": grids.attrs.get("empty_reason", ""),
                   "source_item_ids": grids.attrs["source_item_ids"][:shown],
                   "grid_store_sha256": grids.attrs["content_sha256"], "seed": seed, "device": device,
                   "runtime_s": time.perf_counter() - start, "provenance": provenance(device)},
        ), maps_out, item_chunk=max(shown, 1))
    write_table(table, out)
    return table
