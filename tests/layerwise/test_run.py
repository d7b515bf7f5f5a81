"""The layer-wise cluster-map job on a tiny random CNN: documented store layout, deterministic."""

import numpy as np
import torch

from salbench.data.base import Items
from salbench.data.prepare import items_to_dataset
from salbench.layerwise.clusters import K_MAX
from salbench.models import build_model, save_checkpoint
from salbench.store import open_store, write_store

LAYERS = ["net.features.2", "net.features.6", "net.features.10", "net.features.14"]
WIDTHS = [16, 32, 64, 128]  # small_cnn's channels per explained layer


def _store_and_checkpoint(tmp_path, n=5, size=32, classes=3):
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(n, size, size, 3, generator=generator) * 255).to(torch.uint8).numpy()
    ids = [f"i{k}" for k in range(n)]
    items = Items(images=images, targets=np.arange(n) % classes, item_ids=ids, image_ids=ids)
    attrs = {"dataset": "noise", "classes": [f"c{k}" for k in range(classes)], "objects": 1, "manifest_sha256": "m"}
    write_store(items_to_dataset(items, attrs), tmp_path / "data.zarr")
    torch.manual_seed(1)
    save_checkpoint(build_model("small_cnn", classes).eval(), tmp_path / "model.pt", {"num_classes": classes})


def _run(tmp_path, out):
    from salbench.cli import main

    assert main(["layerwise", "--dataset", "noise", "--model", "cnn", "--data", str(tmp_path / "data.zarr"),
                 "--checkpoint", str(tmp_path / "model.pt"), "--items", "2", "--batch-size", "1", "--seed", "3",
                 "--device", "cpu", "--out", str(out)]) == 0
    return open_store(out)


def test_job_writes_the_documented_store_deterministically(tmp_path):
    _store_and_checkpoint(tmp_path)
    ds = _run(tmp_path, tmp_path / "a" / "clusters.zarr")
    assert ds["cluster_map"].dims == ("item", "layer", "cluster", "y", "x")
    assert ds["cluster_map"].shape == (2, 4, K_MAX, 32, 32) and ds["cluster_map"].dtype == np.float32
    assert ds["cluster_weight"].dims == ("item", "layer", "cluster") and ds["cluster_weight"].dtype == np.float32
    assert ds["cluster_size"].dtype == np.int16 and ds["n_kept_channels"].dims == ("item", "layer")
    assert ds["n_kept_channels"].dtype == np.int16
    assert [str(i) for i in ds["item"].values] == ["i0", "i1"] and ds["target"].values.tolist() == [0, 1]
    assert [str(v) for v in ds["layer"].values] == LAYERS and ds["cluster"].values.tolist() == list(range(K_MAX))
    assert ds["fmap_height"].values.tolist() == ds["fmap_width"].values.tolist() == [32, 16, 8, 4]  # 32 px input
    attrs = ds.attrs
    assert attrs["method"] == "inv_cluster_maps" and attrs["n_items"] == 2 and attrs["seed"] == 3
    assert attrs["layers"] == LAYERS and "0.9" in attrs["silhouette"] and attrs["params"]["k_range"] == [3, 8]
    assert len(attrs["checkpoint_sha256"]) == 64 and attrs["data_manifest_sha256"] == "m"
    assert "tsne" in attrs["params"] and "pca_components" in attrs["params"] and attrs["seconds_per_item"] > 0

    size, weight, maps = ds["cluster_size"].values, ds["cluster_weight"].values, ds["cluster_map"].values
    exists = size > 0
    assert exists[..., 0].all(), "every (item, layer) of a random CNN keeps at least one cluster"
    assert (exists[..., :-1] >= exists[..., 1:]).all(), "clusters fill the first slots"
    assert np.isnan(weight[~exists]).all() and np.isnan(maps[~exists]).all()
    assert np.isfinite(maps[exists]).all() and maps[exists].min() >= 0 and maps[exists].max() <= 1
    assert (np.nanmax(maps[exists], axis=(-2, -1)) == 1).all()
    w = np.where(exists, weight, 0)
    assert (np.diff(w, axis=-1)[exists[..., 1:]] <= 0).all(), "heaviest cluster first"
    assert (np.nansum(weight, axis=-1) <= 100 + 1e-3).all() and (weight[exists] > 0).all()
    kept = ds["n_kept_channels"].values
    assert (size.sum(axis=-1) <= kept).all() and (kept <= np.array(WIDTHS)).all()
    assert (ds["k_chosen"].values >= exists.sum(axis=-1)).all()

    again = _run(tmp_path, tmp_path / "b" / "clusters.zarr")
    for name in ("cluster_map", "cluster_weight", "cluster_size", "n_kept_channels", "k_chosen", "silhouette"):
        assert ds[name].values.tobytes() == again[name].values.tobytes(), name
    assert ds.attrs["content_sha256"] == again.attrs["content_sha256"]
