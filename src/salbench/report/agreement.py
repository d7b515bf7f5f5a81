"""Implementation agreement: how far the same method from different libraries agrees, and why not.

A library variant (``gradcam@captum``, :mod:`salbench.methods.variants`) is compared with our method on the
same (dataset, model) item by item:

* **rank correlation**: Spearman's rho between the two flattened maps, as stored (rho is invariant to any
  increasing per-map rescaling, so min-max scaling would not change it);
* **max |difference|**: the largest absolute pixel difference after min-max scaling each map to [0, 1];
* **score difference**: per metric, the variant's mean over items minus ours (items scored by both).

The **cause** of a disagreement is measured, not asserted: the stored maps are compared again after each
subset of alignment steps that undo one kind of difference (:data:`STEPS`), and the steps of the smallest
subset that closes the gap are the cause; the gap is ``max |v - b| / (max b - min b)`` per item (scale
sensitive, so a normalisation difference shows). What no post-processing step explains is named from the
variant's documented differences (``Variant.differences``); :func:`decompose_by_rerun` measures those by
re-running the variant with each subset of its parameter alignments (e.g. guided backprop's channel
reduction), which the report does on a few items where the model checkpoints are given (:func:`rerun_pair`).
The pointing game by TorchRay's protocol and by Quantus' is compared on the score tables, its difference
split into the aggregation (mean over classes vs over items) and the hit rule (tolerance, tied maxima).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from ..stats import min_max, spearman

if TYPE_CHECKING:
    import torch

#: map post-processing shared by both maps before the max |difference| (rho needs none)
POSTPROCESS = "rank correlation on the stored maps; max |difference| after per-map min-max scaling to [0, 1]"
#: a gap (max |difference| relative to our map's range) at most this is agreement
GAP_TOLERANCE = 0.01
#: a set of steps that leaves a gap is named as a (partial) cause only when it closes at least this share of it
MIN_EXPLAINED = 0.5
#: per-pixel tolerance (relative to the map's range) for a block of a map to count as constant
BLOCK_TOLERANCE = 1e-6
#: alignment steps on stored maps, applied in this order
STEPS = ("relu", "sign", "upsampling", "normalisation")
STEP_DESCRIPTIONS = {
    "relu": "negative values of the variant set to 0 (our map has none)",
    "sign": "absolute value of the variant (our map has no negative values)",
    "upsampling": "the variant's nearest-neighbour blocks re-upsampled by our mode (bilinear by default)",
    "normalisation": "both maps min-max scaled to [0, 1]",
}
PAIR_COLUMNS = ["dataset", "model", "base", "variant", "library", "n_items", "rho_median", "rho_q25", "rho_q75",
                "max_abs_diff_median", "gap", "cause", "aligned_gap", "aligned_rho_median", "residual", "rerun_cause",
                "rerun_gap", "documented"]
STEP_COLUMNS = ["dataset", "model", "base", "variant", "steps", "gap", "rho_median"]
SCORE_COLUMNS = ["dataset", "model", "base", "variant", "metric", "base_mean", "variant_mean", "difference", "n_items"]
RERUN_COLUMNS = ["dataset", "model", "base", "variant", "causes", "gap", "rho_median", "n_items"]
#: items re-run per pair by :func:`rerun_decompositions` (the first of the store)
RERUN_ITEMS = 8
PROTOCOL_COLUMNS = ["dataset", "model", "method", "torchray", "quantus", "difference", "aggregation", "hit_rule",
                    "tolerance", "ties", "hit_agreement", "n_items", "cause"]


@dataclass(frozen=True)
class Maps:
    """One method's stored maps on one (dataset, model): item ids, ``[N,H,W]`` maps, registry name and params."""

    dataset: str
    model: str
    method: str
    method_name: str
    params: dict[str, Any]
    items: np.ndarray
    maps: np.ndarray


@dataclass
class Agreement:
    """The tables of the analysis (empty when no variant ran)."""

    pairs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PAIR_COLUMNS))
    steps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_COLUMNS))
    scores: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCORE_COLUMNS))
    protocols: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PROTOCOL_COLUMNS))
    reruns: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RERUN_COLUMNS))

    @property
    def empty(self) -> bool:
        return self.pairs.empty and self.protocols.empty


