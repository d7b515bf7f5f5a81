"""``salbench meta-evaluate``: both tables of one (data set, model) on a tiny shapes store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salbench.cli import main
from salbench.jobs import fetch_dataset, prepare_dataset
from salbench.metrics.meta_evaluation import META_COLUMNS
from salbench.models import build_model, save_checkpoint
from salbench.report.resilience import RESILIENCE_COLUMNS
from salbench.store import read_table

SHAPES = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 6, "seed": 0}
METHODS = {m: {"method": m, "params": {}} for m in ("gradient", "input_x_gradient", "gradcam")}
METRICS = {"deletion": {"metric": "deletion", "params": {"steps": 4}}, "sparseness": {"metric": "sparseness"},
           "pointing_game": {"metric": "pointing_game", "params": {}}}
SETTINGS = {"items": 6, "iterations": 1, "perturbations": 2, "seed": 0,
            "grids": {"deletion": {"steps": [2, 4], "baseline": ["mean", "black"]}, "pointing_game": {"tolerance_px": [0, 30]}}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    torch.manual_seed(0)
    save_checkpoint(build_model("small_cnn", 6).eval(), root / "cnn.pt", {"num_classes": 6})
    args = ["meta-evaluate", "--dataset", "shapes", "--model", "cnn", "--methods", json.dumps(METHODS),
            "--metrics", json.dumps(METRICS), "--settings", json.dumps(SETTINGS), "--data", str(root / "data.zarr"),
            "--checkpoint", str(root / "cnn.pt"), "--device", "cpu", "--batch-size", "4",
            "--out", str(root / "meta.parquet"), "--resilience-out", str(root / "resilience.parquet")]
    assert main(args) == 0
    return root


def test_meta_table_has_a_row_per_metric_and_kind(study):
    table = read_table(study / "meta.parquet")  # checksum verified
    assert list(table.columns) == ["dataset", "model", *META_COLUMNS]
    assert sorted(zip(table["metric"], table["kind"])) == sorted((m, k) for m in METRICS for k in ("input", "model"))
    assert (table["n_items"] == 6).all() and (table["n_methods"] == 3).all()
    for subset in ("subset_nr_mean", "subset_ar_mean", "subset_nr_min", "subset_ar_min"):
        assert table[subset].between(0, 6).all()
    assert table.loc[table["metric"] == "deletion", "higher_is_better"].eq(False).all()


def test_the_report_section_renders_the_jobs_tables(study, tmp_path):
    from report.sections.section_helpers import render, run

    config = {"study": "t", "methods": {m: {"method": m} for m in METHODS}}
    _, context = run("metric_trust", tmp_path, config, {"meta": [study / "meta.parquet", study / "resilience.parquet"]})
    html = render("metric_trust", context, config)
    assert html.count("<tr><td><code>") == len(METRICS) * 2  # a row per metric and kind
    assert html.count('<tr><td><a class="method"') == 3 * 2  # a row per method and grid (deletion, pointing game)
    assert "Ranks over the settings of <code>deletion</code> (4 settings" in html


def test_resilience_table_ranks_the_methods_over_each_grid(study):
    table = read_table(study / "resilience.parquet")
    assert list(table.columns) == RESILIENCE_COLUMNS
    assert set(table["metric"]) == {"deletion", "pointing_game"}  # sparseness declares no grid
    deletion = table[table["metric"] == "deletion"]
    assert set(deletion["method"]) == set(METHODS) and (deletion["n_settings"] == 4).all()
    assert np.isclose(deletion["mrr"].sum(), 1 + 2 + 3)  # ranks of 3 methods always sum to 6
    assert ((deletion["rank_min"] <= deletion["mrr"]) & (deletion["mrr"] <= deletion["rank_max"])).all()


def test_config_checks_name_the_key():
    from salbench.config import load_catalog
    from salbench.meta_config import check_meta_config, check_meta_grid_values, grid_settings, setting_label
    from salbench.params import ConfigError

    config = {"methods": METHODS, "models": {"cnn": {}}, "datasets": {"shapes": {}}, "metrics": METRICS,
              "meta_evaluation": {"methods": list(METHODS), "grids": SETTINGS["grids"]}}
    check_meta_config(config, load_catalog())
    for section, message in ((dict(methods=["gradient", "nope"]), r"'meta_evaluation\.methods': 'nope'"),
                             (dict(methods=["gradient"]), r"'meta_evaluation\.methods': .*at least 2 methods"),
                             (dict(methods=list(METHODS), grids={"deletion": {"tolerance_px": [1]}}),
                              r"'meta_evaluation\.grids\.deletion\.tolerance_px' is not a parameter of 'deletion'"),
                             (dict(methods=list(METHODS), grids={"insertion": {"steps": [1]}}),
                              r"'meta_evaluation\.grids': 'insertion'")):
        with pytest.raises(ConfigError, match=message):
            check_meta_config({**config, "meta_evaluation": section}, load_catalog())
    check_meta_grid_values(config)
    refused = {**config, "meta_evaluation": {"methods": list(METHODS), "grids": {"deletion": {"baseline": ["blue"]}}}}
    with pytest.raises(ConfigError, match=r"'meta_evaluation\.grids\.deletion' \(baseline=\"blue\"\)"):
        check_meta_grid_values(refused)
    assert [setting_label(s) for s in grid_settings({"steps": [2, 4], "baseline": ["mean"]})] == [
        'steps=2,baseline="mean"', 'steps=4,baseline="mean"']


def test_no_section_needs_no_methods_and_schema_defaults_are_the_jobs():
    from salbench.config import load_catalog, load_schema
    from salbench.meta_config import check_meta_config
    from salbench.meta_jobs import DEFAULTS

    check_meta_config({"methods": {}, "models": {}, "datasets": {}, "metrics": {}}, load_catalog())
    schema = load_schema()["properties"]["meta_evaluation"]["properties"]
    assert {key: schema[key]["default"] for key in DEFAULTS} == DEFAULTS
