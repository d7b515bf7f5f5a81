"""Throughput of salbench's gradient and propagation methods against direct captum / zennit calls.

For each (model, method) pair, our registered method and the equivalent direct library call run on the
same model and batch in this process, alternately (so drifting load on a shared machine hits both), after
one warm-up call each, for at least ``--repeats`` rounds and more for cheap calls (about ``--min-seconds``
per side); items/s is the batch size over the median wall time. The ratio (ours / library throughput) is
the median over rounds of the paired ratio of process CPU time (``ratio``; other jobs on a shared machine
distort wall time far more) and must be >= 0.95; the same ratio of wall times is ``ratio_wall``. Both
sides compute the same maps (up to the random draws of the sampling methods; the library's channels are
reduced the same way).

**Floor.** Single-pass gradient methods (one forward and one backward to the input: gradient, input x
gradient, guided backprop, deconvnet) are also timed against the bare cost of that
pass on the same batch (``torch.autograd.grad`` of the target logits w.r.t. the input, no hooks, no
post-processing), in the same rounds: ``ratio_floor`` = floor / ours, target >= 0.8.

On a GPU (``--device cuda``) every call is synchronised and the ratios use wall seconds (process CPU time
says nothing there); ``--batch-scale`` multiplies the batch sizes (e.g. 16 on a large GPU).

Models: ``small_cnn`` (the embedded default's CNN) at 64 px and torchvision ResNet50 at 224 px (random
weights). On ResNet50 the sampling methods use fewer steps/samples than the papers (see the JSON), since
only the relative cost matters. captum's DeepLift refuses torchvision's shared ReLU, so its reference
runs inside :func:`~salbench.methods.hooks.separate_activations` (the ratio then measures our wrapper only).

    .venv/bin/python benchmarks/methods.py [--repeats 5] [--min-seconds 3] [--models small_cnn resnet50] [--threads 1]
                                           [--device cpu] [--batch-scale 1] [--methods smoothgrad deconvnet]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-methods.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import socket
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from importlib.metadata import version

import torch
import torch.nn.functional as F
import torchvision
from captum.attr import (
    Deconvolution,
    DeepLift,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonGammaBox,
    EpsilonPlusFlat,
    ExcitationBackprop,
    LayerMapComposite,
    layer_map_base,
)
from zennit.rules import AlphaBeta, Epsilon, Pass
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer, ResNetCanonizer
from zennit.types import BatchNorm, Convolution

from salbench.allocator import keep_freed_memory
from salbench.methods import create_method
from salbench.methods.hooks import separate_activations
from salbench.methods.postprocess import reduce_channels, upsample
from salbench.models import build_model, to_device
from salbench.models.base import ModelSpec, NormalizedClassifier

Reference = Callable[[NormalizedClassifier, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Setup:
    """A model, its batch and the sampling budget used on it."""

    name: str
    model: NormalizedClassifier
    batch: int
    size: int
    steps: int  # IG steps and noise / expected-gradients samples
    ebp_layer: str
    #: what a zennit user would pass: LRP canonizers, and residual sums only for excitation backprop
    canonizers: Callable[[], list] = field(default=lambda: [])
    residual: Callable[[], list] = field(default=lambda: [])


#: single-pass gradient methods: one forward and one plain (or ReLU-masked) backward to the input, timed against
#: that bare pass; LRP rules re-run each layer's forward in their backward and are held to the zennit call instead
SINGLE_PASS = {"gradient", "input_x_gradient", "guided_backprop", "deconvnet"}


def setups(names: list[str], device: torch.device, batch_scale: int = 1) -> list[Setup]:
    torch.manual_seed(0)
    out = []
    if "small_cnn" in names:
        model = to_device(build_model("small_cnn", 6).eval(), device)  # as a job loads it
        out.append(Setup("small_cnn", model, batch=16 * batch_scale, size=64, steps=50,
                         ebp_layer=model.spec.target_layer, canonizers=lambda: [SequentialMergeBatchNorm()]))
    if "resnet50" in names:
        spec = ModelSpec("resnet50", 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "net.layer4", gap_fc=True,
                         cpu_channels_last=True)  # as tv_resnet50
        model = to_device(NormalizedClassifier(torchvision.models.resnet50(weights=None), spec).eval(), device)
        out.append(Setup("resnet50", model, batch=2 * batch_scale, size=224, steps=8, ebp_layer="net.layer3",
                         canonizers=lambda: [ResNetCanonizer()],
                         residual=lambda: [ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]))
    return out


def leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_()


def zennit_relevance(model: NormalizedClassifier, x: torch.Tensor, target: torch.Tensor, composite) -> torch.Tensor:
    """zennit's Gradient attributor on the wrapped net at the normalised input, relevance starting at the logit."""
    z = (x - model.mean) / model.std
    with Gradient(model=model.net, composite=composite) as attributor:
        _, relevance = attributor(z, lambda out: F.one_hot(target, out.shape[1]) * out.detach())
    return relevance.sum(1)


