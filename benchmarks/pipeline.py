"""Pipeline costs around the compute: a saliency job's overhead, map storage, and scaling with the item count.

On the embedded default's shapes data (64 px) and CNN (``small_cnn``, random weights), in a temporary folder:

(a) **Job overhead.** ``salbench saliency`` runs as the workflow runs it (a fresh process) for a fast method
    (plain gradient); the job records its own compute seconds (``compute_s``: the batches through the method)
    and its in-process seconds (``runtime_s``: loading data, model and method, computing, building the
    store). ``overhead_s`` = process wall seconds - ``compute_s`` (target: under 5 s plus model load), split
    into start-up and imports (wall - ``runtime_s``) and the rest.
(b) **Storage.** Writing the job's maps with :func:`salbench.store.write_store` (zstd, chunked by item, with
    its content checksum): MB/s of raw float32 maps and bytes per map on disk, for float32 and float16.
(c) **Scaling.** The same job for a fast method (gradient) and a slow one (RISE, the demo's 500 masks) on 1x,
    4x and 16x ``--items``: wall seconds and peak resident memory of the job process (``ru_maxrss``). Time
    should grow linearly past the fixed start-up cost; memory stays bounded (maps are copied to the CPU
    per batch; the data store is read whole, 12 KB per 64 px item).

    .venv/bin/python benchmarks/pipeline.py [--items 32] [--device cpu] [--threads 1]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from methods import write_results  # the method benchmark's JSON writer

from salbench.jobs import fetch_dataset, prepare_dataset
from salbench.models import build_model, save_checkpoint
from salbench.store import open_store, write_store

SALBENCH = [sys.executable, "-m", "salbench"]  # as the `salbench` command, without relying on PATH
SCALES = (1, 4, 16)
RISE = {"n_masks": 500}


def make_inputs(folder: Path, items: int) -> tuple[Path, Path]:
    """A shapes data store of ``items`` eval items and a random-weight small_cnn checkpoint in ``folder``."""
    params = {"n_train": 0, "n_val": 0, "n_eval": items, "seed": 0}
    root, data = folder / f"shapes-{items}", folder / f"data-{items}.zarr"
    fetch_dataset("shapes", params, root)
    prepare_dataset("shapes", "shapes", params, root, data)
    checkpoint = folder / "cnn.pt"
    if not checkpoint.exists():
        save_checkpoint(build_model("small_cnn", 6), checkpoint, {"num_classes": 6, "classes": list(range(6))})
    return data, checkpoint


def run_job(data: Path, checkpoint: Path, method: str, params: dict[str, Any], out: Path, device: str,
            threads: int) -> dict[str, Any]:
    """One ``salbench saliency`` process: its wall seconds, peak RSS and the store's recorded timings."""
    command = [*SALBENCH, "saliency", "--dataset", "shapes", "--model", "cnn", "--method", method,
               "--method-id", method, "--params", json.dumps(params), "--data", str(data), "--checkpoint",
               str(checkpoint), "--seed", "0", "--batch-size", "32", "--device", device, "--threads", str(threads),
               "--out", str(out)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-2000:]}")
    attrs = open_store(out).attrs
    return {"wall_s": wall, "compute_s": attrs["compute_s"], "runtime_s": attrs["runtime_s"],
            "peak_rss_mb": usage.ru_maxrss / 1024}


def job_overhead(data: Path, checkpoint: Path, folder: Path, device: str, threads: int) -> dict[str, Any]:
    runs = [run_job(data, checkpoint, "gradient", {}, folder / f"overhead-{i}.zarr", device, threads)
            for i in range(3)]
    best = min(runs, key=lambda r: r["wall_s"])
    load_start = time.perf_counter()
    from salbench.models import load_checkpoint

    load_checkpoint(checkpoint)
    return {**best, "overhead_s": best["wall_s"] - best["compute_s"],
            "startup_imports_s": best["wall_s"] - best["runtime_s"],
            "in_process_outside_compute_s": best["runtime_s"] - best["compute_s"],
            "model_load_s": time.perf_counter() - load_start, "runs": runs}


def storage(maps: np.ndarray, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for dtype in ("float32", "float16"):
        ds = xr.Dataset({"saliency": (("item", "y", "x"), maps.astype(dtype))},
                        coords={"item": np.array([f"i{i}" for i in range(len(maps))], dtype=object)})
        path = folder / f"storage-{dtype}.zarr"
        times = []
        for _ in range(3):
            start = time.perf_counter()
            write_store(ds, path)
            times.append(time.perf_counter() - start)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        rows.append({"dtype": dtype, "maps": len(maps), "write_s": min(times),
                     "raw_mb_per_s": maps.astype(np.float32).nbytes / 1e6 / min(times),
                     "bytes_per_map": size / len(maps), "raw_bytes_per_map": maps[0].size * np.dtype(dtype).itemsize})
    return rows


def scaling(folder: Path, items: int, device: str, threads: int) -> list[dict[str, Any]]:
    rows = []
    for scale in SCALES:
        data, checkpoint = make_inputs(folder, items * scale)
        for method, params in (("gradient", {}), ("rise", RISE)):
            run = run_job(data, checkpoint, method, params, folder / f"scale-{method}-{scale}.zarr", device, threads)
            rows.append({"method": method, "items": items * scale, **run,
                         "compute_s_per_item": run["compute_s"] / (items * scale)})
            print(f"scaling {method:9s} {items * scale:5d} items: wall {run['wall_s']:7.2f} s, compute "
                  f"{run['compute_s']:7.2f} s, peak RSS {run['peak_rss_mb']:7.1f} MB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="items at scale 1x (and of the overhead job)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="salbench-pipeline-") as tmp:
        folder = Path(tmp)
        data, checkpoint = make_inputs(folder, args.items)
        overhead = job_overhead(data, checkpoint, folder, args.device, args.threads)
        print(f"job overhead: wall {overhead['wall_s']:.2f} s = compute {overhead['compute_s']:.2f} s + start-up "
              f"and imports {overhead['startup_imports_s']:.2f} s + in-process rest "
              f"{overhead['in_process_outside_compute_s']:.2f} s (model load {overhead['model_load_s']:.3f} s)")
        maps = open_store(folder / "overhead-0.zarr")["saliency"].values
        stored = storage(np.tile(maps, (max(1, 256 // len(maps)), 1, 1)), folder)
        for row in stored:
            print(f"storage {row['dtype']}: {row['raw_mb_per_s']:.1f} MB/s raw, {row['bytes_per_map']:.0f} bytes "
                  f"per map on disk ({row['raw_bytes_per_map']} raw)")
        scale_rows = scaling(folder, args.items, args.device, args.threads)
    write_results(args.out, "pipeline", {
        "device": args.device, "threads": args.threads, "items": args.items, "job_overhead": overhead,
        "storage": stored, "scaling": scale_rows,
        "note": "overhead_s = job wall - compute_s (target < 5 s + model load); scaling: one process per "
                "(method, item count), peak_rss_mb = that process's ru_maxrss",
    })


if __name__ == "__main__":
    main()
