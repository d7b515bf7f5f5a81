"""The meta-evaluation job of one (data set, model): how far to trust each metric, and ranks that survive the
metrics' own settings (config ``meta_evaluation``; rule ``meta_evaluate`` in ``workflow/rules/meta.smk``).

On the first ``items`` eval items it (1) runs the MetaQuantus tests (:mod:`salbench.metrics.meta_evaluation`):
perturbs the model and the inputs, re-runs the listed methods and re-scores every configured metric on the same
maps, and (2) scores the listed methods' clean maps under every setting of each metric's declared grid and ranks
them (:mod:`salbench.report.resilience`). Two checksummed tables: ``meta_evaluation.parquet`` (one row per
metric and perturbation kind, :data:`META_COLUMNS` plus dataset/model) and ``resilience.parquet`` (one row per
metric and method, :data:`RESILIENCE_COLUMNS`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from .jobs import build_method, mask_skips, resolve_device, seed_everything
from .meta_config import grid_settings, setting_label
from .metrics.base import create_metric
from .metrics.meta_evaluation import META_COLUMNS, Problem, Verdict, default_suite, meta_evaluate
from .stats import paired_aggregates
from .report.resilience import RESILIENCE_COLUMNS, resilience_table
from .shards import open_items
from .store import write_table

log = logging.getLogger("salbench")

#: the section's defaults (the schema states the same); levels in [0, 1] pixel units, see meta_evaluation
DEFAULTS: dict[str, Any] = {"items": 16, "iterations": 3, "perturbations": 5, "seed": 0, "sigma_nr": 0.001,
                            "sigma_ar": 0.5, "eps_nr": 0.001, "eps_ar": 1.0, "floor": 0.5, "iac_nr_floor": 0.2,
                            "margin": 0.1}


def meta_evaluate_job(dataset: str, model_name: str, data_path: Path, checkpoint: Path,
                      methods: Mapping[str, Mapping[str, Any]], metrics: Mapping[str, Mapping[str, Any]],
                      settings: Mapping[str, Any], device: str, batch_size: int, out: Path, resilience_out: Path,
                      target_layer: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write both tables for one (data set, model); ``methods`` maps a method id to ``{method, params}``,
    ``metrics`` a metric id to ``{metric, params}``, ``settings`` is the config section (with ``grids``)."""
    from .models import load_checkpoint

    conf = {**DEFAULTS, **settings}
    device = resolve_device(device)
    seed_everything(conf["seed"])
    data, _ = open_items(data_path, (0, conf["items"]))
    model = load_checkpoint(checkpoint, device)
    images = torch.from_numpy(data["image"].values).to(device).float().div_(255)
    masks = torch.from_numpy(data["mask"].values).to(device) if data.attrs.get("has_masks") else None
    built = {mid: build_method(mid, spec["method"], dict(spec.get("params", {})), model, model_name, target_layer)
             for mid, spec in methods.items()}
    instances = {name: create_metric(spec["metric"], **spec.get("params", {})) for name, spec in metrics.items()}
    for name, reason in mask_skips(instances, dataset, data.attrs).items():
        log.warning("metric %s skipped: %s", name, reason)
        del instances[name]
    problem = Problem(model, images, built, instances, masks=masks, batch_size=batch_size)
    suite = default_suite(conf["sigma_nr"], conf["sigma_ar"], conf["eps_nr"], conf["eps_ar"])
    verdict = Verdict(conf["floor"], conf["iac_nr_floor"], conf["margin"])
    rows = meta_evaluate(problem, suite, conf["iterations"], conf["perturbations"], conf["seed"], verdict)
    meta = pd.DataFrame(rows, columns=META_COLUMNS)
    meta.insert(0, "model", model_name)
    meta.insert(0, "dataset", dataset)
    write_table(meta, out, {"seed": conf["seed"], "methods": sorted(methods)})
    resilience = grid_ranks(problem, metrics, conf.get("grids") or {}, dataset, model_name)
    write_table(resilience, resilience_out, {"grids": conf.get("grids") or {}})
    return meta, resilience


def grid_ranks(problem: Problem, metrics: Mapping[str, Mapping[str, Any]], grids: Mapping[str, Mapping[str, list]],
               dataset: str, model_name: str) -> pd.DataFrame:
    """Resilient ranks of the problem's methods under each metric's grid (mean over items per setting, then rank).

    The maps are the clean model's, computed once; each setting builds the metric with the setting over its
    configured params. Metrics without a grid, or skipped for the data set, are left out.
    """
    grids = {name: grid for name, grid in grids.items() if name in problem.metrics}
    if not grids:
        return pd.DataFrame(columns=RESILIENCE_COLUMNS)
    rows, direction = [], {}
    targets = problem.targets.cpu().numpy()
    for name, grid in grids.items():
        spec = metrics[name]
        variants = {setting_label(s): create_metric(spec["metric"], **{**spec.get("params", {}), **s})
                    for s in grid_settings(grid)}
        direction[name] = problem.metrics[name].higher_is_better
        scores = Problem(problem.model, problem.images, problem.methods, variants, masks=problem.masks,
                         batch_size=problem.batch_size).score(problem.model, problem.images)
        for label, values in scores.items():  # values [L, n]
            means = paired_aggregates(values, targets, variants[label].aggregate, np.ones((1, values.shape[1])))[0]
            rows.extend({"dataset": dataset, "model": model_name, "metric": name, "setting": label, "method": mid,
                         "value": float(v)} for mid, v in zip(problem.methods, means))
    return resilience_table(pd.DataFrame(rows), direction)
