"""Cost and agreement of the model-parameter randomisation check: against its compute floor and ``quantus.MPRT``.

On the embedded default's CNN (``small_cnn``, random weights, 64 px RGB, one torch thread):

(a) **Cascade vs floor.** Each cascade (cascading mode, the model spec's randomisation blocks, as the
    pipeline runs it: :func:`~salbench.sanity.randomisation.stage_maps`, stage models built inside) is timed
    against the bare forward and backward passes it must do, on stage models and inputs built beforehand:
    one forward and one backward to the input per stage for ``gradient`` and ``guided_backprop`` (whose
    backward differs only in the ReLUs passing back positive gradients: a tensor hook per ReLU output), to
    the target layer's activation for ``gradcam``, and for ``integrated_gradients`` (8 steps) the same rows
    in the same chunks as the method.
    ``ratio_floor`` = floor / ours, target >= 0.9; each timed sample repeats the call to last at least
    0.5 CPU s (a 16-item cascade of the gradient takes about 0.15 s).

(b) **Ours vs quantus.MPRT.** The whole randomisation check of a method: ours is one cascade
    (every layer its own stage, as Quantus randomises them) whose maps are shared by all five similarity
    measures (:func:`~salbench.sanity.randomisation.stage_similarities`); Quantus is one ``MPRT`` call per
    measure, as a Quantus user gets per-layer scores for several measures (``layer_order="top_down"``, a
    callable ``explain_func`` wrapping our method). The original maps are computed once per method and
    passed as ``a_batch`` to every call (the cheapest way to use it; each call still recomputes them once
    and every randomised stage). Each measure is configured to compute what ours does, the preprocessing
    in ``normalise_func`` (numpy, per item, float64) and the comparison in ``similarity_func``:

    - ``spearman_abs``: ``|map|`` clipped at its 99th percentile / that percentile, Quantus'
      ``correlation_spearman``;
    - ``spearman_signed``: map / 99th percentile of ``|map|``, clipped to [-1, 1], ``correlation_spearman``;
    - ``ssim``: min-max maps, ``skimage.metrics.structural_similarity(gaussian_weights=True, data_range=1)``
      on the 2-D maps (Quantus' own ``similarity_func.ssim`` would compare the flattened maps as 1-D
      signals with a 7-sample uniform window and the pair's joint range, a different protocol, and MPRT
      cannot use it: it returns a list where MPRT calls ``.tolist()``; the JSON records the error);
    - ``hog_spearman``: min-max maps, ``skimage.feature.hog`` (3 px cells at 64 px, 3x3-cell blocks,
      L2-Hys) and ``scipy.stats.spearmanr`` of the features;
    - ``topk_intersection``: shared share of the top 10 % pixels by ``|map|`` (Quantus has no such function).

    Calls alternate over ``--rounds`` rounds after one warm-up each; ``ratio_quantus`` = Quantus / ours,
    medians over rounds of paired process CPU seconds (target >= 5). What our similarities alone cost, per
    measure, is timed once (``similarity_cpu_s``): on this small CNN they, not the maps, dominate our time.

(c) **Same correlations.** Quantus re-initialises every layer with ``reset_parameters()`` after
    ``torch.manual_seed(seed + 1)``, the same seed for every layer; ours draws each layer from its own seed
    (:func:`~salbench.sanity.randomisation.layer_seed`). With ``layer_seed`` monkeypatched to
    ``seed + 1`` (our draw is the same ``reset_parameters()`` on the CPU generator), both protocols build
    the same stages: the benchmark checks that every stage's parameters and buffers are equal, then compares
    each per-layer, per-item score of Quantus' calls in (b) with ours (max absolute difference; for the
    top-k intersection also without the (stage, item) pairs whose maps tie at the k-th largest value, where
    torch's ``topk`` and numpy's ``argpartition`` may pick different pixels). Our own
    seeds give other re-initialisations; how far those scores are from Quantus' is reported too
    (``max_diff_own_seeds``), as a scale for the agreement.

    .venv/bin/python benchmarks/sanity.py [--items 16] [--rounds 2] [--floor-rounds 8] [--threads 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-sanity.json``.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import numpy as np
import quantus
import scipy.stats
import skimage.feature
import skimage.metrics
import torch
from methods import seconds, write_results  # the gradient-method benchmark's timing
from perturbation import timed  # alternating rounds after a warm-up: (wall, CPU) seconds per call
from quantus.helpers.model.pytorch_model import PyTorchModel
from torch import nn

from salbench.allocator import keep_freed_memory
from salbench.methods import create_method
from salbench.methods.base import Method
from salbench.models import build_model, to_device
from salbench.sanity import randomisation
from salbench.sanity.randomisation import randomised_stages, stage_maps, stage_similarities
from salbench.sanity.similarity import CLIP_PERCENTILE, MEASURES, Similarity, hog_cell_size

SIZE, CLASSES, SEED, QUANTUS_SEED = 64, 6, 0, 42
IG_STEPS = 8
#: (a): the cascades timed against their floor
FLOOR_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("gradient", {}), ("gradcam", {}), ("guided_backprop", {}), ("integrated_gradients", {"n_steps": IG_STEPS}),
]
#: (b), (c): the default methods' randomisation check
CHECK_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("gradient", {}), ("gradcam", {}), ("guided_backprop", {}), ("input_x_gradient", {}),
    ("integrated_gradients", {"n_steps": IG_STEPS}), ("sobel", {}),
]


def make_method(name: str, params: dict[str, Any], model: nn.Module) -> Method:
    """The registered method, at the model spec's target layer where it needs one."""
    method = create_method(name, **params)
    if getattr(method, "needs_layer", False) and method.params.get("layer") is None:
        method = create_method(name, **params, layer=model.spec.target_layer)
    return method


