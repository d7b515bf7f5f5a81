"""The Python API for notebooks: :func:`explain` and :func:`evaluate`, in the style of ``quantus.evaluate``.

Both run the workflow's own code on in-memory items: the maps come from the saliency job's
:func:`~salbench.jobs.saliency_dataset`, the scores from the score job's :func:`~salbench.jobs.score_items`, the
sanity tables from the sanity job's :func:`~salbench.jobs.model_sanity` and the verdicts from the report's
:func:`~salbench.report.sanity.verdict_table`. For the same model, items and settings the results equal the
workflow's (``tests/test_api.py`` checks it), with the same names and semantics: maps as xarray (``item, y, x``;
attrs as a saliency store's), tables as pandas frames with the columns of the workflow's tables.

Inputs: ``model`` is an ``nn.Module`` returning logits (a salbench model, with its ``spec``, is used as it is; a
bare module is wrapped by :func:`wrap_model`, taking pixel-space inputs in [0, 1] and no layer for CAM methods),
a salbench checkpoint or TorchScript file, or a registered architecture name (its published weights, or a
``checkpoint`` path of trained ones). ``images`` are ``[N,3,H,W]`` uint8 (scaled per batch, as the jobs read the
data stores) or floats in [0, 1], numpy or torch; ``targets`` the classes to explain (``[N]``, or one int).
Methods and metrics are registered names, ``(name, params)`` pairs, ``{"method"|"metric": name, "params": ...}``
dicts (with an optional ``"id"``), or a ``{id: spec}`` dict like a study config's. torch is imported when a
function runs, so ``import salbench`` stays cheap.

>>> import numpy as np, torch
>>> import salbench
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
...                           torch.nn.Flatten(), torch.nn.Linear(4, 3))
>>> images = np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
>>> maps = salbench.explain(net, images, [0, 1, 2, 0], method="gradient", device="cpu")
>>> maps.dims, maps.shape, maps.attrs["method_name"], list(maps["item"].values)
(('item', 'y', 'x'), (4, 16, 16), 'gradient', ['0', '1', '2', '3'])
>>> result = salbench.evaluate(net, images, [0, 1, 2, 0], methods=["gradient", ("smoothgrad", {"n_samples": 4})],
...                            metrics=["sparseness", ("deletion", {"steps": 4})], checks=["input_sensitivity"],
...                            device="cpu")
>>> list(result.scores.columns[:7])
['dataset', 'model', 'method', 'item', 'target', 'metric', 'value']
>>> result.scores.pivot_table(index="method", columns="metric", values="value", aggfunc="count")
metric      deletion  sparseness
method
gradient           4           4
smoothgrad         4           4
>>> sorted(result.maps.data_vars), sorted(set(result.sanity["check"])), sorted(set(result.verdicts["check"]))
(['gradient', 'smoothgrad'], ['input_sensitivity'], ['input_sensitivity'])
>>> salbench.explain(net, images, [0, 1, 2, 0], method="gradcamm")
Traceback (most recent call last):
ValueError: method: unknown method 'gradcamm'; allowed: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

import numpy as np
import pandas as pd
import xarray as xr

from .registry import UnknownNameError

if TYPE_CHECKING:
    from torch import nn

    from .models.base import NormalizedClassifier

#: a method or metric: a registered name, ``(name, params)``, or ``{"method"|"metric": name, "params": {...}}``
#: (with an optional ``"id"``)
Spec = Union[str, tuple, Mapping[str, Any]]
#: the dataset and model names the tables carry when none is given
DATASET, MODEL = "notebook", "model"


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: the workflow's tables and maps for the given items.

    ``scores``: the score job's table (``dataset, model, method, item, target, metric, value``, ``map_finite``,
    ``skipped_metrics``), every method's rows. ``curves``: the curve metrics' per-item curves (the score job's
    curves table). ``sanity``: the sanity job's table (``dataset, model, method, check, statistic, stage,
    stage_index, item, value``). ``verdicts``: the report's sanity verdict table (one row per method and check).
    ``maps``: one variable per method id, each as :func:`explain` returns it. ``config``: the study-config
    sections the run amounts to (``methods``, ``metrics``, ``sanity``, ``seed``).
    """

    scores: pd.DataFrame
    curves: pd.DataFrame
    sanity: pd.DataFrame
    verdicts: pd.DataFrame
    maps: xr.Dataset
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self, n_boot: int = 1000) -> pd.DataFrame:
        """The report's summary table: per (dataset, model, method, metric) the aggregate value (the metric's own
        rule), its bootstrap interval and item counts (:func:`salbench.report.tables.summarise`)."""
        from .jobs import metric_info
        from .report.tables import control_methods, summarise

        if self.scores.empty:
            return summarise(self.scores, {})
        controls = control_methods(self.config, set(self.scores["method"]))
        return summarise(self.scores, metric_info(self.config["metrics"]), controls, n_boot=n_boot,
                         seed=self.config["seed"])


