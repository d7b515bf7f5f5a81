"""One full local run of the tiny study per test session, shared by the workflow and SLURM tests."""

from __future__ import annotations

from pathlib import Path

import pytest

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
