"""A rule's code hash follows absolute and function-level imports: editing runtime.py reruns the layer-wise jobs."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from workflow_runs import ROOT, TINY, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(600)]

CLUSTERS = "results/shapes/cnn/layerwise/clusters.zarr"


def test_editing_an_absolutely_imported_module_reruns_the_layerwise_jobs(tmp_path):
    """layerwise/run.py imports ``salbench.runtime`` absolutely, inside a function (``salbench.jobs`` re-exports
    it); the job runs that code, so an edit of runtime.py (in a copy of src/, imported instead of the project's)
    plans the layer-wise job again, and an edit of jobs.py, which the job does not run, plans nothing."""
    workdir = tmp_path / "study"
    settings = yaml.safe_load(TINY.read_text())
    settings["layerwise"] = {"items": 2}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    done = snakemake(workdir, config, CLUSTERS)  # only the chain to one cluster store
    assert done.returncode == 0, done.stderr[-4000:]

    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(src)}
    unchanged = snakemake(workdir, config, "-n", CLUSTERS, env=env)
    assert unchanged.returncode == 0, unchanged.stderr[-2000:]
    assert planned_jobs(unchanged) == {}
    expected = {"jobs.py": {}, "runtime.py": {"layerwise_clusters": 1}}
    for name, planned in expected.items():
        module = src / "salbench" / name
        module.write_text(module.read_text() + "\n# an edit\n")
        edited = snakemake(workdir, config, "-n", CLUSTERS, env=env)
        assert edited.returncode == 0, edited.stderr[-2000:]
        assert planned_jobs(edited) == planned, name
