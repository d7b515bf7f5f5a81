"""The local one-node SLURM cluster (scripts/slurm-local-cluster.sh) and profiles/slurm as the tests use them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import yaml
import yte
from workflow_runs import ROOT

CLUSTER = ROOT / "scripts" / "slurm-local-cluster.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"


def cluster_unavailable() -> str | None:
    """Why the local cluster cannot be started here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root: scripts/slurm-local-cluster.sh installs slurm-wlm and munge and starts the SLURM daemons"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "slurm-wlm is not installed and there is no apt-get to install it"
    return None


def gpu_rules() -> set[str]:
    """Rules that declare ``resources: gpu=1`` in workflow/rules/*.smk."""
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^\s+gpu=1,", block, re.M):
                rules.add(block.split(":", 1)[0])
    return rules


def load_profile() -> dict:
    """profiles/slurm/config.yaml as Snakemake reads it (YTE template evaluated)."""
    return yte.process_yaml(PROFILE.read_text(), require_use_yte=True)


def write_test_profile(folder: Path) -> Path:
    """profiles/slurm for the test cluster. Changed: no account and the default partition; the GPU jobs ask for
    no GPU, and a `gpu_slot` token takes the GPU's place in keeping a group job's GPU jobs one after another;
    memory that fits the test node; squeue polled every few seconds; no retries, stop at the
    first failure."""
    profile = load_profile()
    profile["slurm-no-account"] = True
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        resources.pop("slurm_account", None)
        resources.pop("slurm_partition", None)
        resources.pop("gpu_model", None)
        if resources.pop("gpu", 0):
            resources.update(gpu=0, gpu_slot=1)
        resources["mem_mb"] = "1000 * attempt"
    assert profile["resources"] == {"gpu": 1} and profile["set-resource-scopes"] == {"gpu": "local"}
    profile["resources"] = {"gpu_slot": 1}
    profile["set-resource-scopes"] = {"gpu_slot": "local"}
    profile.update({"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2,
                    "retries": 0, "keep-going": False, "slurm-keep-successful-logs": True})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder
