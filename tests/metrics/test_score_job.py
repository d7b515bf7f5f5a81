"""``salbench score`` rebuilds the saliency method for metrics that re-run it (max-sensitivity)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from salbench.cli import main
from salbench.jobs import build_method, fetch_dataset, prepare_dataset, saliency
from salbench.metrics import ScoringBatch, create_metric
from salbench.models import build_model, save_checkpoint
from salbench.store import open_store, read_table, write_store

SHAPES = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 3, "seed": 0}
METRICS = {"max_sensitivity": {"metric": "max_sensitivity", "params": {"n_samples": 2}},
           "sparseness": {"metric": "sparseness"}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    torch.manual_seed(0)
    model = build_model("small_cnn", 6).eval()
    save_checkpoint(model, root / "cnn.pt", {"num_classes": 6})
    for method in ("gradient", "gradcam", "centre"):
        saliency("shapes", "cnn", method, method, {}, root / "data.zarr", root / "cnn.pt", 0, "cpu", 2,
                 root / f"{method}.zarr")
    return root, model


def score_args(root, method_id: str, *extra: str) -> list[str]:
    return ["score", "--dataset", "shapes", "--model", "cnn", "--method-id", method_id, "--metrics",
            json.dumps(METRICS), "--data", str(root / "data.zarr"), "--checkpoint", str(root / "cnn.pt"),
            "--maps", str(root / f"{method_id}.zarr"), "--device", "cpu", "--batch-size", "2",
            "--out", str(root / f"{method_id}.parquet"), *extra]


@pytest.mark.parametrize("method", ["gradient", "gradcam", "centre"])
def test_score_reruns_the_method_for_max_sensitivity(study, method):
    root, model = study
    assert main(score_args(root, method, "--method", method, "--params", "{}", "--seed", "0")) == 0
    table = pd.read_parquet(root / f"{method}.parquet")
    values = table[table["metric"] == "max_sensitivity"]["value"].to_numpy()
    data, maps = open_store(root / "data.zarr"), open_store(root / f"{method}.zarr")
    images = torch.from_numpy(data["image"].values).float() / 255
    batch = ScoringBatch(images, torch.from_numpy(maps["saliency"].values), torch.from_numpy(data["target"].values),
                         model=model, method=build_method(method, method, {}, model, "cnn"))
    expected = create_metric("max_sensitivity", n_samples=2).score(batch)
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    assert len(values) == 3 and (values == 0).all() == (method == "centre")
    assert set(table["metric"]) == set(METRICS)


def test_score_without_the_method_names_the_metric_that_needs_it(study):
    root, _ = study
    with pytest.raises(ValueError, match="'max_sensitivity' re-runs the saliency method"):
        main(score_args(root, "gradient"))


def test_score_records_the_mask_metrics_it_skips(study):
    root, _ = study
    data = open_store(root / "data.zarr").load()
    data.attrs["has_masks"] = False
    write_store(data, root / "nomasks.zarr")
    metrics = {"pointing_game": {"metric": "pointing_game"}, "sparseness": {"metric": "sparseness"}}
    args = score_args(root, "gradient")
    args[args.index("--metrics") + 1] = json.dumps(metrics)
    args[args.index("--data") + 1] = str(root / "nomasks.zarr")
    args[args.index("--out") + 1] = str(root / "nomasks.parquet")
    assert main(args) == 0
    table = read_table(root / "nomasks.parquet")
    assert set(table["metric"]) == {"sparseness"}
    (skipped,) = set(table["skipped_metrics"])
    reasons = json.loads(skipped)
    assert list(reasons) == ["pointing_game"] and "no ground-truth masks" in reasons["pointing_game"]
    assert main(score_args(root, "gradient", "--method", "gradient", "--params", "{}")) == 0
    assert set(read_table(root / "gradient.parquet")["skipped_metrics"]) == {"{}"}