def entries(specs: Spec | Sequence[Spec] | Mapping[str, Any] | None, kind: str) -> dict[str, dict[str, Any]]:
    """Config-style ``{id: {kind: name, "params": {...}}}`` from the API's forms of methods or metrics.

    Each name must be registered: an unknown one is a one-line :class:`ValueError` listing the allowed names.
    """
    if specs is None:
        return {}
    single = isinstance(specs, str) or (isinstance(specs, Mapping) and kind in specs) or (
        isinstance(specs, tuple) and len(specs) == 2 and isinstance(specs[1], Mapping))
    if single:
        items = [(None, specs)]
    elif isinstance(specs, Mapping):  # {id: name | spec}, as a study config holds them
        items = list(specs.items())
    else:
        items = [(None, spec) for spec in specs]
    out: dict[str, dict[str, Any]] = {}
    for given_id, spec in items:
        if isinstance(spec, str):
            name, params, spec_id = spec, {}, None
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], Mapping):
            (name, params), spec_id = spec, None
        elif isinstance(spec, Mapping) and kind in spec:
            name, params, spec_id = spec[kind], spec.get("params") or {}, spec.get("id")
        elif given_id is not None and (spec is None or isinstance(spec, Mapping)):  # a config's ``gradient: {}``
            name, params, spec_id = given_id, (spec or {}).get("params") or {}, None
        else:
            raise ValueError(f"{kind}s: {spec!r} is not a {kind} name, a (name, params) pair or a "
                             f"{{'{kind}': name, 'params': {{...}}}} dict")
        if not isinstance(name, str):
            raise ValueError(f"{kind}s: {name!r} is not a {kind} name")
        lookup(kind, name)
        key = given_id or spec_id or name
        if key in out:
            raise ValueError(f"{kind}s: {key!r} is given twice; name the entries apart with {{'id': ...}} or a "
                             f"{{id: spec}} dict")
        out[key] = {kind: name, "params": dict(params)}
    return out


def lookup(kind: str, name: str) -> Any:
    """The registered ``kind`` ("method", "metric", "check") ``name``; unknown: a one-line ValueError listing the
    allowed names."""
    if kind == "method":
        from .methods import METHODS as found
    elif kind == "metric":
        from .metrics import METRICS as found
    else:
        from .sanity.checks import CHECKS as found
    try:
        return found.get(name)
    except UnknownNameError as err:
        raise ValueError(f"{kind}: {err}") from None


def wrap_model(net: "nn.Module", mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
               target_layer: str | None = None, input_size: int = 224, name: str = MODEL) -> "NormalizedClassifier":
    """A bare ``net`` (logits from normalised inputs) as a salbench model: inputs in [0, 1] are normalised with
    ``mean`` and ``std`` first (the defaults leave them as they are), and ``target_layer`` (a module name in
    ``net``, e.g. ``"layer4"``) is the layer CAM methods read; without it, layer methods are refused with the
    reason. ``input_size`` is recorded only (maps take each image's own size)."""
    from .model_config import user_spec
    from .models.base import NormalizedClassifier
    from .models.user import spec_from_dict

    entry = {"source": "module", "input_size": input_size, "mean": list(mean), "std": list(std),
             "target_layer": f"net.{target_layer}" if target_layer else ""}
    spec = user_spec(name, entry)
    if not target_layer:
        spec["lacks"] = dict.fromkeys(("spatial_feature_maps", "layer_maps"), "no target layer given "
                                      "(salbench.api.wrap_model(net, target_layer=...), e.g. 'layer4')")
    return NormalizedClassifier(net, spec_from_dict(spec))


