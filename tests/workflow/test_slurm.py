"""The tiny study through ``--executor slurm`` on a real one-node SLURM cluster on this machine, with profiles/slurm
(its GPU request dropped: the test machine has no GPU); every result equals the local run's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
import yte
from workflow_runs import ROOT, assert_same_results, planned_jobs, result_paths, snakemake

CLUSTER = ROOT / "scripts" / "slurm-local-cluster.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"


def cluster_unavailable() -> str | None:
    """Why the local cluster cannot be started here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root: scripts/slurm-local-cluster.sh installs slurm-wlm and munge and starts the SLURM daemons"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "slurm-wlm is not installed and there is no apt-get to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster; stopped afterwards unless it was already running."""
    reason = cluster_unavailable()
    if reason:
        pytest.skip(reason)
    was_running = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    try:
        started = subprocess.run([CLUSTER, "start"], capture_output=True, text=True, timeout=600)
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        if not was_running:
            subprocess.run([CLUSTER, "stop"], capture_output=True, timeout=120)


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


def test_profile_requests_one_gpu_for_every_gpu_rule():
    profile = load_profile()
    requested = {rule for rule, res in profile["set-resources"].items() if res.get("gpu") == 1}
    declared = gpu_rules()
    assert {"saliency", "sanity_model_checks", "sanity_class_checks", "score"} <= declared
    assert declared <= requested, f"rules with gpu=1 that the SLURM profile sends to no GPU: {declared - requested}"
    assert not any("gres" in res for res in profile["set-resources"].values())  # plugin 2.x: gpu or gres, not both
    assert {profile["groups"][rule] for rule in requested if rule in profile["groups"]} == {"gpu", "shard"}
    assert set(profile["groups"].values()) == set(profile["group-components"])
    for res in [profile["default-resources"], *profile["set-resources"].values()]:
        assert "attempt" in res["runtime"] and "attempt" in res["mem_mb"]


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_study_on_slurm_equals_local_run(slurm_cluster, finished_run, tmp_path):
    local, config = finished_run
    profile = write_test_profile(tmp_path / "profile")
    workdir = tmp_path / "study"
    workdir.mkdir()
    start = time.monotonic()
    result = snakemake(workdir, config, "--executor", "slurm", "--workflow-profile", str(profile), timeout=1500)
    seconds = time.monotonic() - start
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    jobs = sum(n for rule, n in planned_jobs(result).items() if rule != "all")
    print(f"SLURM run: {seconds:.0f} s, {jobs} jobs in {len(submitted)} SLURM jobs")
    assert 0 < len(submitted) <= jobs // 3, log[-3000:]  # groups: a few submissions for many jobs
    assert any((workdir / "logs" / "slurm").rglob("*.log"))
    expected = result_paths(local)
    assert result_paths(workdir) == expected
    assert_same_results(local, workdir, expected)
    assert (workdir / "reports/tiny/index.html").is_file()
