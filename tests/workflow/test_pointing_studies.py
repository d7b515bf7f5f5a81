"""The pointing-game study configs (TorchRay, RSP) plan, and data sets restrict their models and methods."""

from __future__ import annotations

import re

import pytest
import yaml
from workflow_runs import ROOT, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow]


def evaluated_pairs(output: str) -> set[tuple[str, str]]:
    """(data set, model) pairs a dry run plans saliency maps for."""
    return set(re.findall(r"results/([A-Za-z0-9_]+)/([A-Za-z0-9_]+)/saliency/", output))


def test_torchray_study_plans_each_data_set_with_its_own_models(tmp_path):
    result = snakemake(tmp_path, ROOT / "config" / "torchray_pointing.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["get_dataset"] == 4 and jobs["prepare_dataset"] == 4 and "sanity_model_checks" not in jobs
    pairs = evaluated_pairs(result.stdout + result.stderr)
    assert pairs == {(d, m) for d in ("voc07", "voc07_difficult") for m in ("vgg16_voc", "resnet50_voc")} | \
        {(d, m) for d in ("coco14", "coco14_difficult") for m in ("vgg16_coco", "resnet50_coco")}
    assert "extremal_perturbation_coco" not in " ".join(re.findall(r"results/voc07\S*", result.stdout))


def test_rsp_study_plans(tmp_path):
    result = snakemake(tmp_path, ROOT / "config" / "rsp.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["get_dataset"] == 5 and jobs["sanity_model_checks"] > 0


def test_an_unknown_model_of_a_data_set_is_named(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "torchray_pointing.yaml").read_text())
    config["datasets"]["voc07"]["models"] = ["vgg16_voc", "vgg19_voc"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, path, "-n")
    assert result.returncode != 0
    assert "datasets.voc07.models" in result.stderr and "'vgg19_voc'" in result.stderr


def test_a_method_restricted_to_models_runs_only_there(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["methods"]["gradcam"]["models"] = ["resnet"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, path, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = set(re.findall(r"results/[A-Za-z0-9_]+/([A-Za-z0-9_]+)/saliency/gradcam\.zarr", result.stdout))
    assert planned == {"resnet"}
