"""MDM's CUB study and Adebayo's ImageNet study plan: downloaded and manual data, supplied and fetched models."""

from __future__ import annotations

import pytest
from workflow_runs import ROOT, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow]


def test_mdm_cub_plans_without_training_or_sanity(tmp_path):
    result = snakemake(tmp_path, ROOT / "config" / "mdm_cub.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["get_dataset"] == 1 and jobs["prepare_dataset"] == 1  # sharded: the rest follows the checkpoint
    assert not {"train_model", "train_permuted_model", "sanity_model_checks"} & set(jobs)


def test_adebayo_imagenet_plans_fetched_models_and_no_permuted_training(tmp_path):
    result = snakemake(tmp_path, ROOT / "config" / "adebayo_imagenet.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["fetch_model"] == 4 and jobs["get_dataset"] == 2  # two CNNs and two ViTs
    # data sets x (CNNs x their 11 methods + ViTs x their 14: no guided backprop, the transformer methods)
    assert jobs["sanity_model_checks"] == 2 * (2 * 11 + 2 * 14)
    assert not {"train_model", "train_permuted_model"} & set(jobs)  # pretrained: no data-randomisation model