# ------------------------------------------------------------------------------------------- measures


def _flat(maps: np.ndarray) -> np.ndarray:
    return np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)


def map_rho(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per item Spearman's rho of two ``[N,...]`` map stacks (:func:`salbench.stats.spearman` on the flattened
    maps: average ranks for ties, NaN for a constant map)."""
    return spearman(_flat(a), _flat(b))


def unit_scaled(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to [0, 1] (:func:`salbench.stats.min_max` over its pixels; a constant map becomes 0)."""
    return min_max(_flat(maps)).reshape(np.shape(maps))


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per item max |a - b| after min-max scaling each map to [0, 1]."""
    return np.abs(_flat(unit_scaled(a)) - _flat(unit_scaled(b))).max(axis=1)


def relative_gap(variant: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per item ``max |v - b| / (max b - min b)`` on the maps as given (scale sensitive)."""
    v, b = _flat(variant), _flat(base)
    span = b.max(axis=1) - b.min(axis=1)
    return np.abs(v - b).max(axis=1) / np.where(span > 0, span, 1.0)


def block_size(maps: np.ndarray, tolerance: float = BLOCK_TOLERANCE) -> int:
    """The largest ``s > 1`` such that every map is constant on its ``s x s`` blocks (nearest upsampling by an
    integer factor leaves them); 1 when there is none."""
    n, height, width = np.shape(maps)
    flat = np.asarray(maps, dtype=np.float64)
    span = np.ptp(flat.reshape(n, -1), axis=1).max() if n else 0.0
    for s in sorted((d for d in range(2, min(height, width) + 1) if height % d == 0 and width % d == 0), reverse=True):
        blocks = flat.reshape(n, height // s, s, width // s, s)
        if (np.ptp(blocks, axis=(2, 4)) <= tolerance * max(span, 1e-12)).all():
            return s
    return 1


def upsample_blocks(maps: np.ndarray, s: int, mode: str) -> np.ndarray:
    """Maps constant on ``s x s`` blocks: their block values upsampled back to full size by ``mode``."""
    import torch
    import torch.nn.functional as F

    n, height, width = np.shape(maps)
    grid = torch.from_numpy(np.ascontiguousarray(np.asarray(maps, dtype=np.float64)[:, ::s, ::s]))
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(grid[:, None], size=(height, width), mode=mode, **kwargs)[:, 0].numpy()


# -------------------------------------------------------------------------------------- decomposition


def applicable_steps(base: np.ndarray, variant: np.ndarray) -> list[str]:
    """The alignment steps that could change anything for this pair, in :data:`STEPS` order."""
    steps = []
    if np.nanmin(base) >= 0 and np.nanmin(variant) < 0:
        steps += ["relu", "sign"]
    if block_size(variant) > 1 and block_size(base) == 1:
        steps.append("upsampling")
    steps.append("normalisation")
    return steps


def align(base: np.ndarray, variant: np.ndarray, steps: Iterable[str], base_upsample: str = "bilinear"
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(base, variant)`` after the alignment ``steps`` (applied in :data:`STEPS` order)."""
    steps = set(steps)
    unknown = steps - set(STEPS)
    if unknown:
        raise ValueError(f"unknown alignment steps {sorted(unknown)}; allowed: {', '.join(STEPS)}")
    b, v = np.asarray(base, dtype=np.float64), np.asarray(variant, dtype=np.float64)
    if "relu" in steps:
        v = np.maximum(v, 0.0)
    if "sign" in steps:
        v = np.abs(v)
    if "upsampling" in steps:
        s = block_size(v)
        if s > 1:
            v = upsample_blocks(v, s, base_upsample)
    if "normalisation" in steps:
        b, v = unit_scaled(b), unit_scaled(v)
    return b, v


def decompose(base: np.ndarray, variant: np.ndarray, base_upsample: str = "bilinear",
              tolerance: float = GAP_TOLERANCE) -> tuple[pd.DataFrame, list[str], float]:
    """Measure the gap after every subset of the applicable steps.

    Returns the per-subset table (``steps``, median ``gap``, median ``rho``), the cause (the steps of the
    smallest subset whose gap is within ``tolerance``, or, when none is, that achieves 95 % of the reduction
    of the best subset, provided that closes at least :data:`MIN_EXPLAINED` of the gap; empty when the maps
    already agree or no step explains most of the gap) and the gap left after those steps.
    """
    candidates = applicable_steps(base, variant)
    rows = []
    for k in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, k):
            b, v = align(base, variant, subset, base_upsample)
            rows.append({"steps": "+".join(subset) or "none", "k": k, "gap": float(np.nanmedian(relative_gap(v, b))),
                         "rho_median": float(np.nanmedian(map_rho(v, b)))})
    table = pd.DataFrame(rows)
    best, unaligned = table["gap"].min(), table["gap"].iloc[0]
    # within tolerance, or (when no subset gets there) 95 % of the reduction the best subset achieves
    good = table[table["gap"] <= max(tolerance, best + 0.05 * (unaligned - best))]
    chosen = good.sort_values(["k", "gap"], kind="stable").iloc[0]
    if chosen["gap"] > tolerance and unaligned - chosen["gap"] < MIN_EXPLAINED * unaligned:
        chosen = table.iloc[0]  # no step explains most of the gap: none is named
    cause = [] if chosen["steps"] == "none" else chosen["steps"].split("+")
    return table.drop(columns="k"), cause, float(chosen["gap"])


def decompose_by_rerun(base: Any, variant_cls: type, model: torch.nn.Module, inputs: torch.Tensor,
                       target: torch.Tensor, variant_params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Re-run ``variant_cls`` with every subset of its declared ``alignment`` causes and compare with ``base``.

    ``base`` is our built method. One row per subset: ``causes``, median ``gap`` and ``rho_median`` against our
    maps. The subset that closes the gap names the measured cause among the parameter-level differences.
    """
    from ..methods.variants import aligned_params

    ours = base.attribute(model, inputs, target).detach().cpu().numpy()
    causes = list(variant_cls.alignment)
    rows = []
    for k in range(len(causes) + 1):
        for subset in itertools.combinations(causes, k):
            params = aligned_params(variant_cls, subset, base.params, variant_params)
            if variant_cls.needs_layer:
                params.setdefault("layer", base.params.get("layer"))
            maps = variant_cls(**params).attribute(model, inputs, target).detach().cpu().numpy()
            rows.append({"causes": "+".join(subset) or "none", "gap": float(np.nanmedian(relative_gap(maps, ours))),
                         "rho_median": float(np.nanmedian(map_rho(maps, ours)))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ pairs


def pair_agreement(base: Maps, variant: Maps, documented: dict[str, str] | None = None,
                   tolerance: float = GAP_TOLERANCE) -> tuple[dict[str, Any], pd.DataFrame]:
    """The summary row (see :data:`PAIR_COLUMNS`) and the per-subset step table of one (base, variant) pair."""
    common = np.intersect1d(base.items.astype(str), variant.items.astype(str))
    if common.size == 0:
        raise ValueError(f"{variant.method} and {base.method} on {base.dataset}/{base.model} share no item")
    b = base.maps[_positions(base.items, common)]
    v = variant.maps[_positions(variant.items, common)]
    rho = map_rho(v, b)
    steps, cause, aligned_gap = decompose(b, v, str(base.params.get("upsample", "bilinear")), tolerance)
    aligned = steps[steps["steps"] == ("+".join(cause) or "none")].iloc[0]
    documented = documented or {}
    layers = (base.params.get("layer"), variant.params.get("layer"))
    if "layer" in base.params and "layer" in variant.params and layers[0] != layers[1]:
        documented = {"layer": f"layer {layers[1]} (ours: {layers[0]})", **documented}
    residual = aligned_gap > tolerance
    named = [c for c in documented if c not in cause] if residual else []
    q25, q75 = np.nanpercentile(rho, [25, 75]) if np.isfinite(rho).any() else (np.nan, np.nan)
    row = {
        "dataset": base.dataset, "model": base.model, "base": base.method, "variant": variant.method,
        "library": variant.method_name.partition("@")[2], "n_items": int(common.size),
        "rho_median": float(np.nanmedian(rho)), "rho_q25": float(q25), "rho_q75": float(q75),
        "max_abs_diff_median": float(np.median(max_abs_difference(v, b))),
        "gap": float(steps.loc[steps["steps"] == "none", "gap"].iloc[0]),
        "cause": ", ".join(cause) if cause else ("none" if not residual else ""),
        "aligned_gap": aligned_gap, "aligned_rho_median": float(aligned["rho_median"]),
        "residual": ", ".join(named) if residual else "", "rerun_cause": "", "rerun_gap": np.nan,
        "documented": "; ".join(f"{k}: {text}" for k, text in documented.items()),
    }
    keys = {"dataset": base.dataset, "model": base.model, "base": base.method, "variant": variant.method}
    return row, steps.assign(**keys)[STEP_COLUMNS]


def _positions(items: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    index = {str(item): i for i, item in enumerate(items)}
    return np.array([index[str(w)] for w in wanted], dtype=int)


def score_differences(scores: pd.DataFrame, dataset: str, model: str, base: str, variant: str) -> pd.DataFrame:
    """Per metric: mean over items scored (non-NaN) by both, ours and the variant's, and their difference."""
    keys = ["item", "metric"]
    if scores.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    rows = scores[(scores["dataset"] == dataset) & (scores["model"] == model)]
    b = rows[rows["method"] == base].set_index(keys)["value"]
    v = rows[rows["method"] == variant].set_index(keys)["value"]
    both = pd.concat({"base": b, "variant": v}, axis=1, join="inner").dropna()
    if both.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    means = both.groupby(level="metric").agg(base_mean=("base", "mean"), variant_mean=("variant", "mean"),
                                             n_items=("base", "size")).reset_index()
    means["difference"] = means["variant_mean"] - means["base_mean"]
    means = means.assign(dataset=dataset, model=model, base=base, variant=variant)
    return means[SCORE_COLUMNS]


def protocol_agreement(scores: pd.DataFrame, torchray: str = "pointing_game",
                       quantus: str = "pointing_game_quantus") -> pd.DataFrame:
    """TorchRay's vs Quantus' pointing game per (dataset, model, method), on items both scored.

    ``difference = torchray - quantus`` splits exactly into ``aggregation`` (TorchRay's hits averaged over
    classes minus over items) and ``hit_rule`` (TorchRay's hits minus Quantus', both averaged over items:
    the 15 px tolerance and the tie rule). The cause is the larger part (both when each is over a third).
    """
    from .tables import aggregate

    if scores.empty:
        return pd.DataFrame(columns=PROTOCOL_COLUMNS)
    wanted = scores[scores["metric"].isin([torchray, quantus])]
    rows = []
    for (dataset, model, method), group in wanted.groupby(["dataset", "model", "method"], sort=True):
        wide = group.pivot_table(index=["item", "target"], columns="metric", values="value", aggfunc="first")
        if torchray not in wide or quantus not in wide:
            continue
        wide = wide[[torchray, quantus]].dropna()
        if wide.empty:
            continue
        targets = wide.index.get_level_values("target").to_numpy()
        t_hits, q_hits = wide[torchray].to_numpy(), wide[quantus].to_numpy()
        t_class = aggregate(t_hits, targets, "class_mean")
        t_mean, q_mean = float(t_hits.mean()), float(q_hits.mean())
        parts = {"aggregation": t_class - t_mean, "hit rule": t_mean - q_mean}
        total = abs(parts["aggregation"]) + abs(parts["hit rule"])
        if total == 0:
            cause = "none"
        else:
            cause = ", ".join(k for k, value in parts.items() if abs(value) >= total / 3) or "none"
        rows.append({"dataset": dataset, "model": model, "method": method, "torchray": t_class, "quantus": q_mean,
                     "difference": t_class - q_mean, "aggregation": parts["aggregation"],
                     "hit_rule": parts["hit rule"], "tolerance": np.nan, "ties": np.nan,
                     "hit_agreement": float((t_hits == q_hits).mean()), "n_items": int(len(wide)), "cause": cause})
    return pd.DataFrame(rows, columns=PROTOCOL_COLUMNS)


def split_hit_rule(protocols: pd.DataFrame, scores: pd.DataFrame, stores: Iterable[str | Path],
                   data_stores: dict[str, str | Path], torchray: str = "pointing_game",
                   quantus: str = "pointing_game_quantus") -> pd.DataFrame:
    """``protocols`` with the hit rule split, exactly, into ``tolerance`` and ``ties``, measured on the maps.

    The intermediate protocol, the first maximum with no tolerance, is scored on the stored maps and masks:
    ``tolerance`` = TorchRay's hits minus it, ``ties`` = it minus Quantus' hits (both item means on the items
    both metrics scored); the cause names whichever of aggregation, tolerance and ties carries over a third.
    """
    if protocols.empty:
        return protocols
    import torch

    from ..metrics.localisation import pointing_hits
    from ..store import open_store

    out = protocols.copy()
    paths = {(d, mo, m): Path(p) for p in stores for d, mo, m, _ in [_headers(Path(p))]}
    masks_by_dataset: dict[str, Any] = {}
    for index, row in out.iterrows():
        path, data_path = paths.get((row["dataset"], row["model"], row["method"])), data_stores.get(row["dataset"])
        if path is None or data_path is None:
            continue
        if row["dataset"] not in masks_by_dataset:
            data = open_store(data_path)
            masks_by_dataset[row["dataset"]] = data["mask"] if "mask" in data else None
        masks = masks_by_dataset[row["dataset"]]
        if masks is None:
            continue
        rows = scores[(scores["dataset"] == row["dataset"]) & (scores["model"] == row["model"])
                      & (scores["method"] == row["method"]) & scores["metric"].isin([torchray, quantus])]
        wide = rows.pivot_table(index="item", columns="metric", values="value", aggfunc="first").dropna()
        items = np.asarray([str(i) for i in wide.index], dtype=object)
        maps = open_store(path, verify=False)["saliency"].sel(item=items).values.astype(np.float32)  # verified above
        strict = pointing_hits(torch.from_numpy(np.asarray(maps, dtype=np.float64)),
                               torch.from_numpy(np.asarray(masks.sel(item=items).values)), 0.0).double().numpy()
        t_mean, q_mean, s_mean = wide[torchray].mean(), wide[quantus].mean(), float(np.nanmean(strict))
        parts = {"aggregation": row["aggregation"], "tolerance": t_mean - s_mean, "ties": s_mean - q_mean}
        total = sum(abs(v) for v in parts.values())
        out.loc[index, ["tolerance", "ties"]] = [parts["tolerance"], parts["ties"]]
        out.loc[index, "cause"] = ("none" if total == 0 else
                                   ", ".join(k for k, v in parts.items() if abs(v) >= total / 3) or "none")
    return out


# ------------------------------------------------------------------------------------------ stores


def read_maps(path: str | Path) -> Maps:
    """A maps store's maps with the attrs the analysis needs."""
    from ..store import open_store

    ds = open_store(path)
    params = ds.attrs.get("method_params", {})
    if isinstance(params, str):
        params = json.loads(params)
    return Maps(dataset=str(ds.attrs["dataset"]), model=str(ds.attrs["model"]), method=str(ds.attrs["method"]),
                method_name=str(ds.attrs.get("method_name", ds.attrs["method"])), params=dict(params),
                items=np.asarray([str(i) for i in ds["item"].values]),
                maps=np.asarray(ds["saliency"].values, dtype=np.float64))


def _headers(path: Path) -> tuple[str, str, str, str]:
    from ..store import open_store

    attrs = open_store(path, verify=False).attrs
    return (str(attrs["dataset"]), str(attrs["model"]), str(attrs["method"]),
            str(attrs.get("method_name", attrs["method"])))


def variant_pairs(stores: Iterable[str | Path]) -> list[tuple[Path, Path, str]]:
    """``(base store, variant store, base name)`` for every variant store (registered name ``base@library``) whose
    base ran on its (dataset, model); among several base stores, the one whose config id is the base's name.

    Pairs by name only, so a report without variants never imports the methods (and torch).
    """
    headers = {Path(p): _headers(Path(p)) for p in stores}
    pairs = []
    for path, (dataset, model, method, name) in sorted(headers.items()):
        base_name, at, library = name.partition("@")
        if not at or not library:
            continue
        bases = [(m != base_name, str(p), p) for p, (d, mo, m, n) in headers.items()
                 if d == dataset and mo == model and n == base_name]
        if bases:
            pairs.append((min(bases)[2], path, base_name))
    return pairs


def documented_differences(name: str) -> dict[str, str]:
    """The registered variant ``name``'s documented differences from our method ({} for an unknown name)."""
    from ..methods import METHODS

    return dict(getattr(METHODS.get(name), "differences", {})) if name in METHODS else {}


def rerun_pair(base: Maps, variant: Maps, checkpoint: str | Path, data_store: str | Path,
               n_items: int = RERUN_ITEMS) -> pd.DataFrame:
    """:func:`decompose_by_rerun` of a stored pair on its first ``n_items`` items (CPU, the stores' params)."""
    import torch

    from ..methods import METHODS, create_method
    from ..models import load_checkpoint
    from ..store import open_store

    data = open_store(data_store)
    items = np.asarray([str(i) for i in base.items[:n_items]], dtype=object)
    data = data.sel(item=items)
    inputs = torch.from_numpy(np.asarray(data["image"].values)).float().div_(255)
    target = torch.from_numpy(np.asarray(data["target"].values).astype(np.int64))
    table = decompose_by_rerun(create_method(base.method_name, **base.params), METHODS.get(variant.method_name),
                               load_checkpoint(checkpoint), inputs, target, dict(variant.params))
    keys = {"dataset": base.dataset, "model": base.model, "base": base.method, "variant": variant.method,
            "n_items": len(items)}
    return table.assign(**keys)[RERUN_COLUMNS]


def _rerun_cause(table: pd.DataFrame, tolerance: float) -> tuple[str, float]:
    """The smallest set of re-run alignments that closes the gap, and the gap it leaves ("" and the smallest gap
    when none closes it)."""
    table = table.assign(k=table["causes"].map(lambda c: 0 if c == "none" else len(c.split("+"))))
    closed = table[table["gap"] <= tolerance].sort_values(["k", "gap"], kind="stable")
    if closed.empty:
        return "", float(table["gap"].min())
    best = closed.iloc[0]
    return ("none" if best["causes"] == "none" else best["causes"].replace("+", ", ")), float(best["gap"])


def analyse(stores: Iterable[str | Path], scores: pd.DataFrame, tolerance: float = GAP_TOLERANCE,
            checkpoints: dict[tuple[str, str], str | Path] | None = None,
            data_stores: dict[str, str | Path] | None = None) -> Agreement:
    """The agreement tables for every configured variant and the pointing-game protocols.

    With ``checkpoints`` (by (dataset, model)) and ``data_stores`` (by dataset), variants that declare parameter
    alignments are also re-run on their first :data:`RERUN_ITEMS` items (:func:`rerun_pair`), which measures
    the causes post-processing cannot (channel reduction, quadrature, steps, rules).
    """
    stores = list(stores)
    pair_rows, step_tables, score_tables, reruns = [], [], [], []
    checkpoints, data_stores = checkpoints or {}, data_stores or {}
    for base_path, variant_path, _ in variant_pairs(stores):
        base, variant = read_maps(base_path), read_maps(variant_path)
        row, steps = pair_agreement(base, variant, documented_differences(variant.method_name), tolerance)
        checkpoint, data = checkpoints.get((base.dataset, base.model)), data_stores.get(base.dataset)
        if checkpoint is not None and data is not None and _alignment(variant.method_name):
            rerun = rerun_pair(base, variant, checkpoint, data)
            row["rerun_cause"], row["rerun_gap"] = _rerun_cause(rerun, tolerance)
            reruns.append(rerun)
        pair_rows.append(row)
        step_tables.append(steps)
        score_tables.append(score_differences(scores, base.dataset, base.model, base.method, variant.method))
    protocols = protocol_agreement(scores)
    if data_stores and not protocols.empty:
        protocols = split_hit_rule(protocols, scores, stores, data_stores)
    out = Agreement(protocols=protocols)
    if pair_rows:
        out.pairs = pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)
        out.steps = pd.concat(step_tables, ignore_index=True)
        out.scores = pd.concat(score_tables, ignore_index=True)
    if reruns:
        out.reruns = pd.concat(reruns, ignore_index=True)
    return out


def _alignment(name: str) -> dict[str, dict[str, Any]]:
    from ..methods import METHODS

    return dict(getattr(METHODS.get(name), "alignment", {})) if name in METHODS else {}
