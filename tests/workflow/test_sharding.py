"""Sharding end to end: the tiny study with its data sets split into shards plans one saliency and one score job
per shard, and gathers maps, scores, checks and report tables identical to an unsharded run's."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from workflow_runs import RUN_ATTRS, ROOT, TINY, assert_same_results, planned_jobs, result_paths, snakemake

from salbench.shards import shard_ranges, store_size
from salbench.store import open_store

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(3000)]

BATCH_SIZE = 2
SHARD_SIZES = {"shapes": 2 * BATCH_SIZE, "shapes_pair": BATCH_SIZE}
METHODS = ("gradient", "gradcam", "random")  # a gradient, a layer method, a control seeded by item content


def test_sharded_run_equals_unsharded_run(tmp_path):
    # Both runs import the library from one copy of src/, so that rule params' source hashes cannot change between
    # them (an edit to the working tree meanwhile would rerun the data and models, and hide the shards from -n).
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    settings = yaml.safe_load(TINY.read_text())
    settings["batch_size"] = BATCH_SIZE
    settings["methods"] = {m: settings["methods"][m] for m in METHODS}
    del settings["grid"]  # grids are per (data set, model), never sharded
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.yaml").write_text(yaml.safe_dump(settings))
    result = snakemake(plain, plain / "config.yaml", timeout=1500, env=env)
    assert result.returncode == 0, result.stderr[-4000:]

    # The same study sharded, on the unsharded run's data and models: every map, score, check and table anew
    sharded = tmp_path / "sharded"
    shutil.copytree(plain, sharded, symlinks=True)
    for stage in ("saliency", "scores", "sanity"):
        for folder in sharded.glob(f"results/*/*/{stage}"):
            shutil.rmtree(folder)
    shutil.rmtree(sharded / "results" / "tables")
    shutil.rmtree(sharded / "reports")
    for dataset, size in SHARD_SIZES.items():
        settings["datasets"][dataset]["shard_size"] = size
    (sharded / "config.yaml").write_text(yaml.safe_dump(settings))
    shards = {d: shard_ranges(store_size(sharded / f"results/{d}/data.zarr"), size) for d, size in SHARD_SIZES.items()}
    assert all(len(ranges) >= 2 for ranges in shards.values()), shards

    plan = snakemake(sharded, sharded / "config.yaml", "-n", env=env)
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = planned_jobs(plan)
    n_shards = sum(len(ranges) for ranges in shards.values())
    assert jobs["saliency_shard"] == jobs["score_shard"] == len(METHODS) * n_shards  # one job per (method, shard)
    assert jobs["gather_saliency"] == jobs["gather_scores"] == len(METHODS) * len(SHARD_SIZES)
    assert "saliency" not in jobs and "score" not in jobs

    result = snakemake(sharded, sharded / "config.yaml", timeout=1500, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    expected = result_paths(plain)
    shard_files = [p for p in result_paths(sharded) if "/shards/" in p]
    assert len(shard_files) == 3 * len(METHODS) * n_shards  # a store, scores and curves per (method, shard)
    assert sorted(set(result_paths(sharded)) - set(shard_files)) == expected
    assert any("/saliency/" in p for p in expected) and any("/scores/" in p for p in expected)
    # maps bitwise, score and sanity tables exactly, report tables; the overview quotes each run's own config text
    assert_same_results(plain, sharded, expected, ignored=RUN_ATTRS | {"config_yaml"})

    attrs = open_store(sharded / "results/shapes/cnn/saliency/gradient.zarr").attrs
    assert [(s["start"], s["stop"]) for s in attrs["shards"]] == shards["shapes"]
    rerun = snakemake(sharded, sharded / "config.yaml", "-n", env=env)
    assert rerun.returncode == 0 and planned_jobs(rerun) == {}
