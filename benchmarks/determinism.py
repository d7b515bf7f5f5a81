"""What a rerun guarantees on a device: every configured method's maps, computed twice as a saliency job does.

For each model of the embedded default (random weights from a fixed seed; a trained checkpoint changes no
code path) and each method the default config schedules for it, with the config's own (reduced) settings:
the maps of one batch of seeded random images are computed twice on ``--device``, each time after the job's
:func:`~salbench.jobs.seed_everything` (deterministic algorithms asked for, cuDNN autotuning off), and once
on the CPU. Reported per (model, method): whether the two device runs are bitwise equal, the largest
difference between them, and the device's agreement with the CPU (largest absolute difference relative to
the CPU map's largest magnitude, and the Pearson correlation of the maps): sampling methods draw their
noise from a device generator, so on a GPU they agree with the CPU in distribution only.

    .venv/bin/python benchmarks/determinism.py [--device cuda] [--batch 8] [--config config/config.yaml]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-determinism-<device>.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from methods import device_name, write_results  # the method benchmark's machine facts and JSON writer

from salbench.config import load_catalog, read_config_file, validate_config
from salbench.jobs import build_method, seed_everything
from salbench.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def scheduled_methods(config: dict[str, Any], arch: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method id, registered name, params) of every configured method the catalog schedules for ``arch``."""
    catalog = load_catalog()
    spec = catalog["archs"][arch]["spec"]
    out = []
    for method_id, entry in sorted(config["methods"].items()):
        info = catalog["methods"][entry["method"]]
        if info["model_family"] and info["model_family"] != spec["family"]:
            continue
        if info["needs_gap_fc"] and not spec["gap_fc"]:
            continue
        if any(capability in spec["lacks"] for capability in info["requires"]):
            continue
        out.append((method_id, entry["method"], entry.get("params") or {}))
    return out


def maps_on(device: str, model: torch.nn.Module, method: Any, x: torch.Tensor, target: torch.Tensor,
            seed: int) -> torch.Tensor:
    """One batch's maps on ``device`` after the saliency job's seeding, back on the CPU."""
    seed_everything(seed)
    model = model.to(device)
    return method.attribute(model, x.to(device), target.to(device)).detach().to("cpu", torch.float64)


def compare(config: dict[str, Any], device: str, batch: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for model_id, entry in sorted(config["models"].items()):
        torch.manual_seed(seed)
        model = build_model(entry["arch"], num_classes=6).eval()
        size = model.spec.input_size
        x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
        target = torch.arange(batch) % 6
        for method_id, name, params in scheduled_methods(config, entry["arch"]):
            row: dict[str, Any] = {"model": model_id, "method": method_id}
            try:
                method = build_method(method_id, name, params, model, model_id)
                start = time.perf_counter()
                first = maps_on(device, model, method, x, target, seed)
                row["device_s"] = time.perf_counter() - start
                second = maps_on(device, model, method, x, target, seed)
                cpu = maps_on("cpu", model, method, x, target, seed)
            except Exception as err:  # recorded, not fatal: the table says which method could not run
                row["error"] = f"{type(err).__name__}: {err}"
                rows.append(row)
                print(f"{model_id:8s} {method_id:34s} ERROR {row['error'][:80]}", flush=True)
                continue
            scale = cpu.abs().max().clamp_min(1e-30)
            centred = torch.stack([first.flatten() - first.mean(), cpu.flatten() - cpu.mean()])
            norms = centred.norm(dim=1)
            row.update({
                "rerun_bitwise_equal": bool(torch.equal(first, second)),
                "rerun_max_abs_diff": float((first - second).abs().max()),
                "cpu_rel_max_diff": float((first - cpu).abs().max() / scale),
                "cpu_pearson": float(centred[0] @ centred[1] / (norms[0] * norms[1]).clamp_min(1e-30)),
            })
            rows.append(row)
            print(f"{model_id:8s} {method_id:34s} rerun equal {row['rerun_bitwise_equal']!s:5s} "
                  f"vs cpu rel {row['cpu_rel_max_diff']:.2e} r {row['cpu_pearson']:.6f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="items per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    config = validate_config(read_config_file(args.config))
    rows = compare(config, args.device, args.batch, args.seed)
    ran = [r for r in rows if "error" not in r]
    payload = {
        "device": device_name(torch.device(args.device)), "batch": args.batch, "seed": args.seed,
        "config": str(args.config.relative_to(ROOT)) if args.config.is_relative_to(ROOT) else str(args.config),
        "torch": torch.__version__, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "rerun_bitwise_equal": sum(r["rerun_bitwise_equal"] for r in ran), "ran": len(ran),
        "errors": len(rows) - len(ran), "results": rows,
    }
    print(f"{payload['rerun_bitwise_equal']}/{len(ran)} (model, method) pairs bitwise equal on rerun; "
          f"{payload['errors']} errors")
    write_results(args.out, f"determinism-{torch.device(args.device).type}", payload)


if __name__ == "__main__":
    main()