def zennit_excitation(model: NormalizedClassifier, x: torch.Tensor, target: torch.Tensor, layer: str,
                      canonizers: list) -> torch.Tensor:
    """zennit's ExcitationBackprop composite, signal read at ``layer``, summed and upsampled."""
    composite = ExcitationBackprop(layer_map=[(BatchNorm, Pass())], zero_params=["bias"], canonizers=canonizers)
    kept: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        with Gradient(model=model, composite=composite):
            logits = model(leaf(x))
            (grad,) = torch.autograd.grad(logits, kept[0], F.one_hot(target, logits.shape[1]).to(logits.dtype))
    finally:
        handle.remove()
    return upsample(grad.sum(1), tuple(x.shape[-2:]), "bilinear")


def cases(s: Setup) -> list[tuple[str, dict[str, Any], str, Reference | None]]:
    """(method, params, reference label, reference call) for one setup."""
    n, b = s.steps, s.batch
    rows = 4 * b  # rows per forward/backward for the chunked methods
    layer = s.model.spec.target_layer

    def tunnel(kind: str) -> Reference:
        def call(model, x, target):
            grads = NoiseTunnel(Saliency(model)).attribute(
                leaf(x), nt_type=kind, nt_samples=n, nt_samples_batch_size=rows // b, stdevs=0.15,
                target=target, abs=False)
            return reduce_channels(grads, "max_abs")
        return call

    def deeplift(model, x, target):
        with separate_activations(model, x):
            return DeepLift(model).attribute(leaf(x), baselines=torch.zeros_like(x), target=target).sum(1)

    def uniform(rule):
        return LayerMapComposite(layer_map=layer_map_base() + [(Convolution, rule), (nn.Linear, rule)],
                                 canonizers=s.canonizers())

    def gamma_box(model, x, target):
        low, high = -model.mean / model.std, (1 - model.mean) / model.std
        return zennit_relevance(model, x, target, EpsilonGammaBox(low=low, high=high, canonizers=s.canonizers()))

    references = torch.rand(16, 3, s.size, s.size, generator=torch.Generator().manual_seed(0)).to(s.model.mean.device)
    return [
        ("gradient", {}, "captum Saliency",
         lambda m, x, t: reduce_channels(Saliency(m).attribute(leaf(x), target=t, abs=False), "max_abs")),
        ("input_x_gradient", {}, "captum InputXGradient",
         lambda m, x, t: InputXGradient(m).attribute(leaf(x), target=t).sum(1)),
        ("integrated_gradients", {"n_steps": n, "internal_batch_size": rows}, "captum IntegratedGradients",
         lambda m, x, t: IntegratedGradients(m).attribute(
             x, baselines=torch.zeros_like(x), target=t, n_steps=n, method="riemann_right",
             internal_batch_size=rows).sum(1)),
        ("expected_gradients", {"n_samples": n, "internal_batch_size": b * n}, "captum GradientShap",
         lambda m, x, t: GradientShap(m).attribute(x, baselines=references, n_samples=n, stdevs=0.0,
                                                   target=t).sum(1)),
        ("smoothgrad", {"n_samples": n, "internal_batch_size": rows}, "captum NoiseTunnel(Saliency)",
         tunnel("smoothgrad")),
        ("smoothgrad_sq", {"n_samples": n, "internal_batch_size": rows}, "captum NoiseTunnel(Saliency)",
         tunnel("smoothgrad_sq")),
        ("vargrad", {"n_samples": n, "internal_batch_size": rows}, "captum NoiseTunnel(Saliency)", tunnel("vargrad")),
        ("guided_backprop", {}, "captum GuidedBackprop",
         lambda m, x, t: reduce_channels(GuidedBackprop(m).attribute(leaf(x), target=t), "max_abs")),
        ("deconvnet", {}, "captum Deconvolution",
         lambda m, x, t: reduce_channels(Deconvolution(m).attribute(leaf(x), target=t), "max_abs")),
        ("guided_gradcam", {"layer": layer}, "captum GuidedGradCam",
         lambda m, x, t: reduce_channels(GuidedGradCam(m, m.get_submodule(layer)).attribute(
             leaf(x), target=t, interpolate_mode="bilinear"), "max_abs")),
        ("deeplift", {}, "captum DeepLift" + (" (separate_activations)" if s.name == "resnet50" else ""), deeplift),
        ("lrp_epsilon", {}, "zennit Gradient + epsilon composite",
         lambda m, x, t: zennit_relevance(m, x, t, uniform(Epsilon(epsilon=0.01)))),
        ("lrp_alpha2_beta1", {}, "zennit Gradient + alpha2-beta1 composite",
         lambda m, x, t: zennit_relevance(m, x, t, uniform(AlphaBeta(alpha=2.0, beta=1.0)))),
        ("lrp_epsilon_plus_flat", {}, "zennit Gradient + EpsilonPlusFlat",
         lambda m, x, t: zennit_relevance(m, x, t, EpsilonPlusFlat(canonizers=s.canonizers()))),
        ("lrp_epsilon_gamma_box", {}, "zennit Gradient + EpsilonGammaBox", gamma_box),
        ("excitation_backprop", {"layer": s.ebp_layer}, "zennit Gradient + ExcitationBackprop",
         lambda m, x, t: zennit_excitation(m, x, t, s.ebp_layer, s.residual())),
        ("contrastive_excitation_backprop", {"layer": s.ebp_layer}, None, None),
    ]


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def seconds(call: Callable[[], torch.Tensor]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call; GPU work is waited for."""
    _synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    _synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds_for(repeats: int, min_seconds: float, warm: float) -> int:
    """Timed rounds for a call that took ``warm`` seconds: at least ``repeats``, more for cheap calls (about
    ``min_seconds`` per side, so a noisy machine's short stalls average out), at most 40."""
    return min(max(repeats, math.ceil(min_seconds / warm)), 40)


def forward_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The floor of a single-pass method: the target logits' gradient w.r.t. the input, nothing else."""
    x = leaf(x)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x)
    return grad


def bench(s: Setup, repeats: int, min_seconds: float, only: list[str] | None = None) -> list[dict[str, Any]]:
    device = s.model.mean.device
    x = torch.rand(s.batch, 3, s.size, s.size, generator=torch.Generator().manual_seed(1)).to(device)
    target = (torch.arange(s.batch) % 6).to(device)
    on_gpu = device.type == "cuda"
    results = []
    for name, params, label, reference in cases(s):
        if only and name not in only:
            continue
        method = create_method(name, **params)

        def ours() -> torch.Tensor:
            return method.attribute(s.model, x, target)

        def theirs() -> torch.Tensor:
            return reference(s.model, x, target)

        calls = {"ours": ours} if reference is None else {"ours": ours, "reference": theirs}
        if name in SINGLE_PASS:
            calls["floor"] = lambda: forward_backward(s.model, x, target)
        wall: dict[str, list[float]] = {key: [] for key in calls}
        cpu: dict[str, list[float]] = {key: [] for key in calls}
        rounds = rounds_for(repeats, min_seconds, max(seconds(call)[0] for call in calls.values()))
        for r in range(rounds):
            order = list(calls) if r % 2 == 0 else list(calls)[::-1]
            for key in order:
                w, c = seconds(calls[key])
                wall[key].append(w)
                cpu[key].append(c)
        row: dict[str, Any] = {
            "model": s.name, "method": name, "params": method.params, "batch": s.batch, "size": s.size,
            "rounds": rounds, "reference": label,
            "ours_items_per_s": s.batch / statistics.median(wall["ours"]),
            "ours_items_per_cpu_s": s.batch / statistics.median(cpu["ours"]),
            "ours_wall_s": wall["ours"], "ours_cpu_s": cpu["ours"],
        }
        if reference is not None:
            row["reference_items_per_s"] = s.batch / statistics.median(wall["reference"])
            row["reference_items_per_cpu_s"] = s.batch / statistics.median(cpu["reference"])
            row["reference_wall_s"], row["reference_cpu_s"] = wall["reference"], cpu["reference"]
            # paired per round (both sides ran back to back), robust to load drifting between rounds
            row["ratio_wall"] = statistics.median(r / o for r, o in zip(wall["reference"], wall["ours"]))
            row["ratio"] = row["ratio_wall"] if on_gpu else statistics.median(
                r / o for r, o in zip(cpu["reference"], cpu["ours"]))
        if "floor" in calls:
            row["floor_items_per_s"] = s.batch / statistics.median(wall["floor"])
            row["floor_wall_s"], row["floor_cpu_s"] = wall["floor"], cpu["floor"]
            timing = wall if on_gpu else cpu
            row["ratio_floor"] = statistics.median(f / o for f, o in zip(timing["floor"], timing["ours"]))
        results.append(row)
        ratios = " ".join(f"{row[k]:6.3f}" if k in row else "     -" for k in ("ratio", "ratio_wall", "ratio_floor"))
        ref = f"{row.get('reference_items_per_s', float('nan')):9.2f}"
        print(f"{s.name:10s} {name:32s} {row['ours_items_per_s']:9.2f} {ref} {ratios}  {label or ''}", flush=True)
    return results


def device_name(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU's processor string."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}"


def write_results(out: Path, kind: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with the machine's facts as ``out/<hostname>-<YYYY-MM-DD>-<kind>.json``; print the path."""
    host = socket.gethostname()
    record = {"host": host, "date": datetime.date.today().isoformat(), "platform": platform.platform(),
              "processor": platform.processor(), **payload}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{host}-{datetime.date.today():%Y-%m-%d}-{kind}.json"
    path.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {path}")
    return path


def write_results_to(out: Path, kind: str, payload: dict[str, Any]) -> Path:
    """:func:`write_results` into the folder ``out`` (``benchmarks/run.py`` passes one), or as the file ``out``."""
    if out.is_dir():
        return write_results(out, kind, payload)
    path = write_results(out.parent, kind, payload).replace(out)
    print(f"moved to {out}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="minimum timed rounds per method")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per side for cheap methods")
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet50"])
    parser.add_argument("--methods", nargs="+", help="only these methods (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 keeps timings stable when other jobs share the cores")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-scale", type=int, default=1, help="multiply the batch sizes (large GPUs)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every job does
    warnings.filterwarnings("ignore", category=UserWarning)  # captum's notices about temporary hooks
    print(f"{'model':10s} {'method':32s} {'ours/s':>9s} {'lib/s':>9s} {'ratio':>6s} {'wall':>6s} {'floor':>6s}"
          "  reference")
    device = torch.device(args.device)
    results = [row for s in setups(args.models, device, args.batch_scale)
               for row in bench(s, args.repeats, args.min_seconds, args.methods)]
    payload = {
        "threads": args.threads, "repeats": args.repeats, "device": device_name(device),
        "min_seconds": args.min_seconds,
        "versions": {name: version(name) for name in ("torch", "torchvision", "captum", "zennit", "timm")},
        "note": "items/s = batch / median wall seconds; ratio = median over rounds of reference / ours process "
                "CPU seconds in the same round (wall seconds on a GPU; >= 0.95 required); ratio_wall = the same "
                "for wall seconds; ratio_floor = bare forward+backward / ours (single-pass methods, >= 0.8)",
        "results": results,
    }
    write_results(args.out, "methods", payload)


if __name__ == "__main__":
    main()
