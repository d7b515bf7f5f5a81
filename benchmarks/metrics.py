"""Cost of the perturbation metrics: against their compute floor and against Quantus and pytorch_grad_cam.

On the embedded default's CNN (``small_cnn``, random weights, 64 px RGB, smooth blob-like maps) each
perturbation metric (deletion, insertion, road_morf, road_lerf, infidelity, pixel_removal) is timed
against its compute floor: the bare forward passes it needs (the same number of perturbed rows, in chunks
of the same ``max_batch``, on inputs built beforehand) in the same process; ``ratio_floor`` = floor /
ours, target >= 0.9. Max-sensitivity's floor is the saliency method it re-runs (plain gradients) on as
many pre-built inputs in the same chunks. ROAD's floor holds nothing for the imputation: its share of our
time is reported on its own (``imputation_share``; the imputation alone, timed on the same masks), and
``ratio_floor_plus_imputation`` = (floor + imputation) / ours is what is left for everything else; likewise
infidelity's Gaussian draws (``noise_share``, ``ratio_floor_plus_noise``).

Libraries, on the same inputs and the same number of steps: max-sensitivity against
``quantus.MaxSensitivity`` re-running the same method (its own noise, the same radius and sample count);
deletion against ``quantus.PixelFlipping`` (black baseline, ``3*H*W/steps`` features per step: it ranks
the map broadcast over the channels, so a step flips the same pixels in all three; 12 steps, as Quantus
needs H*W divisible by that number);
ROAD against pytorch_grad_cam's ``ROADMostRelevantFirst`` / ``ROADLeastRelevantFirst`` at the matching
percentiles (per item and percentile a scipy sparse solve on the CPU; called without its extra forward of
the clean input) and against ``quantus.ROAD``. Quantus 0.6's ROAD raises an IndexError on RGB images
(recorded in the JSON); it runs on one-channel images, so that comparison uses the same CNN on grey images
(the channel repeated inside the model), ours included. ``ratio_X`` = X / ours (> 1: ours faster).

Every metric forwards ``--max-batch`` inputs at a time (default 32, the libraries' batch here: on one CPU
thread this CNN costs about 2.1 ms per input at batch 32 and 3.4 ms at 256, the metrics' default, as the
activations outgrow the cache). Calls alternate over at least ``--repeats`` rounds after one warm-up each, more
for cheap cases (about ``--min-seconds`` per side, at most 40: on a shared VM a round's time varies by 10 %);
ratios are medians over rounds of paired process CPU seconds on the CPU (wall seconds on a GPU, synchronised).

    .venv/bin/python benchmarks/metrics.py [--items 32] [--max-batch 32] [--repeats 3] [--min-seconds 3] [--threads 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-metrics.json`` (``...-metrics-<case>-...json`` with ``--cases``).
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import quantus
import torch
import torch.nn.functional as F
from methods import rounds_for, seconds, write_results  # the gradient-method benchmark's timing
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from salbench.allocator import keep_freed_memory
from salbench.methods import Method, create_method
from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.base import Metric, saliency_ranks
from salbench.metrics.faithfulness import Road
from salbench.metrics.imputation import noisy_linear_imputation
from salbench.models import build_model, to_device

#: (label, metric, params); infidelity uses fewer samples than the paper's 10000 (only the relative cost matters);
#: deletion takes 12 steps: Quantus needs H*W divisible by its features per step, 3*H*W/steps (1024 at 64 px)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("deletion (12 steps)", "deletion", {"steps": 12, "baseline": "black"}),
    ("insertion (16 steps)", "insertion", {"steps": 16}),
    ("road_morf (10..90 %)", "road_morf", {}),
    ("road_lerf (10..90 %)", "road_lerf", {}),
    ("infidelity (128 samples)", "infidelity", {"n_samples": 128}),
    ("pixel_removal (25 %)", "pixel_removal", {}),
    ("max_sensitivity (8 samples)", "max_sensitivity", {"n_samples": 8}),
]
#: the saliency method max-sensitivity re-runs on the perturbed inputs
SENSITIVITY_METHOD = "gradient"


class Grey(nn.Module):
    """``model`` on one-channel images: the grey channel repeated for the model's three."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.expand(-1, 3, -1, -1))


