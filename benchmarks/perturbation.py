"""Throughput of the perturbation, optimisation and RSP methods: batched vs a per-item loop and a library.

For RISE, Score-CAM, MDM, extremal perturbation and RSP on the embedded default's CNN (``small_cnn``,
random weights, 64 px): our registered method on the whole batch, the same method called once per item
(the loop a naive pipeline would run) and a library reference where the issue names one:
``pytorch_grad_cam.ScoreCAM`` on the same layer, inputs and (black) baseline for Score-CAM, and a direct
zennit LRP-epsilon call (batch norm merged) for RSP, whose cost target is at most 3x LRP-epsilon's. Calls alternate, after one warm-up each; items/s is the batch size over the
median wall time, and ``ratio_*`` is the median over rounds of the paired ratio of process CPU seconds
(other seconds / ours; > 1 means ours is faster). MDM and extremal perturbation report seconds per item
at the demo's reduced settings (their cost is linear in the iterations, so the papers' settings cost
about max_iter_paper / max_iter_demo times more); per-item loops are timed on a few items only (an
optimisation's cost per item does not depend on which items).

    .venv/bin/python benchmarks/perturbation.py [--batch 16] [--repeats 3] [--threads 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-perturbation.json``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import torch
from methods import seconds, write_results, zennit_relevance  # the gradient-method benchmark's timing and zennit call
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import LayerMapComposite, layer_map_base
from zennit.rules import Epsilon
from zennit.types import Convolution

from salbench.allocator import keep_freed_memory
from salbench.methods import create_method
from salbench.models import build_model, to_device
from salbench.models.base import NormalizedClassifier

#: (label, method, params) timed batched, per item and, where given, against a library
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("rise (500 masks)", "rise", {"n_masks": 500}),
    ("scorecam (black baseline)", "scorecam", {"baseline": "black"}),
    ("mdm (demo: scales 4,8, 60 iters)", "mdm",
     {"scales": [4, 8], "max_iter": 60, "min_iter": 30, "patience": 10, "min_count": 2}),
    ("extremal (demo: 2 areas, 60 iters)", "extremal_perturbation",
     {"areas": [0.05, 0.1], "max_iter": 60, "step": 8, "sigma": 8.0, "max_blur": 8.0}),
    ("rsp (top 5 classes)", "rsp", {}),
]


def zennit_lrp_epsilon(model: NormalizedClassifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A direct zennit LRP-epsilon call (epsilon 1e-6 on every convolution and linear layer, batch norm merged)."""
    rule = Epsilon(epsilon=1e-6)
    composite = LayerMapComposite(layer_map=layer_map_base() + [(Convolution, rule), (nn.Linear, rule)],
                                  canonizers=[SequentialMergeBatchNorm()])
    return zennit_relevance(model, x, target, composite)


def pytorch_grad_cam_scorecam(model: NormalizedClassifier, layer: str) -> Callable:
    """pytorch_grad_cam's ScoreCAM on ``layer`` (it masks the pixel-space input: our black baseline)."""
    own = copy.deepcopy(model)  # pytorch_grad_cam keeps hooks on its model while it lives
    cam = ScoreCAM(model=own, target_layers=[own.get_submodule(layer)])
    cam.batch_size = 256  # as many masked inputs per forward as ours

    def call(x: torch.Tensor, target: torch.Tensor) -> Any:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])

    return call


def timed(calls: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each call over ``rounds`` alternating rounds, after one warm-up each."""
    for call in calls.values():
        call()
    wall: dict[str, list[float]] = {key: [] for key in calls}
    cpu: dict[str, list[float]] = {key: [] for key in calls}
    for r in range(rounds):
        for key in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            w, c = seconds(calls[key])
            wall[key].append(w)
            cpu[key].append(c)
    return wall, cpu


def bench_case(model: NormalizedClassifier, x: torch.Tensor, target: torch.Tensor, label: str, name: str,
               params: dict[str, Any], rounds: int, loop_items: int) -> dict[str, Any]:
    """One method: batched vs per item (on ``loop_items`` items, scaled to the batch) and, for Score-CAM, the library."""
    if name in ("scorecam", "rsp"):
        params = {**params, "layer": model.spec.target_layer}
    method = create_method(name, **params)
    b = x.shape[0]
    n_loop = min(loop_items, b)
    calls: dict[str, Callable[[], Any]] = {
        "batched": lambda: method.attribute(model, x, target),
        "per_item": lambda: [method.attribute(model, x[i : i + 1], target[i : i + 1]) for i in range(n_loop)],
    }
    if name == "scorecam":
        reference = pytorch_grad_cam_scorecam(model, model.spec.target_layer)
        calls["pytorch_grad_cam"] = lambda: reference(x, target)
    if name == "rsp":
        calls["zennit_lrp_epsilon"] = lambda: zennit_lrp_epsilon(model, x, target)
    wall, cpu = timed(calls, rounds)
    items = {"batched": b, "per_item": n_loop, "pytorch_grad_cam": b, "zennit_lrp_epsilon": b}
    row: dict[str, Any] = {"case": label, "method": name, "params": method.params, "batch": b,
                           "per_item_items": n_loop, "rounds": rounds}
    for key in calls:
        row[f"{key}_items_per_s"] = items[key] / statistics.median(wall[key])
        row[f"{key}_s_per_item"] = statistics.median(wall[key]) / items[key]
        row[f"{key}_cpu_s"] = cpu[key]
        if key != "batched":  # CPU seconds per item, theirs / ours, paired per round
            row[f"ratio_{key}"] = statistics.median(
                (c / items[key]) / (o / b) for c, o in zip(cpu[key], cpu["batched"]))
    others = " ".join(f"{key}={row[f'ratio_{key}']:.2f}x" for key in calls if key != "batched")
    print(f"{label:38s} {row['batched_items_per_s']:8.2f} items/s  {row['batched_s_per_item']:8.3f} s/item  "
          f"ours faster by: {others}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="items per batched call")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per method")
    parser.add_argument("--loop-items", type=int, default=4, help="items timed one by one (scaled per item)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cases", nargs="+", help="only these case labels' methods (e.g. rise scorecam)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every job does
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    model = to_device(build_model("small_cnn", 6).eval(), "cpu")  # as a job loads it
    x = torch.rand(args.batch, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    target = torch.arange(args.batch) % 6
    chosen = [c for c in CASES if not args.cases or c[1] in args.cases]
    results = [bench_case(model, x, target, *case, args.repeats, args.loop_items) for case in chosen]
    payload = {
        "threads": args.threads, "model": "small_cnn (random weights), 64 px",
        "versions": {name: version(name) for name in ("torch", "grad-cam")},
        "note": "ratio_X = median over rounds of X's CPU seconds per item / ours batched (> 1: ours faster)",
        "results": results,
    }
    write_results(args.out, "perturbation", payload)


if __name__ == "__main__":
    main()
