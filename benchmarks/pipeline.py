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
(d) **Fixed cost per job, warm worker vs plain** (issue 30; target <= 0.5 s through the worker). The same
    gradient job through the ``salbench`` console entry, as a rule's shell runs it (Snakemake's one-thread
    environment), ``--rounds`` times each way, alternating: in its own process (``SALBENCH_WORKER=off``) and in a
    child of a warm worker (:mod:`salbench.worker`) started beforehand. Fixed cost = wall - ``compute_s``; the
    record keeps the median and minimum of each, their ratio, and where a plain job's start-up goes (interpreter,
    ``import torch``, the worker's warm modules, the job's own non-compute seconds: reading data, model, writing).

    .venv/bin/python benchmarks/pipeline.py [--items 32] [--device cpu] [--threads 1] [--parts fixed_cost ...]

Writes ``benchmarks/results/pipeline.json`` (the record names the host, the date and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
from salbench.client import ENV_SWITCH
from salbench.store import open_store, write_store
from salbench.worker import LOG_NAME, WARM_MODULES, job_environment

SALBENCH = [sys.executable, "-m", "salbench"]  # as the `salbench` command, without relying on PATH
CONSOLE = Path(sys.executable).parent / "salbench"  # the console entry the rules call (the worker's client)
SCALES = (1, 4, 16)
RISE = {"n_masks": 500}
PARTS = ("overhead", "storage", "scaling", "fixed_cost")
FIXED_COST_TARGET_S = 0.5


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
            threads: int, entry: list[str] = SALBENCH, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One ``salbench saliency`` process: its wall seconds, peak RSS and the store's recorded timings."""
    command = [*entry, "saliency", "--dataset", "shapes", "--model", "cnn", "--method", method,
               "--method-id", method, "--params", json.dumps(params), "--data", str(data), "--checkpoint",
               str(checkpoint), "--seed", "0", "--batch-size", "32", "--device", device, "--threads", str(threads),
               "--out", str(out)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-2000:]}")
    attrs = open_store(out).attrs
    return {"wall_s": wall, "compute_s": attrs["compute_s"], "runtime_s": attrs["runtime_s"],
            "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


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


def _wall(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def startup_breakdown(env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median wall seconds of a fresh interpreter doing nothing, importing torch, and importing the worker's
    warm modules (everything a job imports), each in its own process."""
    cases = {"python_s": "pass", "import_torch_s": "import torch",
             "import_salbench_s": f"import {', '.join(WARM_MODULES)}"}
    return {name: statistics.median(_wall(code, env) for _ in range(rounds)) for name, code in cases.items()}


def start_worker(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """A warm worker serving ``folder`` (as the Snakefile's onstart starts it); returns once it has warmed up."""
    log = folder / LOG_NAME
    folder.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "salbench.worker", "--dir", str(folder)], env=env,
                                   stdout=handle, stderr=handle, start_new_session=True)
    while "serving" not in log.read_text():
        if process.poll() is not None:
            raise RuntimeError(f"the worker stopped: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fixed = [r["wall_s"] - r["compute_s"] for r in runs]
    return {"fixed_cost_s_median": statistics.median(fixed), "fixed_cost_s_min": min(fixed),
            "fixed_cost_cpu_s_median": statistics.median(r["cpu_s"] - r["compute_s"] for r in runs),
            "wall_s_median": statistics.median(r["wall_s"] for r in runs), "runs": runs}


def fixed_cost(data: Path, checkpoint: Path, folder: Path, device: str, threads: int, rounds: int) -> dict[str, Any]:
    """Fixed cost per job through the console entry: in its own process and in a warm worker's child."""
    env = job_environment(threads)  # as Snakemake's shell passes it to a job with `threads` threads
    plain_env, warm_env = {**env, ENV_SWITCH: "off"}, {**env, ENV_SWITCH: str(folder / "worker")}
    worker = start_worker(folder / "worker", warm_env)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "worker": []}
    try:
        for i in range(rounds):
            for way, way_env in (("plain", plain_env), ("worker", warm_env)):
                out = folder / f"fixed-{way}-{i}.zarr"
                runs[way].append(run_job(data, checkpoint, "gradient", {}, out, device, threads, [str(CONSOLE)],
                                         way_env))
                shutil.rmtree(out)
    finally:
        worker.terminate()
        worker.wait(60)
    children = [float(line.rsplit("cpu ", 1)[1].split()[0])
                for line in (folder / "worker" / LOG_NAME).read_text().splitlines() if " child " in line]
    if len(children) != rounds:
        raise RuntimeError(f"the worker ran {len(children)} of {rounds} jobs (environment mismatch?)")
    for run, child_cpu in zip(runs["worker"], children):
        run["cpu_s"] += child_cpu  # the client's and its child's CPU seconds
    plain, warm = _summary(runs["plain"]), _summary(runs["worker"])
    ratio = plain["fixed_cost_s_median"] / warm["fixed_cost_s_median"]
    inside = statistics.median(r["runtime_s"] - r["compute_s"] for r in runs["plain"])
    record = {"rounds": rounds, "plain": plain, "worker": warm, "ratio_plain_over_worker": ratio,
              "target_s": FIXED_COST_TARGET_S, "met": warm["fixed_cost_s_median"] <= FIXED_COST_TARGET_S,
              "plain_breakdown": {**startup_breakdown(plain_env, rounds), "job_outside_compute_s": inside}}
    print(f"fixed cost per job: plain {plain['fixed_cost_s_median']:.2f} s, worker {warm['fixed_cost_s_median']:.2f} s "
          f"(median of {rounds}; {ratio:.1f}x; target <= {FIXED_COST_TARGET_S} s: "
          f"{'met' if record['met'] else 'MISSED'})", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="items at scale 1x (and of the overhead job)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="jobs each way for the fixed cost per job")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure (default: all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    record: dict[str, Any] = {"device": args.device, "threads": args.threads, "items": args.items,
                              "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="salbench-pipeline-") as tmp:
        folder = Path(tmp)
        data, checkpoint = make_inputs(folder, args.items)
        if "overhead" in args.parts:
            overhead = record["job_overhead"] = job_overhead(data, checkpoint, folder, args.device, args.threads)
            print(f"job overhead: wall {overhead['wall_s']:.2f} s = compute {overhead['compute_s']:.2f} s + start-up "
                  f"and imports {overhead['startup_imports_s']:.2f} s + in-process rest "
                  f"{overhead['in_process_outside_compute_s']:.2f} s (model load {overhead['model_load_s']:.3f} s)")
        if "storage" in args.parts:
            if not (folder / "overhead-0.zarr").exists():
                run_job(data, checkpoint, "gradient", {}, folder / "overhead-0.zarr", args.device, args.threads)
            maps = open_store(folder / "overhead-0.zarr")["saliency"].values
            stored = record["storage"] = storage(np.tile(maps, (max(1, 256 // len(maps)), 1, 1)), folder)
            for row in stored:
                print(f"storage {row['dtype']}: {row['raw_mb_per_s']:.1f} MB/s raw, {row['bytes_per_map']:.0f} bytes "
                      f"per map on disk ({row['raw_bytes_per_map']} raw)")
        if "scaling" in args.parts:
            record["scaling"] = scaling(folder, args.items, args.device, args.threads)
        if "fixed_cost" in args.parts:
            record["fixed_cost"] = fixed_cost(data, checkpoint, folder, args.device, args.threads, args.rounds)
    record["load_average_after"] = os.getloadavg()  # other work on the machine inflates every figure
    record["note"] = ("overhead_s = job wall - compute_s (target < 5 s + model load); scaling: one process per "
                      "(method, item count), peak_rss_mb = that process's ru_maxrss; fixed_cost: the console entry "
                      "plain vs through the warm worker, wall - compute_s (target <= 0.5 s through the worker)")
    path = write_results(args.out, "pipeline", record)  # the record names the host and the date
    print(f"moved to {path.replace(args.out / 'pipeline.json')}")


if __name__ == "__main__":
    main()