# ---------------------------------------------------------------------------------------------- (a) floors


def guided_relus(stage: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Guided backprop's only change to the backward pass: each ReLU passes back only positive gradients."""
    def clamp_gradient(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        output.register_hook(lambda grad: grad.clamp(min=0))
    return [m.register_forward_hook(clamp_gradient) for m in stage.modules() if isinstance(m, nn.ReLU)]


def input_passes(stages: list[nn.Module], rows: torch.Tensor, targets: torch.Tensor, chunk: int,
                 guided: bool = False) -> Callable[[], None]:
    """Per stage and chunk of ``rows``: one forward and one backward of the target logits to the input."""
    def run() -> None:
        for stage in stages:
            handles = guided_relus(stage) if guided else []
            try:
                for start in range(0, rows.shape[0], chunk):
                    leaf = rows[start:start + chunk].detach().requires_grad_()
                    logits = stage(leaf)
                    torch.autograd.grad(logits.gather(1, targets[start:start + chunk, None]).sum(), leaf)
            finally:
                for handle in handles:
                    handle.remove()
    return run


def layer_passes(stages: list[nn.Module], x: torch.Tensor, targets: torch.Tensor, layer: str) -> Callable[[], None]:
    """Per stage: one forward and one backward of the target logits to ``layer``'s activation."""
    def run() -> None:
        for stage in stages:
            kept: list[torch.Tensor] = []
            handle = stage.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.append(o))
            try:
                with torch.enable_grad():
                    logits = stage(x)
            finally:
                handle.remove()
            torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), kept[0])
    return run


