"""The real Snakefile end to end on a tiny config in a temporary folder; then reruns plan only what changed."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile

import pandas as pd
import pytest
import yaml
from workflow_runs import ROOT, TINY, planned_jobs, snakemake, without_sections

from salbench.store import open_store

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(600)]


def test_full_run_writes_report_and_stores(finished_run):
    workdir, _ = finished_run
    html = (workdir / "reports" / "tiny" / "index.html").read_text()
    for method in ("gradient", "gradcam", "random", "sobel", "centre"):
        for dataset in ("shapes", "shapes_pair"):
            assert (workdir / f"results/{dataset}/cnn/saliency/{method}.zarr").is_dir()
            assert (workdir / f"results/{dataset}/cnn/scores/{method}.parquet").is_file()
            assert (workdir / f"results/{dataset}/cnn/sanity/{method}.parquet").is_file()
        assert (workdir / f"results/shapes/cnn/sanity/{method}.zarr").is_dir()
        assert method in html
    assert 'id="sanity"' in html and "sanity_cascade.png" in html
    verdicts = pd.read_csv(workdir / "reports" / "tiny" / "tables" / "sanity" / "sanity.csv")
    assert {"model_sensitivity", "top_layer_sensitivity", "data_randomisation", "input_invariance",
            "input_sensitivity", "class_sensitivity", "random_logit", "emprt", "smprt"} == set(verdicts["check"])
    grid = open_store(workdir / "results/shapes/cnn/grid.zarr")
    assert grid.attrs["n"] == 2 and grid.attrs["seed"] == 42  # the tiny model may build no grid (allow_empty)
    assert grid.attrs["n_grids_built"] > 0 or grid.attrs["empty_reason"]
    for method in ("gradient", "gradcam", "random", "sobel", "centre"):
        table = pd.read_parquet(workdir / f"results/shapes/cnn/grid/{method}.parquet")
        assert len(table) == 4 * grid.attrs["n_grids_built"] and set(table["metric"]) <= {"grid_localisation_2x2"}
        assert not (workdir / f"results/shapes_pair/cnn/grid/{method}.parquet").exists()  # single-object data only
        kept = open_store(workdir / f"results/shapes/cnn/grid/{method}.zarr")  # the maps the report's examples show
        assert kept.sizes["item"] == min(3, grid.attrs["n_grids_built"]) and kept.attrs["method"] == method
    assert 'id="grid_examples"' in html
    assert (workdir / "reports/tiny/figures/grid_examples/grid_examples_shapes_cnn.svg").is_file()
    for rule in ("get_dataset", "prepare_dataset", "train_model", "train_permuted_model", "saliency", "score",
                 "sanity", "build_grid", "grid_localisation", "report"):
        assert any((workdir / "logs" / rule).rglob("*.log")), f"no log for rule {rule}"


def test_an_unsharded_study_completes_no_checkpoint(finished_run):
    """Without a sharded data set, prepare_dataset is a plain rule: Snakemake re-forms group jobs after a checkpoint
    completes, and with group-components above 1 (profiles/slurm) put jobs into two SLURM group jobs at once."""
    workdir, _ = finished_run
    first = min((workdir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()  # named by start time
    assert "Finished jobid" in first and "Updating checkpoint dependencies" not in first


def test_second_run_does_nothing(finished_run):
    workdir, config = finished_run
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {}
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_method_params_reruns_only_its_jobs(finished_run):
    workdir, config = finished_run
    changed = yaml.safe_load(config.read_text())
    changed["methods"]["gradcam"] = {"params": {"upsample": "nearest"}}
    edited = workdir / "config_edited.yaml"
    edited.write_text(yaml.safe_dump(changed))
    result = snakemake(workdir, edited, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert without_sections(planned_jobs(result)) == {"saliency": 2, "score": 2, "sanity_model_checks": 1,
                                                      "sanity_class_checks": 1, "grid_localisation": 1, "report": 1,
                                                      "all": 1}
    assert "method=gradcam" in result.stdout


def test_editing_one_method_module_reruns_only_its_jobs(finished_run, tmp_path):
    """Rules carry a hash of the library sources they use: with the package imported from an edited copy of
    src/, only the edited method's maps, sanity checks and scores (and the report) are planned."""
    workdir, config = finished_run
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(src)}
    unchanged = snakemake(workdir, config, "-n", env=env)
    assert unchanged.returncode == 0, unchanged.stderr[-2000:]
    assert planned_jobs(unchanged) == {}  # the hash is of content: another copy of the same sources changes nothing
    catalog = json.loads((ROOT / "workflow" / "schemas" / "catalog.json").read_text())
    module = src / "salbench" / catalog["methods"]["gradcam"]["module"]
    assert all(catalog["methods"][m]["module"] != catalog["methods"]["gradcam"]["module"]
               for m in yaml.safe_load(config.read_text())["methods"] if m != "gradcam")
    module.write_text(module.read_text() + "\n# an edit\n")
    result = snakemake(workdir, config, "-n", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert without_sections(planned_jobs(result)) == {"saliency": 2, "score": 2, "sanity_model_checks": 1,
                                                      "sanity_class_checks": 1, "grid_localisation": 1, "report": 1,
                                                      "all": 1}
    assert "method=gradcam" in result.stdout and not re.search(r"method=(?!gradcam)", result.stdout)


def test_unknown_method_fails_fast_with_one_line(tmp_path):
    broken = yaml.safe_load(TINY.read_text())
    broken["methods"]["gradcamm"] = {}
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump(broken))
    result = snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if "salbench:" in line]
    assert len(message) == 1
    assert "methods.gradcamm.method" in message[0] and "'gradcamm'" in message[0] and "gradcam" in message[0]
    assert not (tmp_path / "results").exists()


def test_snakemake_report_builds(finished_run):
    workdir, config = finished_run
    result = snakemake(workdir, config, "--report", str(workdir / "report.zip"))
    assert result.returncode == 0, result.stderr[-2000:]
    # a caption is reStructuredText: "|x|" there is a substitution, which renders as an error
    assert "Undefined substitution" not in result.stdout + result.stderr
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = {name.rsplit("/", 1)[-1] for name in archive.namelist()}
    assert {"grid_examples_shapes_cnn.png", "sanity_stages_shapes_cnn.png", "sanity_cascade.png",
            "rank_agreement.csv", "leaderboard.csv"} <= names
    assert "Undefined substitution" not in result.stderr
