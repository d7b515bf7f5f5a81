"""Two runs on the CPU give bitwise-identical maps and scores (separate processes, different hash seeds);
on a GPU, two runs on the same GPU do too (skipped without one)."""

from __future__ import annotations

import pytest
import torch

from salbench.store import CHECKSUM_ATTR, open_store, read_table

from .helpers import METHODS, assert_same_results, child_env, run_jobs, study_jobs


@pytest.mark.slow
def test_two_cpu_runs_are_bitwise_identical(study, reference, tmp_path):
    result = run_jobs(study_jobs(study, tmp_path), env=child_env(PYTHONHASHSEED="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    paths = [f"saliency/{m}.zarr" for m in METHODS] + [f"scores/{m}.parquet" for m in METHODS]
    assert_same_results(reference, tmp_path, paths)
    for method in METHODS:  # the comparison is not vacuous: maps differ between methods, scores are numbers
        assert read_table(tmp_path / f"scores/{method}.parquet")["value"].notna().any()
    checksums = {open_store(tmp_path / p).attrs[CHECKSUM_ATTR] for p in paths if p.endswith(".zarr")}
    assert len(checksums) == len(METHODS)


def test_determinism_settings_are_recorded(reference):
    attrs = open_store(reference / "saliency/smoothgrad.zarr").attrs
    settings = attrs["provenance"]["determinism"]
    # torch's deterministic-algorithms switch is turned on where there is a GPU (CPU kernels need none)
    assert settings["deterministic_algorithms"] is torch.cuda.is_available() and settings["cudnn_deterministic"] is True
    assert settings["cudnn_benchmark"] is False and settings["cublas_workspace_config"] == ":4096:8"
    assert attrs["nonfinite_items"] == []


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_gpu_runs_are_bitwise_identical(study, tmp_path):
    for run in ("a", "b"):
        result = run_jobs(study_jobs(study, tmp_path / run, device="cuda"))
        assert result.returncode == 0, result.stderr[-3000:]
    paths = [f"saliency/{m}.zarr" for m in METHODS] + [f"scores/{m}.parquet" for m in METHODS]
    assert_same_results(tmp_path / "a", tmp_path / "b", paths)
    assert open_store(tmp_path / "a/saliency/gradient.zarr").attrs["device"] == "cuda"
