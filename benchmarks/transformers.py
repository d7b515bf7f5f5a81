"""Cost of the attention-based ViT methods against the floor of the passes they make, on the same batch.

Each method of the rollout family is one forward pass with hooks (raw attention, attention rollout), plus one
backward pass to the attention maps (Chefer et al.'s generic rule), plus a relevance pass over recorded tensors
(Chefer et al.'s transformer attribution); the token Grad-CAM is one forward and one backward to the target layer.
Every method is timed beside two floors in the same process, alternating over rounds after one warm-up each
(``benchmarks/perturbation.py``'s ``timed``):

* ``forward``: the model's plain forward pass under ``torch.no_grad`` (what a gradient-free method cannot beat);
* ``forward_backward``: the forward pass and the target logits' gradient w.r.t. the input
  (``benchmarks/methods.py``'s floor of single-pass gradient methods);
* ``relevance``: ``forward_backward`` plus the matrix products the relevance pass cannot avoid (per linear layer
  two products forward, ``x+ w+`` and ``x- w-``, and two back; per attention product one forward and two back),
  on tensors recorded once outside the timing: alpha=1, beta=0 costs about twice a gradient's products per linear
  layer, so no implementation of Chefer et al.'s transformer attribution reaches 0.8 of ``forward_backward``.

``ratio_floor`` = floor / ours for the floor matching the method's passes (``forward`` for raw attention and
rollout, ``relevance`` for the transformer attribution, ``forward_backward`` for the rest), the median over rounds
of paired process CPU seconds (wall seconds on a GPU); target >= 0.8, as the gradient methods'.
``ratio_forward_backward`` is given for every method.

Cases (random weights, one torch thread by default): ``small_vit`` (the embedded default's timm ViT, 64 px,
4 blocks of width 64) and a torchvision ViT-Ti/16 (224 px, 12 blocks of width 192, 3 heads).

    .venv/bin/python benchmarks/transformers.py [--rounds 7] [--batch 8] [--threads 1] [--device cpu]

Writes ``benchmarks/results/transformers.json``.
"""

from __future__ import annotations

import statistics
from importlib.metadata import version
from typing import Any, Callable

import torch
from attnlrp import small_vit_case, torchvision_tiny, vit_arguments  # the ViT cases and command line, shared
from methods import device_name, forward_backward, write_results_to  # the method benchmark's floor and writer
from perturbation import timed  # alternating rounds after a warm-up: (wall, CPU) seconds per call
from sanity import paired  # median over rounds of paired ratios

from salbench.methods import create_method
from salbench.methods.transformer_attention import BlockRecord, Layout, find_layout, recorded_blocks
from salbench.models.base import ModelSpec, NormalizedClassifier

#: method -> the floor matching its passes
METHODS = {"raw_attention": "forward", "attention_rollout": "forward", "chefer_generic": "forward_backward",
           "chefer_transformer_attribution": "relevance", "gradcam": "forward_backward"}


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The floor of a gradient-free method: one plain forward pass."""
    with torch.no_grad():
        return model(x)


def relevance_products(layout: Layout, records: list[BlockRecord]) -> None:
    """The relevance pass's unavoidable matrix products (see the module docstring) on recorded tensors."""
    for block, record in zip(layout.blocks, records):
        t = record.tensors
        fc1, fc2 = layout.mlp_linears(block)
        for x, weight in ((t["attn_in"], layout.qkv_weight(block)), (t["context"], layout.proj_weight(block)),
                          (t["mlp_in"], fc1.weight), (t["hidden"], fc2.weight)):
            for _ in range(2):
                (x @ weight.T) @ weight
        for a, b in ((record.attention, t["v"]), (t["q"], t["k"].transpose(-2, -1))):
            z = a @ b
            z @ b.transpose(-2, -1), a.transpose(-2, -1) @ z


def recorded(model: torch.nn.Module, x: torch.Tensor) -> tuple[Layout, list[BlockRecord]]:
    layout = find_layout(model)
    with recorded_blocks(layout, with_inputs=True) as records, torch.no_grad():
        model(x)
    return layout, records


def bench(label: str, model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, rounds: int,
          on_gpu: bool) -> list[dict[str, Any]]:
    rows = []
    for name, floor in METHODS.items():
        params = {"layer": model.spec.target_layer} if name == "gradcam" else {}
        method = create_method(name, **params)
        calls: dict[str, Callable[[], Any]] = {
            "ours": lambda: method.attribute(model, x, target),
            "forward": lambda: forward(model, x),
            "forward_backward": lambda: forward_backward(model, x, target),
        }
        if floor == "relevance":
            layout, records = recorded(model, x)
            calls["relevance"] = lambda: (forward_backward(model, x, target), relevance_products(layout, records))
        wall, cpu = timed(calls, rounds)
        spent = wall if on_gpu else cpu
        row = {"case": f"{label}, {name}", "method": name, "params": method.params, "batch": len(x),
               "size": x.shape[-1], "rounds": rounds, "floor": floor,
               **{f"{key}_cpu_s": cpu[key] for key in calls}, **{f"{key}_wall_s": wall[key] for key in calls},
               "ours_items_per_s": len(x) / statistics.median(wall["ours"]),
               "ratio_floor": paired(spent, floor), "ratio_forward_backward": paired(spent, "forward_backward"),
               "ratio_floor_wall": paired(wall, floor)}
        rows.append(row)
        print(f"{row['case']:52s} {row['ours_items_per_s']:8.2f}/s  floor ({floor}) {row['ratio_floor']:6.3f}  "
              f"forward+backward {row['ratio_forward_backward']:6.3f}", flush=True)
    return rows


def main() -> None:
    args = vit_arguments("transformers", __doc__.splitlines()[0])
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    generator = torch.Generator().manual_seed(1)
    results = bench("small_vit (timm, 64 px)", *small_vit_case(4 * args.batch, device, generator), args.rounds, on_gpu)
    spec = ModelSpec(arch="tv_vit_ti_16", input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3, family="vit",
                     target_layer="net.encoder.layers.encoder_layer_11.ln_1")
    tiny = NormalizedClassifier(torchvision_tiny(torch.device("cpu")), spec).eval().to(device)
    images = torch.rand(args.batch, 3, 224, 224, generator=generator).to(device)
    results += bench("torchvision ViT-Ti/16 (224 px)", tiny, images, torch.arange(args.batch).to(device) % 10,
                     args.rounds, on_gpu)
    payload = {
        "threads": args.threads, "device": device_name(device),
        "versions": {name: version(name) for name in ("torch", "torchvision", "timm")},
        "note": "ratio_floor = floor / ours (forward for raw_attention and attention_rollout; forward+backward "
                "plus the relevance pass's matrix products for chefer_transformer_attribution; forward+backward "
                "to the input for the rest), medians over rounds of paired process CPU seconds (wall on a GPU); "
                "target >= 0.8",
        "results": results,
    }
    write_results_to(args.out, "transformers", payload)


if __name__ == "__main__":
    main()
