"""A tiny study on disk for the reliability tests, and the ``salbench`` command lines that run on it.

Jobs run in child processes (the real command line), one thread each; :func:`run_jobs` runs several
``salbench`` commands in one child so that torch is imported once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from salbench.jobs import fetch_dataset, prepare_dataset
from salbench.models import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "workflow"))  # the workflow tests' result comparison
from workflow_runs import assert_same_results, snakemake  # noqa: E402,F401 (re-exported)

SHAPES = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 6, "seed": 0}
#: methods that draw random numbers (noise, masks) beside a plain one: determinism needs the seeds to hold
METHODS = {"gradient": {}, "smoothgrad": {"n_samples": 3}, "rise": {"n_masks": 16}}
#: metrics of every kind: localisation on masks, model evaluations, one that re-runs the method on noise
METRICS = {"pointing_game": {"metric": "pointing_game"}, "deletion": {"metric": "deletion", "params": {"steps": 4}},
           "max_sensitivity": {"metric": "max_sensitivity", "params": {"n_samples": 2}}}


def make_study(root: Path) -> Path:
    """``root/data.zarr`` (6 shapes items of 16 px) and ``root/cnn.pt`` (an untrained, seeded small CNN)."""
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    torch.manual_seed(0)
    save_checkpoint(build_model("small_cnn", 6).eval(), root / "cnn.pt", {"num_classes": 6})
    return root


def saliency_args(study: Path, method: str, out: Path, device: str = "cpu") -> list[str]:
    return ["saliency", "--dataset", "shapes", "--model", "cnn", "--method", method, "--params",
            json.dumps(METHODS[method]), "--data", str(study / "data.zarr"), "--checkpoint", str(study / "cnn.pt"),
            "--device", device, "--batch-size", "4", "--out", str(out)]


def score_args(study: Path, method: str, maps: Path, out: Path, device: str = "cpu") -> list[str]:
    return ["score", "--dataset", "shapes", "--model", "cnn", "--method-id", method, "--method", method,
            "--params", json.dumps(METHODS[method]), "--metrics", json.dumps(METRICS), "--data",
            str(study / "data.zarr"), "--checkpoint", str(study / "cnn.pt"), "--maps", str(maps), "--device", device,
            "--batch-size", "4", "--out", str(out)]


def study_jobs(study: Path, out: Path, device: str = "cpu") -> list[list[str]]:
    """Saliency then score of every method of :data:`METHODS` on ``device``, writing into ``out``."""
    jobs = []
    for method in METHODS:
        maps = out / "saliency" / f"{method}.zarr"
        jobs += [saliency_args(study, method, maps, device),
                 score_args(study, method, maps, out / "scores" / f"{method}.parquet", device)]
    return jobs


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


#: runs ``salbench`` commands given as JSON argv lists, in one process; a failing command ends it with its code
RUNNER = ("import json, sys\nfrom salbench.cli import main\nfor argv in json.loads(sys.argv[1]):\n"
          "    code = main(argv)\n    if code:\n        sys.exit(code)\n")


def run_jobs(jobs: list[list[str]], env: dict[str, str] | None = None, prelude: str = "",
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``salbench`` commands in one child process (``prelude``: Python run first, e.g. a fault to inject)."""
    return subprocess.run([sys.executable, "-c", prelude + RUNNER, json.dumps(jobs)], capture_output=True, text=True,
                          env=env or child_env(), timeout=timeout)


def start_jobs(jobs: list[list[str]], env: dict[str, str] | None = None, prelude: str = "") -> subprocess.Popen:
    """:func:`run_jobs` without waiting."""
    return subprocess.Popen([sys.executable, "-c", prelude + RUNNER, json.dumps(jobs)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or child_env())


def temporaries(path: Path) -> list[Path]:
    """Temporary siblings of ``path`` left by :func:`salbench.store.atomic_path`."""
    return sorted(path.parent.glob(f".{path.name}.tmp-*"))


#: writes a maps-like store of seeded random values with :func:`salbench.store.write_store` (no torch import)
STORE_WRITER = """
import sys
import numpy as np
import xarray as xr
from salbench.store import object_strings, write_store

path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
values = np.random.default_rng(seed).random((n, 32, 32), dtype=np.float32)
ds = xr.Dataset({"saliency": (("item", "y", "x"), values)},
                coords={"item": object_strings([f"i{k}" for k in range(n)])}, attrs={"seed": seed})
write_store(ds, path, item_chunk=4)
"""

#: a prelude for a child on a slow disk: the first chunk of the ``saliency`` array lands, then its other
#: chunk writes stall (``SLOW_WRITE_S`` seconds), so the store is half written for long enough to kill the job
SLOW_WRITES = """
import asyncio
import os
import zarr.storage

_set = zarr.storage.LocalStore.set

async def _slow_set(self, key, value):
    if not key.startswith("saliency/c/"):
        return await _set(self, key, value)
    stall = asyncio.sleep(float(os.environ.get("SLOW_WRITE_S", "30")))
    if key.endswith("/c/0/0/0"):
        await _set(self, key, value)
        await stall
    else:
        await stall
        await _set(self, key, value)

zarr.storage.LocalStore.set = _slow_set
"""


def start_store_writer(path: Path, seed: int, n: int = 16, slow_s: float | None = None) -> subprocess.Popen:
    """A child process writing :data:`STORE_WRITER`'s store to ``path`` (each chunk write ``slow_s`` slower)."""
    prelude = SLOW_WRITES if slow_s is not None else ""
    env = child_env(SLOW_WRITE_S=str(slow_s or 0))
    return subprocess.Popen([sys.executable, "-c", prelude + STORE_WRITER, str(path), str(seed), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def kill_once_chunks_land(child: subprocess.Popen, path: Path, array: str = "saliency", timeout: float = 120) -> None:
    """SIGKILL ``child`` once a chunk of ``array`` is in a temporary store of ``path`` (it is then mid-write)."""
    deadline = time.monotonic() + timeout
    try:
        while not any(any((tmp / array / "c").rglob("*")) for tmp in temporaries(path) if (tmp / array / "c").is_dir()):
            assert child.poll() is None, f"the writer ended before it was killed: {child.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "the writer never started writing chunks"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
