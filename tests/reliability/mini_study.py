"""The smallest study the real Snakefile runs (one data set, one model, two methods, one metric, no sanity checks
or grids: eight jobs), for the reliability tests that need Snakemake itself (locks, reruns)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .helpers import snakemake as run_snakemake  # noqa: F401 (re-exported: the workflow tests' runner)

# re-exported, for a run not waited for; importable once .helpers has put tests/workflow on the path
from workflow_runs import command  # noqa: E402, F401, I001

MINI = {
    "study": "mini", "seed": 0, "device": "cpu", "batch_size": 16,
    "datasets": {"shapes": {"source": "shapes", "params": {"n_train": 64, "n_val": 32, "n_eval": 8, "seed": 0}}},
    "models": {"cnn": {"arch": "small_cnn", "train": {"epochs": 1, "batch_size": 32}}},
    "methods": {"gradient": {}, "random": {}},
    "sanity": {"enabled": False},
    "metrics": {"pointing_game": {}},
}


def write_config(folder: Path) -> Path:
    path = folder / "mini.yaml"
    path.write_text(yaml.safe_dump(MINI, sort_keys=False))
    return path
