"""AttnLRP's cost: our ``attnlrp`` against the authors' ``lxt`` 2.1 on the same batch, and against the floor.

Cases (random weights, one torch thread by default, the target logits of a fixed batch):

* **torchvision ViT-Ti/16** (224 px, 12 blocks of width 192, 3 heads; torchvision's ``VisionTransformer``, which
  is the architecture ``lxt`` ships a ViT patch map for): our method (``attention="attnlrp"``, default epsilon;
  and ``attention="cp"``) against ``lxt`` patched for the same variant (``tests/methods/lxt_reference.py``:
  its ``cp_LRP`` map, or that map with its AttnLRP attention wrapper), called as its ViT example does
  (``x * dy/dx`` of the target logits; the patching is inside the timed call and costs microseconds).
  ``ratio`` = lxt / ours, target >= 0.95 for the defaults (eps = 0, as lxt); with eps = 1e-6, which lxt does not
  offer, the epsilon rule's extra passes over every projection output are timed for orientation.
* **small_vit** (the embedded default's timm ViT, 64 px): ``lxt`` has no timm patches, so our method is timed
  against the floor only.

Every case is also timed against the **floor**, the plain forward and backward pass to the input
(``benchmarks/methods.py``'s ``forward_backward``): ``ratio_floor`` = floor / ours (for orientation; no target).
Calls alternate over the rounds after one warm-up each (``benchmarks/perturbation.py``'s ``timed``); ratios are
medians over rounds of paired process CPU seconds (wall seconds on a GPU). Without ``lxt`` installed (it is no
dependency: ``docs/fidelity.md``) only the floor is timed, and the JSON says so.

    .venv/bin/python benchmarks/attnlrp.py [--rounds 7] [--batch 8] [--threads 1] [--device cpu]

Writes ``benchmarks/results/attnlrp.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from methods import device_name, forward_backward, write_results_to  # the method benchmark's floor and writer
from perturbation import timed  # alternating rounds after a warm-up: (wall, CPU) seconds per call
from sanity import paired  # median over rounds of paired ratios

from salbench.methods import create_method
from salbench.models import build_model

HERE = Path(__file__).resolve().parent
#: the method's settings timed: its defaults, the CP-LRP variant, and a non-zero epsilon (lxt has none)
CASES = [{"attention": "attnlrp"}, {"attention": "cp"}, {"attention": "attnlrp", "epsilon": 1e-6}]
TINY = dict(image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=10)


def lxt_reference() -> ModuleType | None:
    """``tests/methods/lxt_reference.py`` (the parity test's ``lxt`` access), or None without ``lxt``."""
    if importlib.util.find_spec("lxt") is None:
        return None
    spec = importlib.util.spec_from_file_location("lxt_reference", HERE.parent / "tests/methods/lxt_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchvision_tiny(device: torch.device) -> torch.nn.Module:
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(**TINY).eval()
    with torch.no_grad():  # torchvision zero-initialises these, which would zero every gradient
        net.heads.head.weight.normal_(std=0.1)
        net.class_token.normal_()
    return net.to(device)


def bench(label: str, net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, rounds: int, on_gpu: bool,
          lxt: ModuleType | None) -> list[dict[str, Any]]:
    rows = []
    for params in CASES:
        method, attention = create_method("attnlrp", **params), params["attention"]
        calls: dict[str, Callable[[], Any]] = {
            "ours": lambda: method.attribute_channels(net, x, target),
            "floor": lambda: forward_backward(net, x, target),
        }
        if lxt is not None:
            def theirs(mode: str = attention) -> torch.Tensor:
                with lxt.lxt_patched(mode):
                    return lxt.lxt_relevance(net, x, target)

            calls["lxt"] = theirs
            with lxt.lxt_patched(attention):  # both compute the same relevance (epsilon aside)
                agreement = (lxt.lxt_relevance(net, x, target) - calls["ours"]()).abs().max().item()
        wall, cpu = timed(calls, rounds)
        spent = wall if on_gpu else cpu
        row: dict[str, Any] = {
            "case": f"{label}, " + ", ".join(f"{k} {v}" for k, v in params.items()), "params": method.params,
            "batch": len(x), "size": x.shape[-1], "rounds": rounds,
            **{f"{key}_cpu_s": cpu[key] for key in calls}, **{f"{key}_wall_s": wall[key] for key in calls},
            "ours_items_per_s": len(x) / statistics.median(wall["ours"]), "ratio_floor": paired(spent, "floor"),
        }
        if lxt is not None:
            row |= {"ratio": paired(spent, "lxt"), "ratio_wall": paired(wall, "lxt"), "max_abs_difference": agreement}
        rows.append(row)
        ratio = f"{row['ratio']:6.3f}" if "ratio" in row else "     -"
        print(f"{row['case']:52s} {row['ours_items_per_s']:8.2f}/s  lxt {ratio}  floor {row['ratio_floor']:6.3f}",
              flush=True)
    return rows


def vit_arguments(name: str, description: str) -> argparse.Namespace:
    """The ViT benchmarks' command line (``attnlrp.py``, ``transformers.py``); sets torch's thread count."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8, help="images of the torchvision case (small_vit gets 4x)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "results" / f"{name}.json",
                        help=f"the JSON file, or a folder to write <host>-<date>-{name}.json into (run.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def small_vit_case(batch: int, device: torch.device, generator: torch.Generator
                   ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The embedded default's ``small_vit`` (random weights), ``batch`` random 64 px images and their targets."""
    model = build_model("small_vit", num_classes=6).eval().to(device)
    pixels = torch.rand(batch, 3, 64, 64, generator=generator).to(device)
    return model, pixels, torch.arange(batch).to(device) % 6


def main() -> None:
    args = vit_arguments("attnlrp", __doc__.splitlines()[0])
    device = torch.device(args.device)
    lxt = lxt_reference()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 224, 224, generator=generator).to(device)
    results = bench("torchvision ViT-Ti/16", torchvision_tiny(device), x, torch.arange(args.batch).to(device) % 10,
                    args.rounds, device.type == "cuda", lxt)
    results += bench("small_vit (timm)", *small_vit_case(4 * args.batch, device, generator), args.rounds,
                     device.type == "cuda", None)
    versions = {}
    for name in ("torch", "torchvision", "timm", "lxt"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    payload = {
        "threads": args.threads, "device": device_name(device), "versions": versions,
        "note": "ratio = lxt / ours, medians over rounds of paired process CPU seconds (wall on a GPU), target "
                ">= 0.95 at the defaults; ratio_floor = plain forward+backward / ours (no target); "
                "max_abs_difference: ours vs lxt (plain gradient on linear layers) on the batch"
                + ("" if lxt is not None else "; lxt is not installed here, so only the floor was timed"),
        "results": results,
    }
    write_results_to(args.out, "attnlrp", payload)


if __name__ == "__main__":
    main()