def load_model(model: "nn.Module | str | Path", device: str, checkpoint: str | Path | None = None,
               argument: str = "model") -> "NormalizedClassifier":
    """The model on ``device`` in eval mode, as the jobs load it (see the module docstring for the forms); errors
    name the ``argument``."""
    from torch import nn

    from .models import load_checkpoint, to_device

    if checkpoint is not None:
        net = load_checkpoint(checkpoint, device)
        if str(model) != net.spec.arch:
            raise ValueError(f"checkpoint {checkpoint} holds a {net.spec.arch!r} model, not {str(model)!r}")
        return net
    if isinstance(model, (str, Path)):
        from .overlays import load_explained_model

        try:
            return to_device(load_explained_model(str(model)).eval(), device)
        except ValueError as err:  # worded for the command line's --model
            raise ValueError(str(err).replace("--model", argument, 1)) from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{argument}: {type(model).__name__} is not a torch nn.Module, a checkpoint path or an "
                         "architecture name")
    net = model if hasattr(model, "spec") else wrap_model(model)
    return to_device(net.eval(), device)


@dataclass(frozen=True)
class Items:
    """The API's items as the jobs read a data store: images (uint8 or float32), int64 targets, ids, masks."""

    images: np.ndarray
    targets: np.ndarray
    ids: np.ndarray
    masks: np.ndarray | None = None

    @classmethod
    def of(cls, images: Any, targets: Any, masks: Any = None, items: Sequence[Any] | None = None) -> "Items":
        """Checked items; a :class:`ValueError` names the argument that does not fit."""
        pixels = _numpy(images)
        if pixels.ndim != 4:
            raise ValueError(f"images: expected [N,C,H,W], got shape {tuple(pixels.shape)}")
        if pixels.dtype != np.uint8:
            if not np.issubdtype(pixels.dtype, np.floating):
                raise ValueError(f"images: expected uint8 or floats in [0, 1], got {pixels.dtype}")
            pixels = pixels.astype(np.float32, copy=False)
            if pixels.size and not (pixels.min() >= 0 and pixels.max() <= 1):
                raise ValueError("images: floats must lie in [0, 1] (pixel space; the model normalises them)")
        n = len(pixels)
        classes = _numpy(targets)
        classes = np.full(n, int(classes), dtype=np.int64) if classes.ndim == 0 else classes.astype(np.int64)
        if classes.shape != (n,):
            raise ValueError(f"targets: expected {n} classes (one per image) or one int, got shape {classes.shape}")
        ids = np.array([str(i) for i in (range(n) if items is None else items)], dtype=object)
        if len(ids) != n or len(set(ids)) != n:
            raise ValueError(f"items: expected {n} distinct ids (one per image), got {len(ids)}")
        if masks is not None:
            masks = _numpy(masks).astype(bool)
            if masks.shape != (n, *pixels.shape[-2:]):
                raise ValueError(f"masks: expected shape {(n, *pixels.shape[-2:])}, got {masks.shape}")
        return cls(np.ascontiguousarray(pixels), classes, ids, masks)

    def first(self, n: int) -> "Items":
        """The first ``n`` items (the sanity job reads the first ``sanity.items``)."""
        return Items(self.images[:n], self.targets[:n], self.ids[:n], None if self.masks is None else self.masks[:n])


def _numpy(values: Any) -> np.ndarray:
    """A CPU numpy array of a torch tensor, a numpy array or a sequence."""
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


