"""The real Snakefile end to end on a tiny config in a temporary folder; then reruns plan only what changed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TINY = Path(__file__).with_name("config_tiny.yaml")

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(600)]


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table (empty when nothing is to be done)."""
    counts = {}
    in_table = False
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("study")
    config = workdir / "config.yaml"
    config.write_text(TINY.read_text())
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


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
    verdicts = pd.read_csv(workdir / "reports" / "tiny" / "sanity_verdicts.csv")
    assert {"model_sensitivity", "data_randomisation", "input_invariance", "input_sensitivity", "class_sensitivity",
            "random_logit"} == set(verdicts["check"])
    for rule in ("get_dataset", "prepare_dataset", "train_model", "train_permuted_model", "saliency", "score",
                 "sanity", "report"):
        assert any((workdir / "logs" / rule).rglob("*.log")), f"no log for rule {rule}"


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
    assert planned_jobs(result) == {"saliency": 2, "score": 2, "sanity_model_checks": 1, "sanity_class_checks": 1,
                                    "report": 1, "all": 1}
    assert "method=gradcam" in result.stdout


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
    assert (workdir / "report.zip").stat().st_size > 0