def floor(method: Method, stages: list[nn.Module], x: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    """The bare passes ``method``'s cascade must do, on inputs built here (black-baseline IG rows item-major)."""
    if method.name == "gradcam":
        return layer_passes(stages, x, targets, method.params["layer"])
    if method.name == "integrated_gradients":
        steps = method.params["n_steps"]
        alphas = torch.arange(1, steps + 1, dtype=x.dtype) / steps  # right Riemann sum from black
        rows = x.repeat_interleave(steps, 0) * alphas.repeat(x.shape[0]).view(-1, 1, 1, 1)
        return input_passes(stages, rows, targets.repeat_interleave(steps), method.params["internal_batch_size"])
    return input_passes(stages, x, targets, x.shape[0], guided=method.name == "guided_backprop")


def paired(spent: dict[str, list[float]], key: str, over: str = "ours") -> float:
    """Median over rounds of ``spent[key] / spent[over]`` in the same round."""
    return statistics.median(k / o for k, o in zip(spent[key], spent[over]))


def repeated(calls: dict[str, Callable[[], Any]], least: float = 0.5) -> dict[str, Callable[[], Any]]:
    """Each call repeated enough times to take ``least`` CPU seconds (from one trial of the slowest), so a
    short cascade's timing is not dominated by the scheduler's noise."""
    reps = max(1, math.ceil(least / max(seconds(call)[1] for call in calls.values())))
    return {key: (lambda call=call: [call() for _ in range(reps)]) for key, call in calls.items()}


def bench_floor(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, rounds: int) -> list[dict[str, Any]]:
    """(a): each cascade (the spec's blocks) against its floor on pre-built stages."""
    blocks = model.spec.extra["randomisation_blocks"]
    stages = [copy.deepcopy(stage) for _, stage in randomised_stages(model, SEED, blocks=blocks)]  # kept past each step
    rows = []
    for name, params in FLOOR_METHODS:
        method = make_method(name, params, model)
        calls = repeated({"ours": lambda: stage_maps(method, model, x, targets, SEED, batch_size=len(x), blocks=blocks),
                          "floor": floor(method, stages, x, targets)})
        wall, cpu = timed(calls, rounds)
        rows.append({"method": name, "params": method.params, "stages": len(stages), "items": len(x),
                     "ours_cpu_s": cpu["ours"], "floor_cpu_s": cpu["floor"], "ours_wall_s": wall["ours"],
                     "floor_wall_s": wall["floor"], "ratio_floor": paired(cpu, "floor"),
                     "ratio_floor_wall": paired(wall, "floor")})
        print(f"(a) {name:22s} stages {len(stages)}  ours {statistics.median(cpu['ours']):7.3f} s  "
              f"floor {statistics.median(cpu['floor']):7.3f} s  floor/ours {rows[-1]['ratio_floor']:.3f}", flush=True)
    return rows


# ------------------------------------------------------------------------- (b) a Quantus user's configuration


def _scaled(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``values [N,L] / scale [N]``, rows of zero scale mapped to zero."""
    scale = scale[:, None]
    return np.divide(values, scale, out=np.zeros_like(values), where=scale > 0)


def clip_abs(a: np.ndarray) -> np.ndarray:
    """Adebayo et al.'s absolute preprocessing: ``|map|`` clipped at its 99th percentile, divided by it."""
    values = np.abs(a.reshape(len(a), -1).astype(np.float64))
    top = np.percentile(values, CLIP_PERCENTILE, axis=1)
    return _scaled(np.minimum(values, top[:, None]), top).reshape(a.shape)


def clip_signed(a: np.ndarray) -> np.ndarray:
    """Adebayo et al.'s signed preprocessing: map / 99th percentile of ``|map|``, clipped to [-1, 1]."""
    values = a.reshape(len(a), -1).astype(np.float64)
    return np.clip(_scaled(values, np.percentile(np.abs(values), CLIP_PERCENTILE, axis=1)), -1, 1).reshape(a.shape)


def minmax(a: np.ndarray) -> np.ndarray:
    """Each map min-max scaled to [0, 1] (a constant map becomes zeros)."""
    values = a.reshape(len(a), -1).astype(np.float64)
    low = values.min(axis=1)
    return _scaled(values - low[:, None], values.max(axis=1) - low).reshape(a.shape)


def _square(row: np.ndarray) -> np.ndarray:
    """A flattened square map back to 2-D (MPRT hands ``similarity_func`` flattened maps)."""
    side = math.isqrt(row.size)
    return row.reshape(side, side)


def ssim_2d(a: np.ndarray, b: np.ndarray, batched: bool = True, **_: Any) -> np.ndarray:
    """scikit-image's Gaussian-window SSIM of each pair of (min-max scaled) maps, as Adebayo et al. compute it."""
    return np.array([skimage.metrics.structural_similarity(_square(x), _square(y), gaussian_weights=True,
                                                           data_range=1.0) for x, y in zip(a, b)])


def hog_spearman(a: np.ndarray, b: np.ndarray, batched: bool = True, **_: Any) -> np.ndarray:
    """Spearman correlation of the scikit-image HOG features of each pair of (min-max scaled) maps."""
    def hog(row: np.ndarray) -> np.ndarray:
        image = _square(row)
        cell = hog_cell_size(*image.shape)
        return skimage.feature.hog(image, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(3, 3),
                                   block_norm="L2-Hys")
    return np.array([scipy.stats.spearmanr(hog(x), hog(y))[0] for x, y in zip(a, b)])


def topk_share(a: np.ndarray, b: np.ndarray, batched: bool = True, fraction: float = 0.1, **_: Any) -> np.ndarray:
    """Share of each map's top ``fraction`` pixels (by value: Quantus passes ``|map|``) also in the other's."""
    k = max(1, round(fraction * a.shape[1]))

    def mask(values: np.ndarray) -> np.ndarray:
        top = np.zeros(values.shape, dtype=bool)
        np.put_along_axis(top, np.argpartition(-values, k - 1, axis=1)[:, :k], True, axis=1)
        return top

    return (mask(a) & mask(b)).sum(axis=1) / k


#: per measure, the MPRT arguments that make Quantus compute what ours does
QUANTUS_MEASURES: dict[str, dict[str, Any]] = {
    "spearman_abs": {"similarity_func": quantus.similarity_func.correlation_spearman, "normalise_func": clip_abs,
                     "abs": False},
    "spearman_signed": {"similarity_func": quantus.similarity_func.correlation_spearman,
                        "normalise_func": clip_signed, "abs": False},
    "ssim": {"similarity_func": ssim_2d, "normalise_func": minmax, "abs": False},
    "hog_spearman": {"similarity_func": hog_spearman, "normalise_func": minmax, "abs": False},
    "topk_intersection": {"similarity_func": topk_share, "normalise": False, "abs": True},
}


def explainer(method: Method) -> Callable[..., np.ndarray]:
    """Quantus' ``explain_func``: our method on numpy inputs and targets, maps ``[B,H,W]`` as numpy."""
    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        maps = method.attribute(model, torch.as_tensor(inputs), torch.as_tensor(targets, dtype=torch.long))
        return maps.detach().cpu().numpy()
    return explain


def quantus_check(method: Method, model: nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, list]]:
    """One ``quantus.MPRT`` call per measure (top-down cascade), the original maps computed once for all calls."""
    explain = explainer(method)
    original = explain(model, x, y)
    scores = {}
    for measure in MEASURES:
        mprt = quantus.MPRT(layer_order="top_down", seed=QUANTUS_SEED, disable_warnings=True,
                            **QUANTUS_MEASURES[measure])
        scores[measure] = mprt(model=model, x_batch=x, y_batch=y, a_batch=original, explain_func=explain,
                               batch_size=len(x))
    return scores


#: our cascade: stage names, maps ``[S,N,H,W]`` and each measure's similarities ``[S,N]``
Check = tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]


