"""Cost of the metric meta-evaluation (MetaQuantus' tests) against ``metaquantus.MetaEvaluation``.

On the embedded default's CNN (``small_cnn``, random weights, 64 px RGB, one torch thread), three gradient
methods and three metrics, the same four perturbation tests (MetaQuantus' ImageNet suite: sigma 0.001 / 0.5,
eps 0.001 / 5.0), the same iterations, draws (K) and items on both sides:

- **ours**: one ``meta_evaluate`` call as the ``meta_evaluate`` job makes it (:mod:`salbench.meta_jobs`): the
  methods built by ``build_method``, every metric scoring the same maps of each draw;
- **metaquantus**: a ``MetaEvaluation`` per metric, called as its README shows (one estimator at a time:
  ``MetaEvaluation(test_suite=setup_test_suite("ImageNet"), xai_methods=..., iterations, nr_perturbations)``
  then ``meta(estimator=..., model, x_batch, y_batch, softmax=...)``), maps by ``quantus.explain`` with the
  matching captum methods, ``score_direction`` per newer-checks.md §4's sign-bug note: ``None`` for a
  higher-is-better metric, ``"lower"`` for a lower-is-better one. Estimators: ``quantus.Sparseness``,
  ``quantus.Complexity`` and ``quantus.PixelFlipping`` (AUC per item, black baseline, ``--steps`` steps),
  against our ``sparseness``, ``complexity`` and ``deletion`` (black baseline, the same steps).

``ratio_metaquantus`` = metaquantus / ours, the median over ``--rounds`` alternating rounds (after one warm-up
each) of paired process CPU seconds (``*_wall``: wall seconds); target >= 5 (issue 26). MetaQuantus calls
``gc.collect()`` before every explanation and after every scoring (a full collection of the process' heap, here
about 0.25 s each, most of its time), so ``ratio_metaquantus_no_gc`` repeats it with those calls made no-ops:
the difference in the work itself (shared maps and reference scores, batched deletion forwards). The MC of each
(metric, kind) on both sides is recorded for orientation only: the draws differ, and MetaQuantus' input test
scores the clean input's maps on the perturbed input where ours re-explains (see the module's docstring); with
random weights and few items an input test's subset is often empty, which makes that MC NaN on both sides.
A MetaQuantus call takes minutes here (about 80 CPU s at 4 items, 1 x 2 draws), so one round is the default.

    .venv/bin/python benchmarks/meta_evaluation.py [--items 8] [--iterations 2] [--perturbations 2] [--rounds 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-meta_evaluation.json`` (``--out`` to put it elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import statistics
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import quantus
import torch
from metaquantus import MetaEvaluation
from metaquantus.helpers.configs import setup_test_suite
from methods import write_results  # the gradient-method benchmark's output
from perturbation import timed  # alternating rounds after a warm-up: (wall, CPU) seconds per call
from sanity import paired  # median of paired ratios
from torch import nn

from salbench.allocator import keep_freed_memory
from salbench.jobs import build_method
from salbench.metrics import create_metric
from salbench.metrics.meta_evaluation import Problem, default_suite, meta_evaluate
from salbench.models import build_model, to_device

SIZE, CLASSES, SEED = 64, 6, 0
#: our method -> the captum method of ``quantus.explain``
METHODS = {"gradient": "Saliency", "input_x_gradient": "InputXGradient", "deconvnet": "Deconvolution"}
#: MetaQuantus' ImageNet suite (``setup_test_suite("ImageNet")``) in our terms
SUITE = default_suite(sigma_nr=0.001, sigma_ar=0.5, eps_nr=0.001, eps_ar=5.0)


def metric_pairs(steps: int) -> dict[str, tuple[dict[str, Any], Any]]:
    """Per metric, our spec and the Quantus estimator computing the same score."""
    return {
        "sparseness": ({"metric": "sparseness"}, quantus.Sparseness(disable_warnings=True)),
        "complexity": ({"metric": "complexity"}, quantus.Complexity(disable_warnings=True)),
        "deletion": ({"metric": "deletion", "params": {"steps": steps, "baseline": "black"}},
                     quantus.PixelFlipping(features_in_step=SIZE * SIZE // steps, perturb_baseline="black",
                                           return_auc_per_sample=True, disable_warnings=True)),
    }


def ours(model: nn.Module, images: torch.Tensor, specs: dict[str, dict[str, Any]], iterations: int,
         perturbations: int) -> list[dict]:
    """The meta-evaluation rows of one ``meta_evaluate`` call, built as the job builds it."""
    methods = {mid: build_method(mid, mid, {}, model, "small_cnn") for mid in METHODS}
    metrics = {name: create_metric(spec["metric"], **spec.get("params", {})) for name, spec in specs.items()}
    problem = Problem(model, images, methods, metrics, batch_size=len(images))
    return meta_evaluate(problem, SUITE, iterations, perturbations, SEED)


def theirs(model: nn.Module, x: np.ndarray, estimators: dict[str, Any], directions: dict[str, bool],
           iterations: int, perturbations: int, collect: bool = True) -> dict[str, dict]:
    """Per metric, ``MetaEvaluation``'s meta-consistency results, one estimator at a time as its README shows;
    ``collect=False`` turns its ``gc.collect()`` calls (one per method and draw) into no-ops."""
    y = np.zeros(len(x), dtype=int)  # unused: MetaQuantus explains and scores the model's predictions
    out = {}
    for name, estimator in estimators.items():
        meta = MetaEvaluation(test_suite=setup_test_suite("ImageNet"), xai_methods={m: {} for m in METHODS.values()},
                              iterations=iterations, nr_perturbations=perturbations, write_to_file=False)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                mock.patch.object(np, "trapz", np.trapezoid, create=True), \
                mock.patch("gc.collect", gc.collect if collect else lambda *args: 0):  # NumPy 2 removed trapz
            meta(estimator=estimator, model=model, x_batch=x, y_batch=y, softmax=True, device="cpu",
                 score_direction=None if directions[name] else "lower")  # the package's sign bug (§4)
        out[name] = meta.results_meta_consistency_scores
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8, help="items")
    parser.add_argument("--iterations", type=int, default=2, help="iterations on both sides")
    parser.add_argument("--perturbations", type=int, default=2, help="draws K per iteration on both sides")
    parser.add_argument("--steps", type=int, default=16, help="deletion / PixelFlipping steps")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds, ours vs metaquantus")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every job does
    warnings.filterwarnings("ignore")  # Quantus' notices, scipy's small-sample warnings
    torch.manual_seed(0)
    np.random.seed(0)  # MetaQuantus draws from the global generators
    model = to_device(build_model("small_cnn", CLASSES).eval(), "cpu")  # as a job loads it
    images = torch.rand(args.items, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    pairs = metric_pairs(args.steps)
    specs = {name: spec for name, (spec, _) in pairs.items()}
    estimators = {name: estimator for name, (_, estimator) in pairs.items()}
    directions = {name: create_metric(spec["metric"], **spec.get("params", {})).higher_is_better
                  for name, spec in specs.items()}
    x = images.numpy()
    results: dict[str, Any] = {}

    def run_ours() -> None:
        results["ours"] = ours(model, images, specs, args.iterations, args.perturbations)

    def run_theirs(collect: bool = True) -> None:
        results["metaquantus"] = theirs(model, x, estimators, directions, args.iterations, args.perturbations,
                                        collect)

    wall, cpu = timed({"ours": run_ours, "metaquantus": run_theirs,
                       "metaquantus_no_gc": lambda: run_theirs(collect=False)}, args.rounds)
    mc = [{"metric": row["metric"], "kind": row["kind"], "mc_ours": row["MC"],
           "mc_metaquantus": results["metaquantus"][row["metric"]][row["kind"].capitalize()]["MC_mean"]}
          for row in results["ours"]]
    row = {"items": args.items, "methods": list(METHODS), "metrics": list(specs), "iterations": args.iterations,
           "perturbations": args.perturbations, **{f"{key}_cpu_s": cpu[key] for key in cpu},
           **{f"{key}_wall_s": wall[key] for key in wall}, "ratio_metaquantus": paired(cpu, "metaquantus"),
           "ratio_metaquantus_wall": paired(wall, "metaquantus"),
           "ratio_metaquantus_no_gc": paired(cpu, "metaquantus_no_gc"), "mc": mc}
    print(f"CPU s ours {statistics.median(cpu['ours']):7.3f} metaquantus {statistics.median(cpu['metaquantus']):7.3f}"
          f"  metaquantus/ours {row['ratio_metaquantus']:5.2f} [without its gc.collect() calls "
          f"{row['ratio_metaquantus_no_gc']:5.2f}]")
    for entry in mc:
        print(f"  MC {entry['metric']:11s} {entry['kind']:6s} ours {entry['mc_ours']:.3f} "
              f"metaquantus {entry['mc_metaquantus']:.3f}")
    write_results(args.out, "meta_evaluation", {
        "threads": args.threads, "device": "cpu",
        "model": f"small_cnn (random weights), {SIZE} px, {args.items} items, {len(METHODS)} methods, "
                 f"{len(specs)} metrics, {args.iterations} iterations x {args.perturbations} draws, 4 tests",
        "versions": {name: version(name) for name in ("torch", "quantus", "metaquantus", "numpy", "scipy")},
        "note": "ratio_metaquantus = one metaquantus.MetaEvaluation per metric (README usage, score_direction per "
                "the sign-bug note) / one meta_evaluate call for all metrics; medians over rounds of paired "
                "process CPU seconds (*_wall: wall seconds); *_no_gc: metaquantus with its gc.collect() calls made "
                "no-ops; mc: each side's MC, for orientation only",
        "results": [row]})


if __name__ == "__main__":
    main()
