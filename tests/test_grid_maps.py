"""The maps the grid localisation job keeps for the report's examples: exactly the maps it scored, checksummed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from test_grid import ColourModel, Hand, _colour_store, colour_items

from salbench.grid import GridSettings, build_grids, cell_fractions, score_and_keep, score_grids
from salbench.jobs import build_method
from salbench.models import build_model, load_checkpoint
from salbench.store import StoreError, open_store


@pytest.fixture(scope="module")
def grids():
    images, targets = colour_items()
    return build_grids(ColourModel(), ColourModel.spec, images, targets, GridSettings(enabled=True, n=2, n_grids=5,
                                                                                      seed=3), 16, "cpu")


@pytest.mark.parametrize("keep", [0, 2, 9])
def test_kept_maps_are_the_first_grids_maps_per_cell_class_with_unchanged_scores(grids, keep):
    method = Hand("cell")
    scores, kept = score_and_keep(method, ColourModel(), grids.images, grids.targets, batch_size=3, device="cpu",
                                  keep=keep)
    count, cells = grids.targets.shape
    shown = min(keep, count)
    assert kept.shape == (shown, cells, *grids.images.shape[-2:]) and kept.dtype == np.float32
    np.testing.assert_array_equal(scores, score_grids(method, ColourModel(), grids.images, grids.targets, 5, "cpu"))
    for g in range(shown):  # an independent per-pair call: the map for cell k's class on the whole grid
        x = grids.images[g : g + 1].float() / 255
        for k in range(cells):
            expected = method.attribute(ColourModel(), x, torch.tensor([grids.targets[g, k]]))[0].numpy()
            np.testing.assert_array_equal(kept[g, k], expected)
    if shown:  # the hand-made map is the explained cell's image: on the cell only, score 1
        assert kept[0].sum(axis=(1, 2)).min() > 0 and np.allclose(scores[:shown], 1.0)


def test_grid_score_job_stores_the_scored_maps_with_a_verified_checksum(tmp_path):
    from salbench.cli import main

    torch.manual_seed(1)
    model = build_model("small_cnn", 9).eval()
    _colour_store(tmp_path, model)
    common = ["--dataset", "noise", "--model", "cnn", "--checkpoint", str(tmp_path / "model.pt"), "--device", "cpu"]
    assert main(["build-grid", *common, "--data", str(tmp_path / "data.zarr"), "--out", str(tmp_path / "grid.zarr"),
                 "--settings", '{"n": 2, "n_grids": 5, "min_probability": 0.0, "seed": 7}']) == 0
    assert main(["grid-score", *common, "--method", "gradient", "--grids", str(tmp_path / "grid.zarr"), "--batch-size",
                 "3", "--out", str(tmp_path / "gradient.parquet"), "--maps-out", str(tmp_path / "gradient.zarr"),
                 "--keep-maps", "2"]) == 0
    grid, table = open_store(tmp_path / "grid.zarr"), pd.read_parquet(tmp_path / "gradient.parquet")
    store = open_store(tmp_path / "gradient.zarr")  # verifies the content checksum
    built = grid.attrs["n_grids_built"]
    assert built >= 2 and store["saliency"].shape == (2, 4, 32, 32)
    assert store.attrs["grid_store_sha256"] == grid.attrs["content_sha256"] and store.attrs["method"] == "gradient"
    np.testing.assert_array_equal(store["image"].values, grid["image"].values[:2])
    np.testing.assert_array_equal(store["cell_target"].values, grid["cell_target"].values[:2])
    values = table["value"].to_numpy().reshape(built, 4)
    np.testing.assert_array_equal(store["score"].values, values[:2])
    # the stored maps are the scored ones: their share inside each explained cell is the table's value
    maps = torch.from_numpy(store["saliency"].values).reshape(8, 32, 32)
    share = cell_fractions(maps, 2).numpy().reshape(2, 4, 4)
    np.testing.assert_allclose(np.einsum("gkk->gk", share), values[:2], rtol=0, atol=1e-12)
    # and equal an independent gradient call on the grid for the cell's class
    loaded = load_checkpoint(tmp_path / "model.pt", "cpu")
    method = build_method("gradient", "gradient", {}, loaded, "cnn", None)
    x = torch.from_numpy(grid["image"].values[1:2]).float() / 255
    expected = method.attribute(loaded, x.repeat(4, 1, 1, 1), torch.from_numpy(grid["cell_target"].values[1]))
    np.testing.assert_allclose(store["saliency"].values[1], expected.numpy(), rtol=1e-5, atol=1e-7)

    zarr.open_group(tmp_path / "gradient.zarr", mode="r+", zarr_format=3)["score"][0, 0] = 0.5  # damaged store
    with pytest.raises(StoreError, match="fails its checksum"):
        open_store(tmp_path / "gradient.zarr")


def test_no_maps_store_without_maps_out_and_an_empty_one_without_grids(tmp_path):
    from salbench.cli import main
    from salbench.jobs import build_grid

    torch.manual_seed(1)
    model = build_model("small_cnn", 9).eval()
    _colour_store(tmp_path, model)
    build_grid("noise", "cnn", tmp_path / "data.zarr", tmp_path / "model.pt",
               {"n": 3, "n_grids": 2, "min_probability": 0.999, "allow_empty": True}, "cpu", 16, tmp_path / "grid.zarr")
    common = ["--dataset", "noise", "--model", "cnn", "--method", "gradient", "--grids", str(tmp_path / "grid.zarr"),
              "--checkpoint", str(tmp_path / "model.pt"), "--device", "cpu"]
    assert main(["grid-score", *common, "--out", str(tmp_path / "a.parquet")]) == 0
    assert not (tmp_path / "a.zarr").exists()
    assert main(["grid-score", *common, "--out", str(tmp_path / "b.parquet"), "--maps-out",
                 str(tmp_path / "b.zarr")]) == 0
    store = open_store(tmp_path / "b.zarr")
    assert store["saliency"].shape == (0, 9, 48, 48) and "needs 9 classes" in store.attrs["empty_reason"]