def blob_maps(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[n,size,size]`` smooth random maps (Gaussian-filtered noise, sigma 5 px): a few blobs per map."""
    noise = torch.randn(n, 1, size, size, generator=generator)
    taps = torch.exp(-torch.arange(-12, 13.0) ** 2 / 50)
    taps = taps / taps.sum()
    out = F.conv2d(noise, taps.view(1, 1, -1, 1), padding=(12, 0))
    return F.conv2d(out, taps.view(1, 1, 1, -1), padding=(0, 12))[:, 0]


def forward_chunks(metric: Metric, n: int) -> list[int]:
    """Sizes of the forward passes ``metric`` makes on ``n`` items (its rows in chunks of ``max_batch``)."""
    p = metric.params
    per_item = {"deletion": p.get("steps", 0) + 1, "insertion": p.get("steps", 0) + 1,
                "road_morf": len(p.get("percentages", ())), "road_lerf": len(p.get("percentages", ())),
                "infidelity": p.get("n_samples", 0), "pixel_removal": 1,
                "max_sensitivity": p.get("n_samples", 0)}[metric.name]
    rows = n * per_item
    chunks = [min(p["max_batch"], rows - start) for start in range(0, rows, p["max_batch"])]
    return [n, *chunks] if metric.name == "infidelity" else chunks  # infidelity also reads the intact logits


#: work a metric must do besides its forward passes, timed alone: ROAD's imputation, infidelity's noise draws
INHERENT = {"imputation", "noise"}


def forward_floor(model: nn.Module, chunks: list[int], like: torch.Tensor) -> Callable[[], None]:
    """The bare forward passes: ``model`` on pre-built inputs of the given chunk sizes."""
    inputs = torch.rand((max(chunks), *like.shape[1:]), dtype=like.dtype, device=like.device)

    def call() -> None:
        with torch.inference_mode():
            for size in chunks:
                model(inputs[:size])

    return call


def method_floor(method: Method, model: nn.Module, chunks: list[int], like: torch.Tensor,
                 targets: torch.Tensor) -> Callable[[], None]:
    """The bare method calls: ``method`` on pre-built inputs of the given chunk sizes (max-sensitivity's floor)."""
    inputs = torch.rand((max(chunks), *like.shape[1:]), dtype=like.dtype, device=like.device)
    labels = targets.repeat(max(chunks) // len(targets) + 1)[: max(chunks)]

    def call() -> None:
        for size in chunks:
            method.attribute(model, inputs[:size], labels[:size])

    return call


def infidelity_noise(metric: Metric, images: torch.Tensor) -> Callable[[], None]:
    """Infidelity's Gaussian perturbations alone: as many draws as the metric makes, in its chunks of ``max_batch``."""
    p = metric.params
    rows = len(images) * p["n_samples"]

    def call() -> None:
        generator = torch.Generator(device=images.device).manual_seed(p["seed"])
        for start in range(0, rows, p["max_batch"]):
            size = min(p["max_batch"], rows - start)
            torch.randn((size, *images.shape[1:]), generator=generator, dtype=images.dtype, device=images.device)

    return call


def road_imputation(metric: Road, images: torch.Tensor, maps: torch.Tensor) -> Callable[[], None]:
    """ROAD's imputation alone, on the metric's masks (built beforehand) in its chunks of ``max_batch``."""
    p, (n, _, height, width) = metric.params, images.shape
    ranks = saliency_ranks(maps if metric.most_relevant_first else -maps)
    counts = torch.tensor(p["percentages"], device=images.device) * (height * width) // 100
    item = torch.arange(n, device=images.device).repeat_interleave(len(counts))
    removed = (ranks[item] < counts.repeat(n)[:, None]).reshape(-1, height, width)
    generator = torch.Generator(device=images.device).manual_seed(p["seed"])

    def call() -> None:
        with torch.inference_mode():
            for start in range(0, len(item), p["max_batch"]):
                chunk = slice(start, start + p["max_batch"])
                noisy_linear_imputation(images[item[chunk]], removed[chunk], p["noise"], generator, tol=p["tol"])

    return call


def pytorch_grad_cam_road(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                          percentages: tuple[int, ...], most_relevant_first: bool) -> Callable[[], Any]:
    """pytorch_grad_cam's ROAD at our removal percentages (MoRF percentile 100-p keeps the bottom 100-p %)."""
    metrics = [ROADMostRelevantFirst(100 - p) if most_relevant_first else ROADLeastRelevantFirst(p)
               for p in percentages]
    cams = maps.cpu().numpy()
    outputs = [ClassifierOutputTarget(int(t)) for t in targets]
    return lambda: [m(images, cams, outputs, model, return_diff=False) for m in metrics]


def quantus_road(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                 percentages: tuple[int, ...], most_relevant_first: bool) -> Callable[[], Any]:
    """``quantus.ROAD`` (most relevant first; least relevant first on the negated map), whole batch."""
    road = quantus.ROAD(percentages=list(percentages), noise=0.01, disable_warnings=True)
    x, y = images.cpu().numpy(), targets.cpu().numpy()
    a = (maps if most_relevant_first else -maps).cpu().numpy()[:, None]
    device = str(images.device)
    return lambda: road(model=model, x_batch=x, y_batch=y, a_batch=a, device=device, batch_size=len(x))


def quantus_pixel_flipping(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                           steps: int) -> Callable[[], Any]:
    """``quantus.PixelFlipping`` with a black baseline and ``steps`` steps (it counts features per channel)."""
    flipping = quantus.PixelFlipping(features_in_step=images[0].numel() // steps, perturb_baseline="black",
                                     normalise=False, disable_warnings=True)
    x, y, a = images.cpu().numpy(), targets.cpu().numpy(), maps.cpu().numpy()[:, None]
    device = str(images.device)
    return lambda: flipping(model=model, x_batch=x, y_batch=y, a_batch=a, device=device, batch_size=len(x))


def quantus_max_sensitivity(model: nn.Module, method: Method, images: torch.Tensor, maps: torch.Tensor,
                             targets: torch.Tensor, samples: int) -> Callable[[], Any]:
    """``quantus.MaxSensitivity`` (its default noise, radius 0.2) re-running the same ``method``, whole batch."""
    sensitivity = quantus.MaxSensitivity(nr_samples=samples, disable_warnings=True)

    def explain(model: nn.Module, inputs: Any, targets: Any, **kwargs: Any) -> Any:
        x, y = torch.as_tensor(inputs, device=images.device), torch.as_tensor(targets, device=images.device)
        return method.attribute(model, x, y).detach().cpu().numpy()

    x, y, a = images.cpu().numpy(), targets.cpu().numpy(), maps.cpu().numpy()[:, None]
    device = str(images.device)
    return lambda: sensitivity(model=model, x_batch=x, y_batch=y, a_batch=a, explain_func=explain, device=device,
                               batch_size=len(x))


def timed(calls: dict[str, Callable[[], Any]], repeats: int, min_seconds: float,
          sync: Callable[[], None]) -> dict[str, list[float]]:
    """Seconds (CPU on the CPU, synchronised wall on a GPU) of each call over alternating rounds, after a warm-up:
    at least ``repeats`` rounds, more for cheap calls (:func:`methods.rounds_for`)."""
    def run(call: Callable[[], Any]) -> None:
        call()
        sync()

    rounds = rounds_for(repeats, min_seconds, max(seconds(lambda: run(call))[0] for call in calls.values()))
    spent: dict[str, list[float]] = {key: [] for key in calls}
    for r in range(rounds):
        for key in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            wall, cpu = seconds(lambda: run(calls[key]))
            spent[key].append(cpu if sync is _no_sync else wall)
    return spent


def _no_sync() -> None:
    """Nothing to wait for on the CPU."""


def ratio(spent: dict[str, list[float]], key: str, over: str = "ours") -> float:
    """Median over rounds of ``spent[key] / spent[over]`` in the same round."""
    return statistics.median(k / o for k, o in zip(spent[key], spent[over]))


def bench_case(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
               label: str, name: str, params: dict[str, Any], repeats: int, min_seconds: float, max_batch: int,
               sync: Callable[[], None]) -> dict[str, Any]:
    """One metric against its floor, ROAD's imputation alone, and the libraries that compute it."""
    metric = create_metric(name, **params, max_batch=max_batch)
    chunks = forward_chunks(metric, len(images))
    method = create_method(SENSITIVITY_METHOD) if metric.needs_method else None
    batch = ScoringBatch(images, maps, targets, model=model, method=method)
    floor = (method_floor(method, model, chunks, images, targets) if method is not None
             else forward_floor(model, chunks, images))
    calls: dict[str, Callable[[], Any]] = {"ours": lambda: metric.score(batch), "floor": floor}
    row: dict[str, Any] = {"case": label, "metric": name, "params": metric.params, "items": len(images)}
    if method is not None:
        row["method"] = SENSITIVITY_METHOD
    if name == "infidelity":
        calls["noise"] = infidelity_noise(metric, images)
    if isinstance(metric, Road):
        calls["imputation"] = road_imputation(metric, images, maps)
        calls["pytorch_grad_cam"] = pytorch_grad_cam_road(
            model, images, maps, targets, metric.params["percentages"], metric.most_relevant_first)
        try:
            quantus_road(model, images, maps, targets, (10, 50), metric.most_relevant_first)()
        except Exception as error:  # noqa: BLE001 - the failure itself is the result
            row["quantus_rgb_error"] = f"{type(error).__name__}: {error}"
    if method is not None:
        calls["quantus_MaxSensitivity"] = quantus_max_sensitivity(model, method, images, maps, targets,
                                                                  metric.params["n_samples"])
    if name == "deletion":  # Quantus skips the intact image: one forward per item fewer than the RISE curve
        calls["quantus_PixelFlipping"] = quantus_pixel_flipping(model, images, maps, targets, params["steps"])
        row["forwards_per_item"] = {"ours": params["steps"] + 1, "quantus_PixelFlipping": params["steps"]}
    spent = timed(calls, repeats, min_seconds, sync)
    row.update({f"{key}_s": value for key, value in spent.items()})
    row["ours_s_per_item"] = statistics.median(spent["ours"]) / len(images)
    row["ratio_floor"] = ratio(spent, "floor")
    for key in INHERENT & spent.keys():
        row[f"{key}_s_per_item"] = statistics.median(spent[key]) / len(images)
        row[f"{key}_share"] = ratio(spent, key)
        row[f"ratio_floor_plus_{key}"] = statistics.median(
            (f + i) / o for f, i, o in zip(spent["floor"], spent[key], spent["ours"]))
    for key in spent.keys() - {"ours", "floor", *INHERENT}:
        row[f"ratio_{key}"] = ratio(spent, key)
    return row


def bench_quantus_road_grey(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                            repeats: int, min_seconds: float, max_batch: int,
                            sync: Callable[[], None]) -> list[dict[str, Any]]:
    """ROAD against ``quantus.ROAD`` on grey images (the configuration where Quantus 0.6 runs)."""
    grey_model, grey = Grey(model).eval(), images.mean(dim=1, keepdim=True)
    rows = []
    for name in ("road_morf", "road_lerf"):
        metric = create_metric(name, max_batch=max_batch)
        batch = ScoringBatch(grey, maps, targets, model=grey_model)
        calls = {"ours": lambda: metric.score(batch),
                 "quantus_ROAD": quantus_road(grey_model, grey, maps, targets, metric.params["percentages"],
                                              metric.most_relevant_first)}
        spent = timed(calls, repeats, min_seconds, sync)
        rows.append({"case": f"{name} (10..90 %), grey", "metric": name, "params": metric.params,
                     "items": len(images), **{f"{key}_s": value for key, value in spent.items()},
                     "ours_s_per_item": statistics.median(spent["ours"]) / len(images),
                     "ratio_quantus_ROAD": ratio(spent, "quantus_ROAD")})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per case: our seconds per item, floor / ours, the inherent work's share (ROAD imputation or
    infidelity noise), library / ours."""
    print(f"{'case':30s} {'ours s/item':>11s} {'floor/ours':>10s} {'(f+inh)/ours':>12s} {'inh share':>9s}  libraries")
    for row in rows:
        inherent = next((key for key in sorted(INHERENT) if f"{key}_share" in row), "imputation")
        cells = [f"{row[key]:>{width}.3f}" if key in row else " " * (width - 1) + "-"
                 for key, width in (("ratio_floor", 10), (f"ratio_floor_plus_{inherent}", 12),
                                    (f"{inherent}_share", 9))]
        libraries = " ".join(f"{key[6:]}={value:.2f}x" for key, value in row.items()
                             if key.startswith("ratio_") and not key.startswith("ratio_floor"))
        print(f"{row['case']:30s} {row['ours_s_per_item']:11.4f} {' '.join(cells)}  {libraries}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="items per call")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case, at least")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="more rounds for cheap cases: about this many timed seconds per side (at most 40 rounds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="inputs per forward pass for every metric (the libraries forward --items at once)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", help="only these metrics (e.g. deletion road_morf)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every job does
    warnings.filterwarnings("ignore")  # Quantus' notices and deprecations
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else _no_sync
    torch.manual_seed(0)
    model = to_device(build_model("small_cnn", 6).eval(), device)  # as a job loads it
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.items, 3, 64, 64, generator=generator).to(device)
    maps = blob_maps(args.items, 64, generator).to(device)
    targets = (torch.arange(args.items) % 6).to(device)
    chosen = [case for case in CASES if not args.cases or case[1] in args.cases]
    results = [bench_case(model, images, maps, targets, *case, args.repeats, args.min_seconds, args.max_batch, sync)
               for case in chosen]
    if not args.cases or {"road_morf", "road_lerf"} & set(args.cases):
        results += bench_quantus_road_grey(model, images, maps, targets, args.repeats, args.min_seconds, args.max_batch,
                                           sync)
    print_table(results)
    payload = {
        "threads": args.threads, "device": str(device), "max_batch": args.max_batch, "min_seconds": args.min_seconds,
        "model": "small_cnn (random weights), 64 px, blob-like maps",
        "versions": {name: version(name) for name in ("torch", "quantus", "grad-cam", "numpy", "scipy")},
        "note": "ratio_floor = bare forward passes / ours; ratio_X = library X / ours (> 1: ours faster); "
                "medians over rounds of paired " + ("process CPU" if sync is _no_sync else "wall") + " seconds",
        "results": results,
    }
    # a partial run (--cases) gets its own file, so it never replaces the day's full run
    write_results(args.out, "-".join(["metrics", *(args.cases or [])]), payload)


if __name__ == "__main__":
    main()