def our_check(method: Method, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, seed: int) -> Check:
    """Our randomisation check: one per-layer cascade, its maps shared by every measure."""
    names, maps = stage_maps(method, model, x, targets, seed, batch_size=len(x))
    return names, maps, stage_similarities(maps, Similarity())


def builtin_ssim(method: Method, model: nn.Module, x: np.ndarray, y: np.ndarray) -> str:
    """What ``quantus.MPRT`` does with Quantus' own ``similarity_func.ssim`` (two items)."""
    try:
        quantus.MPRT(similarity_func=quantus.similarity_func.ssim, disable_warnings=True)(
            model=model, x_batch=x[:2], y_batch=y[:2], explain_func=explainer(method))
    except Exception as error:  # noqa: BLE001 - the failure itself is the result
        return f"{type(error).__name__}: {error}"
    return "ran"


def similarity_cost(maps: torch.Tensor) -> dict[str, float]:
    """CPU seconds of one :func:`stage_similarities` call per measure on cascade maps ``[S,N,H,W]``."""
    return {measure: seconds(lambda: stage_similarities(maps, Similarity((measure,))))[1] for measure in MEASURES}


def bench_quantus(model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                  rounds: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(b) and (c): per method, ours against Quantus, then the agreement of their scores.

    Also returns whether both protocols build the same stages, what Quantus' own SSIM does, and what our
    similarities cost per measure (on the first method's maps: every method's maps have the same shape).
    """
    x_np, y_np = x.numpy(), targets.numpy()
    matched = check_same_stages(model)
    print(f"(c) stages equal with layer_seed -> seed + 1: {matched['stages_identical']} "
          f"({len(matched['layers'])} layers)", flush=True)
    matched["quantus_builtin_ssim"] = builtin_ssim(make_method("gradient", {}, model), model, x_np, y_np)
    print(f"    quantus.MPRT with similarity_func.ssim: {matched['quantus_builtin_ssim']}", flush=True)
    rows = []
    for name, params in CHECK_METHODS:
        method = make_method(name, params, model)
        kept: dict[str, Any] = {}
        calls = {"ours": lambda: kept.update(ours=our_check(method, model, x, targets, SEED)),
                 "quantus": lambda: kept.update(quantus=quantus_check(method, model, x_np, y_np))}
        wall, cpu = timed(calls, rounds)
        stages = len(kept["ours"][0])
        row = {"method": name, "params": method.params, "items": len(x), "stages": stages,
               "maps_computed": {"ours": stages, "quantus": 1 + len(MEASURES) * stages},
               "ours_cpu_s": cpu["ours"], "quantus_cpu_s": cpu["quantus"], "ours_wall_s": wall["ours"],
               "quantus_wall_s": wall["quantus"], "ratio_quantus": paired(cpu, "quantus"),
               "ratio_quantus_wall": paired(wall, "quantus")}
        with mock.patch.object(randomisation, "layer_seed", lambda seed, layer: seed + 1):
            same = our_check(method, model, x, targets, QUANTUS_SEED)
        row["agreement"] = {measure: agreement(same, kept["ours"], kept["quantus"][measure], measure)
                            for measure in MEASURES}
        rows.append(row)
        if "similarity_cpu_s" not in matched:
            matched["similarity_cpu_s"] = similarity_cost(kept["ours"][1])
        worst = max(a.get("max_diff_without_ties", a["max_diff"]) for a in row["agreement"].values())
        print(f"(b) {name:22s} ours {statistics.median(cpu['ours']):7.3f} s  quantus "
              f"{statistics.median(cpu['quantus']):7.3f} s  quantus/ours {row['ratio_quantus']:6.2f}  "
              f"(c) max |diff| {worst:.2e} (top-k ties excluded)", flush=True)
    return matched, rows


def check_same_stages(model: nn.Module) -> dict[str, Any]:
    """Whether our per-layer cascade with ``layer_seed`` patched to ``seed + 1`` equals Quantus' stages."""
    theirs = PyTorchModel(model, channel_first=True, softmax=False).get_random_layer_generator("top_down",
                                                                                               QUANTUS_SEED)
    with mock.patch.object(randomisation, "layer_seed", lambda seed, layer: seed + 1):
        ours = randomised_stages(model, QUANTUS_SEED)
        next(ours)  # the original
        pairs = [(a, b, snapshot(m), snapshot(q)) for (a, m), (b, q) in zip(ours, theirs)]
    identical = all(a == b and s.keys() == q.keys() and all(torch.equal(s[k], q[k]) for k in s)
                    for a, b, s, q in pairs)
    return {"stages_identical": identical, "layers": [a for a, *_ in pairs]}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s parameters and buffers (both generators update one model in place)."""
    return {key: value.clone() for key, value in model.state_dict().items()}


def boundary_ties(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[S,N]`` bool: the stage's or the original map's k-th and (k+1)-th largest ``|value|`` tie.

    There the top-k set depends on how ties are broken (torch's ``topk`` and numpy's ``argpartition``
    break them differently), so top-k intersections may differ without either being wrong.
    """
    values = maps.flatten(2).abs().sort(dim=-1, descending=True).values
    k = max(1, round(fraction * values.shape[-1]))
    tied = values[..., k - 1] == values[..., k]
    return tied | tied[:1]


def agreement(same: Check, own: Check, theirs: dict[str, list], measure: str) -> dict[str, Any]:
    """Max |ours - Quantus| over stages and items, with matched re-inits and with our own seeds (NaN = NaN).

    For the top-k intersection, also the count of (stage, item) pairs with a tie at the k-th value and the
    max difference without them.
    """
    names, maps, values = same
    quantus_values = torch.tensor([theirs[name] for name in names], dtype=torch.float64)

    def gap(ours: torch.Tensor) -> torch.Tensor:
        """|ours - Quantus|: 0 where both are NaN, inf where one is."""
        both_nan = ours.isnan() & quantus_values.isnan()
        return (ours - quantus_values).abs().masked_fill(both_nan, 0.0).nan_to_num(nan=math.inf)

    matched = gap(values[measure])
    # other re-inits may leave a map constant (NaN) in one protocol only: those pairs do not measure a scale
    row = {"max_diff": float(matched.max()), "both_nan": int((values[measure].isnan() & quantus_values.isnan()).sum()),
           "max_diff_own_seeds": float(gap(own[2][measure]).nan_to_num(posinf=0.0).max())}
    if measure == "topk_intersection":
        tied = boundary_ties(maps, Similarity().top_k)
        row["ties_at_k"] = int(tied.sum())
        row["max_diff_without_ties"] = float(matched.masked_fill(tied, 0.0).max())
    return row


# ------------------------------------------------------------------------------------------------- output


def print_tables(floors: list[dict[str, Any]], checks: list[dict[str, Any]], similarity: dict[str, float]) -> None:
    print(f"\n(a) cascade vs floor (CPU s, medians; target floor/ours >= 0.9)\n"
          f"{'method':22s} {'stages':>6s} {'ours':>8s} {'floor':>8s} {'floor/ours':>10s} {'(wall)':>7s}")
    for row in floors:
        print(f"{row['method']:22s} {row['stages']:6d} {statistics.median(row['ours_cpu_s']):8.3f} "
              f"{statistics.median(row['floor_cpu_s']):8.3f} {row['ratio_floor']:10.3f} {row['ratio_floor_wall']:7.3f}")
    print(f"\n(b) randomisation check, {len(MEASURES)} measures: one cascade vs one quantus.MPRT per measure "
          f"(CPU s; target quantus/ours >= 5)\n(c) max |ours - Quantus| over stages x items with matched re-inits "
          f"[with our own seeds]\n{'method':22s} {'ours':>7s} {'quantus':>8s} {'q/ours':>7s} {'(wall)':>7s}  "
          + "  ".join(f"{m:>21s}" for m in MEASURES))
    for row in checks:
        cells = "  ".join(f"{a['max_diff']:9.1e} [{a['max_diff_own_seeds']:8.2f}]" for a in row["agreement"].values())
        print(f"{row['method']:22s} {statistics.median(row['ours_cpu_s']):7.3f} "
              f"{statistics.median(row['quantus_cpu_s']):8.3f} {row['ratio_quantus']:7.2f} "
              f"{row['ratio_quantus_wall']:7.2f}  {cells}")
    total = {key: sum(statistics.median(row[f"{key}_cpu_s"]) for row in checks) for key in ("ours", "quantus")}
    print(f"{'all methods':22s} {total['ours']:7.3f} {total['quantus']:8.3f} {total['quantus'] / total['ours']:7.2f}")
    print(f"    ours, similarities alone (one cascade's maps, all measures): {sum(similarity.values()):.3f} s = "
          + ", ".join(f"{measure} {spent:.3f}" for measure, spent in similarity.items()))
    for row in checks:
        topk = row["agreement"]["topk_intersection"]
        if topk["ties_at_k"]:
            print(f"    {row['method']}: top-k intersection differs only where a map ties at the k-th value: "
                  f"{topk['ties_at_k']} (stage, item) pairs; max |diff| without them "
                  f"{topk['max_diff_without_ties']:.1e}")


def small_cnn_case(items: int, threads: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The sanity benchmarks' case, set up as a job would: an untrained small CNN loaded channels-last on the CPU,
    ``items`` seeded random images and cycling targets; ``threads`` torch threads and the job's allocator."""
    torch.set_num_threads(threads)
    keep_freed_memory()  # as every job does
    warnings.filterwarnings("ignore")  # Quantus' notices, scipy's constant-input warnings
    torch.manual_seed(0)
    model = to_device(build_model("small_cnn", CLASSES).eval(), "cpu")  # as a job loads it
    x = torch.rand(items, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return model, x, torch.arange(items) % CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16, help="items per call")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of (b), ours vs Quantus")
    parser.add_argument("--floor-rounds", type=int, default=8, help="timed rounds of (a), cascade vs floor")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    model, x, targets = small_cnn_case(args.items, args.threads)
    floors = bench_floor(model, x, targets, args.floor_rounds)
    same, checks = bench_quantus(model, x, targets, args.rounds)
    print_tables(floors, checks, same["similarity_cpu_s"])
    payload = {
        "threads": args.threads, "device": "cpu",
        "model": f"small_cnn (random weights), {SIZE} px, {args.items} items",
        "versions": {name: version(name) for name in ("torch", "quantus", "numpy", "scipy", "scikit-image")},
        "note": "(a) ratio_floor = bare passes on pre-built stages / our cascade (blocks); (b) ratio_quantus = "
                "one quantus.MPRT call per measure / our one per-layer cascade shared by all measures; medians over "
                "rounds of paired process CPU seconds (*_wall: wall seconds); (c) agreement: max |ours - Quantus| "
                "per measure over stages x items with layer_seed patched to Quantus' seed + 1 (identical stages), "
                "max_diff_own_seeds with our own per-layer seeds",
        "cascade_vs_floor": floors,
        "same_stages": same,
        "check_vs_quantus": checks,
    }
    write_results(args.out, "sanity", payload)


if __name__ == "__main__":
    main()
