"""The tiny study through ``--executor slurm`` on a real one-node SLURM cluster on this machine, with profiles/slurm
(its GPU request dropped: the test machine has no GPU); every result equals the local run's. The SLURM run is the
session's ``plain_run`` (tests/workflow/conftest.py), which the worker's identity test compares too."""

from __future__ import annotations

import re

import pytest
from slurm_runs import gpu_rules, load_profile
from workflow_runs import assert_same_results, planned_jobs, result_paths


def test_profile_requests_one_gpu_for_every_gpu_rule():
    profile = load_profile()
    requested = {rule for rule, res in profile["set-resources"].items() if res.get("gpu") == 1}
    declared = gpu_rules()
    assert {"saliency", "sanity_model_checks", "sanity_class_checks", "score"} <= declared
    assert declared <= requested, f"rules with gpu=1 that the SLURM profile sends to no GPU: {declared - requested}"
    assert not any("gres" in res for res in profile["set-resources"].values())  # plugin 2.x: gpu or gres, not both
    assert {profile["groups"][rule] for rule in requested if rule in profile["groups"]} == {"gpu", "shard"}
    assert set(profile["group-components"]) == set(profile["groups"].values()) | {"report"}  # report.smk's group
    for res in [profile["default-resources"], *profile["set-resources"].values()]:
        assert "attempt" in res["runtime"] and "attempt" in res["mem_mb"]


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_study_on_slurm_equals_local_run(finished_run, plain_run):
    if plain_run.not_on_slurm:
        pytest.skip(plain_run.not_on_slurm)
    local, _ = finished_run
    workdir = plain_run.workdir
    log = plain_run.result.stdout + plain_run.result.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    jobs = sum(n for rule, n in planned_jobs(plain_run.result).items() if rule != "all")
    print(f"SLURM run: {plain_run.seconds:.0f} s, {jobs} jobs in {len(submitted)} SLURM jobs")
    assert 0 < len(submitted) <= jobs // 3, log[-3000:]  # groups: a few submissions for many jobs
    in_groups = [job for group_log in (workdir / "logs" / "slurm").glob("group_*/*.log")
                 for job in re.search(r"--target-jobs (.*?) --", group_log.read_text()).group(1).split()]
    assert len(in_groups) == len(set(in_groups)), "a job ran in two SLURM group jobs, or twice in one"
    assert any((workdir / "logs" / "slurm").rglob("*.log"))
    expected = result_paths(local)
    assert result_paths(workdir) == expected
    assert_same_results(local, workdir, expected)
    assert (workdir / "reports/tiny/index.html").is_file()
