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


CURVE_METRICS = {"deletion": {"metric": "deletion", "params": {"steps": 4}},
                 "road_morf": {"metric": "road_morf", "params": {"percentages": [25, 50]}},
                 "sparseness": {"metric": "sparseness"}}


def test_score_writes_the_curves_its_areas_reduce(study):
    root, model = study
    args = score_args(root, "gradcam", "--curves-out", str(root / "gradcam.curves.parquet"))
    args[args.index("--metrics") + 1] = json.dumps(CURVE_METRICS)
    assert main(args) == 0
    scores, curves = read_table(root / "gradcam.parquet"), read_table(root / "gradcam.curves.parquet")
    assert list(curves.columns) == ["dataset", "model", "method", "item", "target", "metric", "step", "fraction",
                                    "value"]
    assert list(dict.fromkeys(curves["metric"])) == ["deletion", "road_morf"]  # sparseness draws no curve
    assert (curves["method"] == "gradcam").all() and len(curves) == 3 * (5 + 2)
    reductions = {"deletion": lambda c, f: np.trapezoid(c, f, axis=1), "road_morf": lambda c, f: c.mean(axis=1)}
    for metric, reduce in reductions.items():
        part = curves[curves["metric"] == metric]
        matrix = part.pivot(index="item", columns="step", values="value")
        fractions = part.drop_duplicates("step")["fraction"].to_numpy()
        value = scores[scores["metric"] == metric].set_index("item")["value"].reindex(matrix.index)
        np.testing.assert_allclose(reduce(matrix.to_numpy(), fractions), value.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(curves[curves["metric"] == "deletion"]["fraction"][:5], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curves[curves["metric"] == "road_morf"]["fraction"][:2], [0.25, 0.5])
    # the curves are the metric's own, on the whole batch at once
    data, maps = open_store(root / "data.zarr"), open_store(root / "gradcam.zarr")
    batch = ScoringBatch(torch.from_numpy(data["image"].values).float() / 255,
                         torch.from_numpy(maps["saliency"].values), torch.from_numpy(data["target"].values),
                         model=model)
    _, expected = create_metric("deletion", steps=4).score_curves(batch)
    np.testing.assert_allclose(curves[curves["metric"] == "deletion"]["value"].to_numpy(), expected.ravel(),
                               rtol=1e-5, atol=1e-7)


def test_score_without_curve_metrics_writes_an_empty_curves_table(study):
    root, _ = study
    args = score_args(root, "centre", "--curves-out", str(root / "centre.curves.parquet"))
    args[args.index("--metrics") + 1] = json.dumps({"sparseness": {"metric": "sparseness"}})
    assert main(args) == 0
    curves = read_table(root / "centre.curves.parquet")
    assert curves.empty and list(curves.columns) == ["dataset", "model", "method", "item", "target", "metric", "step",
                                                     "fraction", "value"]