@dataclass
class _Run:
    """What every method of one call shares: the model, the items and the run settings."""

    net: Any
    items: Items
    seed: int
    device: str
    batch_size: int
    dataset: str
    model_name: str
    target_layer: str | None

    def method(self, method_id: str, spec: dict[str, Any]) -> Any:
        """The method built as the jobs build it, after seeding everything with the run's seed."""
        from .jobs import build_method, seed_everything

        seed_everything(self.seed)
        return build_method(method_id, spec["method"], spec["params"], self.net, self.model_name, self.target_layer)

    def maps(self, method_id: str, spec: dict[str, Any]) -> xr.DataArray:
        """One method's maps as the saliency job stores them (``saliency`` with the store's attrs)."""
        import torch

        from .jobs import saliency_dataset

        method = self.method(method_id, spec)
        ds = saliency_dataset(self.dataset, self.model_name, method_id, spec["method"], method, self.net,
                              torch.from_numpy(self.items.images), torch.from_numpy(self.items.targets),
                              self.items.ids, self.seed, self.device, self.batch_size, progress=False)
        maps = ds["saliency"]
        maps.attrs = dict(ds.attrs)
        return maps

    def scores(self, method_id: str, spec: dict[str, Any], maps: xr.DataArray, instances: dict[str, Any],
               skipped: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The score and curves tables of one method's maps, as the score job makes them."""
        from .jobs import needs_model, score_items

        method = self.method(method_id, spec) if any(m.needs_method for m in instances.values()) else None
        return score_items(self.dataset, self.model_name, method_id, instances, skipped, self.items.images,
                           maps.values, self.items.targets, self.items.ids, self.items.masks,
                           self.net if needs_model(instances) else None, method, self.batch_size, self.device)

    def sanity(self, method_id: str, spec: dict[str, Any], conf: Any, permuted: Any, checks: list[str]
               ) -> pd.DataFrame:
        """The sanity table of one method on the first ``conf.items`` items, as the sanity job makes it."""
        import torch

        from .jobs import labelled, model_sanity
        from .saliency import pixels

        method = self.method(method_id, spec)
        part = self.items.first(conf.items)
        result = model_sanity(method, self.net, permuted, pixels(torch.from_numpy(part.images)),
                              torch.from_numpy(part.targets), list(part.ids), conf, self.seed, self.batch_size,
                              self.device, checks)
        return labelled(result.table, self.dataset, self.model_name, method_id)


def _run(model: Any, images: Any, targets: Any, masks: Any, items: Sequence[Any] | None, seed: int, device: str,
         batch_size: int, checkpoint: str | Path | None, target_layer: str | None, dataset: str,
         model_name: str | None) -> _Run:
    from .jobs import resolve_device

    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size}; must be at least 1")
    checked = Items.of(images, targets, masks, items)
    device = resolve_device(device)
    net = load_model(model, device, checkpoint)
    return _Run(net, checked, seed, device, batch_size, dataset, model_name or _model_name(model), target_layer)


def _model_name(model: Any) -> str:
    return Path(model).stem if isinstance(model, (str, Path)) else MODEL


def explain(model: Any, images: Any, targets: Any, method: Spec = "gradcam", *, seed: int = 0, device: str = "auto",
            batch_size: int = 16, items: Sequence[Any] | None = None, checkpoint: str | Path | None = None,
            target_layer: str | None = None, dataset: str = DATASET, model_name: str | None = None,
            **params: Any) -> xr.DataArray:
    """One method's maps of ``images`` for ``targets``: dims ``item, y, x`` (float32), coordinates ``item`` (ids,
    default ``"0"``..) and ``target``, attrs as a saliency store's (method, method_name, method_params, citation,
    seed, device, provenance, ...).

    ``method`` is a registered name or spec (see the module docstring); keyword ``params`` are the method's
    parameters (a method parameter named like an argument here, e.g. RISE's ``seed``, goes in a
    ``(name, params)`` spec). ``seed`` seeds everything before the method is built, as the study's ``seed``
    does for the saliency job; ``target_layer`` overrides the CAM layer as the config's does.
    """
    (method_id, spec), = entries(method, "method").items()
    spec["params"] = {**spec["params"], **params}
    return _run(model, images, targets, None, items, seed, device, batch_size, checkpoint, target_layer, dataset,
                model_name).maps(method_id, spec)


