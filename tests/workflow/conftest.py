"""The tiny study's two full runs per test session, shared by the workflow, worker and SLURM tests: a local run
(through the warm worker) and a run with every job in its own process (on the local SLURM cluster when it can be
started, so that one run serves both the SLURM test and the worker's identity test)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from salbench.client import ENV_SWITCH
from slurm_runs import CLUSTER, cluster_unavailable, write_test_profile
from workflow_runs import TINY, snakemake


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """(work folder, config) of a completed local run of ``config_tiny.yaml``."""
    workdir = tmp_path_factory.mktemp("study")
    config = workdir / "config.yaml"
    config.write_text(TINY.read_text())
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


@dataclass(frozen=True)
class PlainRun:
    """A finished run of the tiny study with every job in its own process."""

    workdir: Path
    result: subprocess.CompletedProcess
    seconds: float
    #: None when it ran on the local SLURM cluster, else why it ran locally
    not_on_slurm: str | None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node cluster (None), or why there is none (a string); stopped afterwards unless it was
    already running."""
    reason = cluster_unavailable()
    if reason:
        yield reason
        return
    was_running = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    try:
        started = subprocess.run([CLUSTER, "start"], capture_output=True, text=True, timeout=600)
        assert started.returncode == 0, started.stdout + started.stderr
        yield None
    finally:
        if not was_running:
            subprocess.run([CLUSTER, "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def plain_run(finished_run, slurm_cluster, tmp_path_factory) -> PlainRun:
    """The tiny study with the warm worker off (``SALBENCH_WORKER=off``): through ``--executor slurm`` with the
    test profile (slurm_runs.write_test_profile) when the local cluster runs, else a local run. SLURM's group
    jobs run each job in its own process anyway; the switch makes sure that nothing reaches a worker."""
    _, config = finished_run
    workdir = tmp_path_factory.mktemp("plain")
    args: tuple[str, ...] = ()
    if slurm_cluster is None:
        profile = write_test_profile(tmp_path_factory.mktemp("profile"))
        args = ("--executor", "slurm", "--workflow-profile", str(profile))
    start = time.monotonic()
    result = snakemake(workdir, config, *args, timeout=1500, env={**os.environ, ENV_SWITCH: "off"})
    seconds = time.monotonic() - start
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return PlainRun(workdir, result, seconds, slurm_cluster)
