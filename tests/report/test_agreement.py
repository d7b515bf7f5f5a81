"""Implementation agreement on hand-made maps and stores: rho, differences, measured causes, protocols."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from salbench.methods import METHODS, create_method
from salbench.models.base import ModelSpec, NormalizedClassifier
from salbench.report import agreement
from salbench.store import object_strings, write_store

N, SIZE, GRID = 6, 16, 4


def layer_maps(seed: int = 0) -> np.ndarray:
    """Signed ``[N, GRID, GRID]`` layer maps."""
    return np.random.default_rng(seed).normal(size=(N, GRID, GRID))


def up(maps: np.ndarray, mode: str) -> np.ndarray:
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(torch.from_numpy(maps)[:, None], size=(SIZE, SIZE), mode=mode, **kwargs)[:, 0].numpy()


def test_identical_maps_agree_perfectly():
    base = up(np.maximum(layer_maps(), 0), "bilinear")
    np.testing.assert_allclose(agreement.map_rho(base, base.copy()), 1.0)
    np.testing.assert_allclose(agreement.max_abs_difference(base, base.copy()), 0.0)
    table, cause, gap = agreement.decompose(base, base.copy())
    assert cause == [] and gap == 0.0 and table.loc[table["steps"] == "none", "gap"].item() == 0.0


def test_reversed_maps_have_rho_minus_one():
    base = np.random.default_rng(1).random((N, SIZE, SIZE))
    np.testing.assert_allclose(agreement.map_rho(base, -base), -1.0)
    np.testing.assert_allclose(agreement.map_rho(base, 1 - base), -1.0)
    np.testing.assert_allclose(agreement.max_abs_difference(base, 1 - base), 1.0)


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 4, size=(3, 50)).astype(float), rng.random((3, 50))
    expected = [spearmanr(a[i], b[i]).statistic for i in range(3)]
    np.testing.assert_allclose(agreement.map_rho(a, b), expected)
    assert np.isnan(agreement.map_rho(np.ones((1, 9)), b[:1, :9])).all()


def test_block_size_finds_nearest_upsampling():
    assert agreement.block_size(up(layer_maps(), "nearest")) == SIZE // GRID
    assert agreement.block_size(up(layer_maps(), "bilinear")) == 1
    np.testing.assert_allclose(agreement.upsample_blocks(up(layer_maps(), "nearest"), 4, "bilinear"),
                               up(layer_maps(), "bilinear"), atol=1e-12)


def test_cause_is_upsampling_when_only_upsampling_differs():
    layer = np.abs(layer_maps())
    table, cause, gap = agreement.decompose(up(layer, "bilinear"), up(layer, "nearest"))
    assert cause == ["upsampling"] and gap < 1e-9
    assert table.loc[table["steps"] == "none", "gap"].item() > 0.05
    assert table.loc[table["steps"] == "normalisation", "gap"].item() > 0.05


def test_cause_is_relu_and_upsampling_for_a_captum_style_gradcam():
    layer = layer_maps()
    base = up(np.maximum(layer, 0), "bilinear")  # ours: ReLU, then bilinear
    variant = up(layer, "nearest")               # captum's defaults: signed, nearest
    table, cause, gap = agreement.decompose(base, variant)
    assert cause == ["relu", "upsampling"] and gap < 1e-9
    for alone in ("relu", "upsampling"):
        assert table.loc[table["steps"] == alone, "gap"].item() > 0.05


def test_cause_is_normalisation_for_a_min_max_scaled_copy():
    base = up(np.abs(layer_maps()), "bilinear") * 3.0
    _, cause, gap = agreement.decompose(base, agreement.unit_scaled(base))
    assert cause == ["normalisation"] and gap < 1e-9


def test_unexplained_gap_is_left_as_residual():
    base = up(np.abs(layer_maps(0)), "bilinear")
    other = up(np.abs(layer_maps(5)), "bilinear")
    _, cause, gap = agreement.decompose(base, other)
    assert gap > 0.1 and cause == []  # min-max scaling shrinks the gap a little: not a cause


def test_a_partial_cause_is_named_when_it_closes_most_of_the_gap():
    base = up(np.abs(layer_maps(0)), "bilinear")
    nudged = base + 0.05 * up(np.abs(layer_maps(5)), "bilinear")  # a small unexplained difference ...
    _, cause, gap = agreement.decompose(base, 10 * nudged)         # ... under a large scale difference
    assert cause == ["normalisation"] and agreement.GAP_TOLERANCE < gap < 0.2


def maps_store(root, method: str, name: str, maps: np.ndarray, params: dict) -> object:
    items = object_strings([f"i{k}" for k in range(len(maps))])
    ds = xr.Dataset({"saliency": (("item", "y", "x"), maps.astype(np.float32))},
                    coords={"item": items, "target": ("item", np.arange(len(maps)) % 2)},
                    attrs={"dataset": "shapes", "model": "cnn", "method": method, "method_name": name,
                           "method_params": params})
    return write_store(ds, root / f"{method}.zarr")


def scores_table(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (method, metric), vals in values.items():
        for k, v in enumerate(vals):
            rows.append({"dataset": "shapes", "model": "cnn", "method": method, "item": f"i{k}",
                         "target": k % 2, "metric": metric, "value": v})
    return pd.DataFrame(rows)


def test_analyse_stores_pairs_variants_with_their_base(tmp_path):
    layer = layer_maps()
    stores = [
        maps_store(tmp_path, "gradcam", "gradcam", up(np.maximum(layer, 0), "bilinear"),
                   {"layer": "net.relu3", "upsample": "bilinear"}),
        maps_store(tmp_path, "gradcam@captum", "gradcam@captum", up(layer, "nearest"),
                   {"layer": "net.relu3", "relu_attributions": False, "interpolate_mode": "nearest"}),
        maps_store(tmp_path, "gradient", "gradient", np.random.default_rng(3).random((N, SIZE, SIZE)), {}),
    ]
    scores = scores_table({("gradcam", "sparseness"): [0.5] * N, ("gradcam@captum", "sparseness"): [0.2] * N,
                           ("gradient", "sparseness"): [0.1] * N})
    pairs = agreement.variant_pairs(stores)
    assert [(p[0].name, p[1].name, p[2]) for p in pairs] == [("gradcam.zarr", "gradcam@captum.zarr", "gradcam")]
    result = agreement.analyse(stores, scores)
    row = result.pairs.iloc[0]
    assert (row["base"], row["variant"], row["library"], row["n_items"]) == ("gradcam", "gradcam@captum", "captum", N)
    assert row["cause"] == "relu, upsampling" and row["aligned_gap"] < 1e-6 and row["residual"] == ""
    assert row["rho_median"] < 0.99 and row["aligned_rho_median"] == pytest.approx(1.0)
    assert "relu" in row["documented"]
    diff = result.scores.set_index("metric").loc["sparseness"]
    assert diff["difference"] == pytest.approx(-0.3) and diff["n_items"] == N


def test_no_variants_give_an_empty_analysis(tmp_path):
    stores = [maps_store(tmp_path, "gradcam", "gradcam", up(np.abs(layer_maps()), "bilinear"), {}),
              maps_store(tmp_path, "other", "lrp_epsilon@zennit", up(np.abs(layer_maps()), "bilinear"), {})]
    assert agreement.variant_pairs(stores) == []  # a variant whose base did not run is not compared
    result = agreement.analyse(stores, scores_table({("gradcam", "sparseness"): [0.5] * N}))
    assert result.empty and result.pairs.empty and result.protocols.empty


def test_a_residual_is_named_from_the_documented_differences(tmp_path):
    base = up(np.abs(layer_maps(0)), "bilinear")
    stores = [maps_store(tmp_path, "guided_backprop", "guided_backprop", base, {"channel_reduction": "max_abs"}),
              maps_store(tmp_path, "gbp_z", "guided_backprop@zennit", up(np.abs(layer_maps(7)), "bilinear"),
                         {"channel_reduction": "sum"})]
    row = agreement.analyse(stores, scores_table({})).pairs.iloc[0]
    assert row["base"] == "guided_backprop" and row["variant"] == "gbp_z"
    assert row["aligned_gap"] > agreement.GAP_TOLERANCE and row["residual"] == "channel_reduction"


def test_protocol_difference_splits_into_aggregation_and_hit_rule():
    # targets alternate 0, 1; TorchRay hits 1,1,1,0,1,0 -> class 0: 3/3, class 1: 1/3 -> class mean 2/3 = item mean;
    # Quantus hits 0,1,0,0,1,0 -> item mean 1/3; the difference 1/3 is all hit rule
    scores = scores_table({("m", "pointing_game"): [1, 1, 1, 0, 1, 0],
                           ("m", "pointing_game_quantus"): [0, 1, 0, 0, 1, 0]})
    row = agreement.protocol_agreement(scores).iloc[0]
    assert row["torchray"] == pytest.approx(2 / 3) and row["quantus"] == pytest.approx(1 / 3)
    assert row["aggregation"] == pytest.approx(0.0) and row["hit_rule"] == pytest.approx(1 / 3)
    assert row["hit_agreement"] == pytest.approx(4 / 6) and row["cause"] == "hit rule"
    # unbalanced classes make the aggregation matter: hits 1 on class 0 only, 4 items of class 0, 1 of class 1
    hits = [1, 0, 1, 1, 1]
    unbalanced = scores_table({("m", "pointing_game"): hits, ("m", "pointing_game_quantus"): hits})
    unbalanced["target"] = [0, 1, 0, 0, 0] * 2  # both metrics
    row = agreement.protocol_agreement(unbalanced).iloc[0]
    assert row["aggregation"] == pytest.approx(0.5 - 0.8) and row["hit_rule"] == 0 and row["cause"] == "aggregation"


def tiny_model() -> NormalizedClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(conv1=nn.Conv2d(3, 6, 3, padding=1), relu1=nn.ReLU(), pool=nn.MaxPool2d(2),
                                    conv2=nn.Conv2d(6, 6, 3, padding=1), relu2=nn.ReLU(),
                                    gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(6, 3)))
    spec = ModelSpec(arch="t", input_size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), target_layer="net.relu2")
    return NormalizedClassifier(net, spec).eval()


def test_rerun_decomposition_finds_the_channel_reduction_of_guided_backprop():
    model = tiny_model()
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    table = agreement.decompose_by_rerun(create_method("guided_backprop"), METHODS.get("guided_backprop@zennit"),
                                         model, x, torch.tensor([0, 1, 2])).set_index("causes")
    assert table.loc["none", "gap"] > 0.05
    assert table.loc["channel_reduction", "gap"] < 1e-5


def test_rerun_decomposition_of_captum_gradcam_needs_both_steps():
    model = tiny_model()
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    ours = create_method("gradcam", layer="net.relu2")
    table = agreement.decompose_by_rerun(ours, METHODS.get("gradcam@captum"), model, x,
                                         torch.tensor([0, 1, 2])).set_index("causes")
    assert table.loc["relu+upsampling", "gap"] < 1e-5
    assert min(table.loc["relu", "gap"], table.loc["upsampling", "gap"], table.loc["none", "gap"]) > 1e-3


def test_analyse_reruns_variants_when_the_model_is_given(tmp_path):
    from salbench.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("small_cnn", 3).eval()
    checkpoint = tmp_path / "cnn.pt"
    save_checkpoint(model, checkpoint, {"num_classes": 3})
    size = model.spec.input_size
    images = np.random.default_rng(0).integers(0, 256, size=(4, 3, size, size), dtype=np.uint8)
    targets = np.array([0, 1, 2, 0])
    items = object_strings([f"i{k}" for k in range(4)])
    data = write_store(xr.Dataset({"image": (("item", "channel", "y", "x"), images)},
                                  coords={"item": items, "target": ("item", targets)}, attrs={"dataset": "shapes"}),
                       tmp_path / "data.zarr")
    x, t = torch.from_numpy(images).float() / 255, torch.from_numpy(targets)
    stores = []
    for name in ("guided_backprop", "guided_backprop@zennit"):
        method = create_method(name)
        stores.append(maps_store(tmp_path, name, name, method.attribute(model, x, t).numpy(), method.params))
    plain = agreement.analyse(stores, scores_table({})).pairs.iloc[0]
    assert plain["rerun_cause"] == "" and np.isnan(plain["rerun_gap"])
    assert plain["residual"] == "channel_reduction"  # post-processing cannot undo a channel reduction ...
    result = agreement.analyse(stores, scores_table({}), checkpoints={("shapes", "cnn"): checkpoint},
                               data_stores={"shapes": data})
    row = result.pairs.iloc[0]
    assert row["rerun_cause"] == "channel_reduction" and row["rerun_gap"] < 1e-5  # ... re-running measures it
    reruns = result.reruns.set_index("causes")
    assert reruns.loc["none", "gap"] > 0.05 and (reruns["n_items"] == 4).all()


def test_hit_rule_splits_into_tolerance_and_ties_on_the_maps(tmp_path):
    from salbench.metrics import create_metric
    from salbench.metrics.base import ScoringBatch

    masks = np.zeros((4, SIZE, SIZE), dtype=bool)
    masks[:, 4:8, 4:8] = True
    maps = np.zeros((4, SIZE, SIZE), dtype=np.float32)
    maps[0, 5, 5] = 1     # the maximum on the mask: a hit for every protocol
    maps[1, 5, 8] = 1     # one pixel off the mask: a hit only within TorchRay's tolerance (15 px at 224 = 1.07 px)
    maps[2, 0, 15] = 1    # tied maxima, the first far off the mask, the second on it: a hit only for Quantus
    maps[2, 6, 6] = 1
    maps[3, 15, 15] = 1   # far off: a miss for every protocol
    items = object_strings([f"i{k}" for k in range(4)])
    data = write_store(xr.Dataset({"mask": (("item", "y", "x"), masks)},
                                  coords={"item": items, "target": ("item", np.zeros(4, dtype=int))}),
                       tmp_path / "data.zarr")
    store = maps_store(tmp_path, "m", "gradient", maps, {})
    batch = ScoringBatch(images=None, maps=torch.from_numpy(maps), targets=torch.zeros(4, dtype=torch.long),
                         masks=torch.from_numpy(masks))
    values = {("m", metric): create_metric(metric).score(batch).tolist()
              for metric in ("pointing_game", "pointing_game_quantus")}
    assert values[("m", "pointing_game")] == [1, 1, 0, 0] and values[("m", "pointing_game_quantus")] == [1, 0, 1, 0]
    scores = scores_table(values).assign(target=0)
    plain = agreement.analyse([store], scores).protocols.iloc[0]
    assert plain["hit_rule"] == 0 and plain["cause"] == "none" and np.isnan(plain["tolerance"])
    row = agreement.analyse([store], scores, data_stores={"shapes": data}).protocols.iloc[0]
    assert row["tolerance"] == pytest.approx(0.25) and row["ties"] == pytest.approx(-0.25)
    assert row["tolerance"] + row["ties"] == pytest.approx(row["hit_rule"])
    assert row["cause"] == "tolerance, ties"