def evaluate(model: Any, images: Any, targets: Any, masks: Any = None, methods: Any = ("gradcam",),
             metrics: Any = (), checks: Sequence[str] = (), *, seed: int = 0, device: str = "auto",
             batch_size: int = 16, items: Sequence[Any] | None = None, sanity: Mapping[str, Any] | None = None,
             permuted: Any = None, checkpoint: str | Path | None = None, target_layer: str | None = None,
             dataset: str = DATASET, model_name: str | None = None, n_boot: int = 2000) -> Evaluation:
    """Maps, scores, sanity tables and verdicts of ``methods`` on the items, as a study would compute them.

    ``metrics`` that need ground-truth ``masks`` (``[N,H,W]`` bool) are skipped without them (named in the
    scores' ``skipped_metrics``, as the score job does). ``checks`` are registered model-level sanity check names
    (``salbench list checks``); they run on the first ``sanity["items"]`` items (default 16) with the study
    config's ``sanity`` settings, and ``permuted`` (a model trained on permuted labels, any ``model`` form) for
    the data randomisation check. Verdicts use ``n_boot`` bootstrap resamples seeded by ``seed``, as the report.
    Every name is checked before the model is loaded.
    """
    from .jobs import metric_instances

    method_specs, metric_specs = entries(methods, "method"), entries(metrics, "metric")
    checks = list(checks)
    checked = [lookup("check", name) for name in checks]
    class_checks = [check.name for check in checked if check.objects != 1]
    if class_checks:
        raise ValueError(f"checks: {class_checks[0]!r} is a class check of two-object data sets; evaluate runs the "
                         "model-level checks (run the workflow on a two-object data set for the class checks)")
    instances, skipped = metric_instances(metric_specs, dataset, {"has_masks": masks is not None})
    run = _run(model, images, targets, masks, items, seed, device, batch_size, checkpoint, target_layer, dataset,
               model_name)
    maps: dict[str, xr.DataArray] = {}
    scores, curves, sanity_tables = [], [], []
    conf, settings = _sanity_settings(sanity) if checks else (None, {})
    permuted_net = load_model(permuted, run.device, argument="permuted") if checks and permuted is not None else None
    for method_id, spec in method_specs.items():
        maps[method_id] = run.maps(method_id, spec)
        table, curve = run.scores(method_id, spec, maps[method_id], instances, skipped)
        scores.append(table)
        curves.append(curve)
        if checks:
            sanity_tables.append(run.sanity(method_id, spec, conf, permuted_net, checks))
    config = {"methods": method_specs, "metrics": metric_specs, "sanity": settings, "seed": seed}
    sanity_table = _concat(sanity_tables, _sanity_columns())
    return Evaluation(scores=_concat(scores, list(scores[0].columns) if scores else []), curves=_concat(curves, []),
                      sanity=sanity_table, verdicts=_verdicts(sanity_table, config, checks, n_boot, seed),
                      maps=xr.Dataset(maps), config=config)


def _sanity_settings(sanity: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    from .sanity.run import SanitySettings

    settings = dict(sanity or {})
    return SanitySettings.from_config(settings), settings


def _sanity_columns() -> list[str]:
    from .sanity.run import COLUMNS

    return ["dataset", "model", "method", *COLUMNS]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _verdicts(table: pd.DataFrame, config: dict[str, Any], checks: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    """The report's verdict table of the sanity ``table``, for the ``checks`` asked for."""
    if table.empty:
        return pd.DataFrame()
    from .report.sanity import verdict_table

    verdicts = verdict_table(table, config, n_boot, seed)
    return verdicts[verdicts["check"].isin(checks)].reset_index(drop=True)
