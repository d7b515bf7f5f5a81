"""Report sections as workflow rules: a change reruns only the sections that read it, and the page assembly.

Each test works on a copy of the finished tiny run (modification times kept), so the shared run stays as it was.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from workflow_runs import ROOT, planned_jobs, snakemake

from salbench.report.sections import get_section, list_sections

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(600)]

#: the sections a change of the score tables or the metrics' config reaches
SCORE_GROUPS = {"scores", "grids", "curves"}


def _copy(finished_run, tmp_path):
    workdir, config = finished_run
    copy = tmp_path / "study"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete"))
    return copy, copy / config.name


def _section_rules(jobs: dict[str, int]) -> set[str]:
    return {rule.removeprefix("section_") for rule in jobs if rule.startswith("section_")}


def _reached(start: set[str]) -> set[str]:
    """``start`` and every section that needs one of them, transitively."""
    reached = set(start)
    while True:
        more = {n for n in list_sections() if set(get_section(n).needs) & reached} - reached
        if not more:
            return reached
        reached |= more


def test_editing_a_claim_reruns_only_the_claims_section_and_the_page(finished_run, tmp_path):
    workdir, config = _copy(finished_run, tmp_path)
    claims = workdir / "config" / "claims.yaml"  # the workdir's claims file wins over the shipped one
    claims.parent.mkdir()
    shutil.copyfile(ROOT / "config" / "claims.yaml", claims)
    expected = {"section_claims": 1, **{f"section_{n}": 1 for n in _reached({"claims"}) - {"claims"}},
                "report": 1, "all": 1}
    plan = snakemake(workdir, config, "-n")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert planned_jobs(plan) == expected
    run = snakemake(workdir, config, "--allowed-rules", *(r for r in expected if r != "all"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert planned_jobs(snakemake(workdir, config, "-n")) == {}
    text = claims.read_text()
    first = next(line for line in text.splitlines() if "tolerance:" in line)
    claims.write_text(text.replace(first, first.replace("tolerance:", "tolerance: 0.5 #"), 1))
    edited = snakemake(workdir, config, "-n")
    assert edited.returncode == 0, edited.stderr[-2000:]
    assert planned_jobs(edited) == expected


def test_editing_a_metrics_params_reruns_its_scores_and_the_sections_that_read_them(finished_run, tmp_path):
    workdir, config = _copy(finished_run, tmp_path)
    changed = yaml.safe_load(config.read_text())
    changed["metrics"]["deletion"]["params"]["steps"] = 5
    config.write_text(yaml.safe_dump(changed))
    plan = snakemake(workdir, config, "-n")
    assert plan.returncode == 0, plan.stderr[-2000:]
    jobs = planned_jobs(plan)
    assert jobs["score"] == 10 and jobs["report"] == 1  # 5 methods x 2 data sets
    assert not {"saliency", "sanity_model_checks", "sanity_class_checks", "grid_localisation", "train_model"} & set(jobs)
    readers = {n for n in list_sections() if SCORE_GROUPS & set(get_section(n).inputs)
               or {"metrics", "*"} & set(get_section(n).config_keys)}
    assert _section_rules(jobs) == _reached(readers)
    assert "fidelity" not in _section_rules(jobs)  # reads neither scores nor the metrics
