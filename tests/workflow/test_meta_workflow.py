"""The ``meta_evaluation`` section plans one meta-evaluation job per (data set, model), and names a bad key."""

from __future__ import annotations

import pytest
import yaml
from workflow_runs import ROOT, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow]


def study(tmp_path, edit) -> object:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    edit(config)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, path, "-n")


def test_demo_plans_one_job_per_listed_model_and_none_without_the_section(tmp_path):
    result = study(tmp_path, lambda c: c["meta_evaluation"].update(models=["cnn", "resnet"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result)["meta_evaluate"] == 2  # shapes x (cnn, resnet); shapes_pair borrows the models
    result = study(tmp_path, lambda c: c.pop("meta_evaluation"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "meta_evaluate" not in planned_jobs(result)


@pytest.mark.parametrize("section, key", [
    ({"methods": ["gradient", "nope"]}, "config key 'meta_evaluation.methods': 'nope'"),
    ({"methods": ["gradient", "gradcam"], "grids": {"deletion": {"tolerance_px": [1]}}},
     "config key 'meta_evaluation.grids.deletion.tolerance_px'"),
])
def test_a_bad_key_is_named(tmp_path, section, key):
    result = study(tmp_path, lambda c: c.update(meta_evaluation=section))
    assert result.returncode != 0 and key in result.stderr, result.stderr[-3000:]
