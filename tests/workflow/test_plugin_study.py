"""The plugin example (examples/my_method) through the whole study, and editing it reruns only its jobs.

The example package is put on PYTHONPATH (the import-path form, ``my_method.attribution:BlurredGradient``),
as a copy, so the test can edit it; the entry-point form is tested without installing anything in
tests/test_plugins.py (a dist-info folder on sys.path). Sizes are config_tiny.yaml's.
"""

from __future__ import annotations

import os
import re
import shutil

import pandas as pd
import pytest
import yaml
from workflow_runs import ROOT, TINY, planned_jobs, snakemake, without_sections

from salbench.store import open_store

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLE = ROOT / "examples" / "my_method"
MINE = "my_method.attribution:BlurredGradient"


def _tiny_study() -> dict:
    """examples/my_method/study.yaml at config_tiny.yaml's sizes, with two of its built-in methods."""
    study, tiny = yaml.safe_load((EXAMPLE / "study.yaml").read_text()), yaml.safe_load(TINY.read_text())
    for key in ("datasets", "models", "sanity", "batch_size"):
        study[key] = tiny[key]
    study["methods"] = {k: v for k, v in study["methods"].items() if k in ("mine", "gradient", "random")}
    study["metrics"]["deletion"] = tiny["metrics"]["deletion"]
    study["meta_evaluation"] = {"enabled": False}  # not the plugin's business, and minutes of jobs
    return study


def _planned_outputs(result) -> list[str]:
    return re.findall(r"^\s*output: (.+)$", result.stdout + result.stderr, flags=re.M)


#: the plugin's jobs on the two data sets (maps, checks, scores) and the report
PLUGIN_JOBS = {"saliency": 2, "sanity_model_checks": 1, "sanity_class_checks": 1, "score": 2, "report": 1, "all": 1}


def test_plugin_method_runs_through_the_study_and_an_edit_reruns_only_its_jobs(tmp_path):
    code = tmp_path / "code"
    shutil.copytree(EXAMPLE, code, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    src = tmp_path / "src"  # one frozen copy of salbench for the run and its dry runs: only the plugin edit differs
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(code)])}
    workdir = tmp_path / "study"
    config = tmp_path / "config.yaml"
    study = _tiny_study()
    config.write_text(yaml.safe_dump(study))
    done = snakemake(workdir, config, env=env)
    assert done.returncode == 0, done.stderr[-4000:]

    for dataset in ("shapes", "shapes_pair"):  # maps, every applicable sanity check, every metric
        maps = open_store(workdir / f"results/{dataset}/cnn/saliency/mine.zarr")
        plugin = maps.attrs["provenance"]["plugins"][f"method:{MINE}"]
        assert plugin["package"] == "my_method" and len(plugin["source_hash"]) == 16
        checks = set(pd.read_parquet(workdir / f"results/{dataset}/cnn/sanity/mine.parquet")["check"])
        gradient = set(pd.read_parquet(workdir / f"results/{dataset}/cnn/sanity/gradient.parquet")["check"])
        assert checks == gradient and checks
        scores = pd.read_parquet(workdir / f"results/{dataset}/cnn/scores/mine.parquet")
        assert set(scores["metric"]) == set(study["metrics"])
    entropy = pd.read_parquet(workdir / "results/shapes/cnn/scores/gradient.parquet").query("metric == 'entropy'")
    assert entropy["value"].between(0, 1).all() and len(entropy)
    assert (workdir / "reports/my_method/index.html").is_file()

    unchanged = snakemake(workdir, config, "-n", env=env)
    assert unchanged.returncode == 0 and planned_jobs(unchanged) == {}, unchanged.stderr[-2000:]
    module = code / "my_method" / "attribution.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    edited = snakemake(workdir, config, "-n", env=env)
    assert edited.returncode == 0, edited.stderr[-2000:]
    assert without_sections(planned_jobs(edited)) == PLUGIN_JOBS
    outputs = [o for o in _planned_outputs(edited) if o.startswith("results/") and "results/sections/" not in o]
    assert len(outputs) == 6 and all("/mine." in o for o in outputs), outputs
