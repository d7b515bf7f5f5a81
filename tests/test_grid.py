"""Grid localisation (Böhle et al. 2021): grids of confident, correct, distinct-class items; per-cell attribution share."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from salbench.config import ConfigError, read_config_file, validate_config
from salbench.data.base import Items
from salbench.data.prepare import items_to_dataset
from salbench.grid import (
    Confidence,
    GridError,
    GridSettings,
    build_grids,
    cell_fractions,
    assemble_grids,
    cell_index,
    resizes_grids,
    confidences,
    confident_order,
    sample_blocks,
    sample_grids,
    score_grids,
    tile,
)
from salbench.jobs import SCORE_COLUMNS
from salbench.methods import create_method
from salbench.methods.base import Method
from salbench.models import ModelSpec, build_model, save_checkpoint
from salbench.report.tables import load_scores, summarise
from salbench.store import open_store, write_store, write_table

ROOT = Path(__file__).resolve().parents[1]
K = 9  # classes
SIZE = 8  # px of one item


def colour(cls: int) -> float:
    """Pixel value of class ``cls``'s images: the colour model below reads the class off it."""
    return (cls + 1) / (K + 1)


class ColourModel(nn.Module):
    """Fully convolutional with global pooling: logit_k = -400 (mean pixel - colour(k))^2, any input size."""

    spec = ModelSpec(arch="colour", input_size=SIZE, mean=(0.0,) * 3, std=(1.0,) * 3, target_layer="")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centres = torch.tensor([colour(k) for k in range(K)], device=x.device)
        return -400.0 * (x.mean(dim=(1, 2, 3))[:, None] - centres) ** 2


class Hand(Method):
    """Hand-made maps of a grid: ``cell`` = 1 exactly on the pixels of the target's colour; ``uniform``; ``negative``."""

    name = "hand"

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def attribute(self, model, inputs, target):
        on_cell = (inputs[:, 0] - torch.tensor([colour(int(t)) for t in target])[:, None, None]).abs() < 0.5 / (K + 1)
        return {"cell": on_cell.float(), "uniform": torch.ones_like(inputs[:, 0]),
                "negative": -torch.rand_like(inputs[:, 0]) - on_cell.float()}[self.kind]


def colour_items(per_class: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``[N,3,SIZE,SIZE]`` of constant class colours, shuffled; targets ``[N]``."""
    targets = torch.arange(K).repeat_interleave(per_class)
    targets = targets[torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))]
    values = torch.tensor([round(colour(int(t)) * 255) for t in targets], dtype=torch.uint8)
    return values.view(-1, 1, 1, 1).expand(-1, 3, SIZE, SIZE).contiguous(), targets


def test_tile_places_cell_k_at_row_k_div_n_col_k_mod_n():
    n, h, w = 3, 4, 5
    images = torch.arange(2 * n * n, dtype=torch.float32).view(2, n * n, 1, 1, 1).expand(2, n * n, 2, h, w)
    grids = tile(images)
    assert grids.shape == (2, 2, n * h, n * w)
    for g in range(2):
        for k in range(n * n):
            r, c = divmod(k, n)
            assert (grids[g, :, r * h : (r + 1) * h, c * w : (c + 1) * w] == g * n * n + k).all()


def test_cell_fractions_hand_worked():
    maps = torch.tensor([[[1.0, 3.0], [0.0, -5.0]],  # positive mass 4: cells 1/4, 3/4, 0, 0 (negative clamped)
                         [[-1.0, -2.0], [-3.0, 0.0]],  # no positive mass: all 0
                         [[2.0, 2.0], [2.0, 2.0]]])  # uniform: 1/4 each
    expected = torch.tensor([[0.25, 0.75, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(cell_fractions(maps, 2), expected)


def test_cell_index_non_divisible_size_covers_every_cell_contiguously():
    index = cell_index(7, 10, 3).view(7, 10)
    assert index.unique().tolist() == list(range(9))
    assert (index.diff(dim=0) >= 0).all() and (index.diff(dim=1) >= 0).all()
    assert index[0, 0] == 0 and index[-1, -1] == 8


@pytest.mark.parametrize("n", [2, 3])
def test_hand_made_maps_score_one_chance_and_zero(n):
    images, targets = colour_items(per_class=8)  # the authors' assembly leaves items out between grids
    settings = GridSettings(n=n, n_grids=5, seed=1)
    grids = build_grids(ColourModel(), ColourModel.spec, images, targets, settings, batch_size=7, device="cpu")
    assert grids.images.shape == (5, 3, n * SIZE, n * SIZE)
    model = ColourModel()
    cell = score_grids(Hand("cell"), model, grids.images, grids.targets, batch_size=4, device="cpu")
    uniform = score_grids(Hand("uniform"), model, grids.images, grids.targets, batch_size=4, device="cpu")
    negative = score_grids(Hand("negative"), model, grids.images, grids.targets, batch_size=4, device="cpu")
    assert cell.shape == (5, n * n)
    np.testing.assert_allclose(cell, 1.0)
    np.testing.assert_allclose(uniform, settings.chance)
    np.testing.assert_array_equal(negative, 0.0)


def test_centre_control_scores_chance_on_an_even_grid():
    images, targets = colour_items()
    grids = build_grids(ColourModel(), ColourModel.spec, images, targets, GridSettings(n=2, n_grids=3), 16, "cpu")
    scores = score_grids(create_method("centre"), ColourModel(), grids.images, grids.targets, 5, "cpu")
    np.testing.assert_allclose(scores, 0.25, atol=1e-6)  # the Gaussian is symmetric about the grid's centre


def test_only_confident_correct_items_in_confidence_order():
    targets = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    confidence = Confidence(logit=np.array([1.0, 3.0, 2.0, 5.0, 9.0, 4.0, 4.0, 7.0]),
                            probability=np.array([0.9, 0.9, 0.4, 0.9, 0.9, 0.8, 0.7, 0.99]),
                            correct=np.array([True, True, True, True, False, True, True, True]))
    order = confident_order(targets, confidence, min_probability=0.5)
    # item 2 is not confident, item 4 is misclassified; ties (items 5, 6) keep item order
    assert {c: v.tolist() for c, v in order.items()} == {0: [1, 0], 1: [3], 2: [5, 6], 3: [7]}


def test_grids_use_confident_correct_items_distinct_classes_most_confident_first():
    images, targets = colour_items(per_class=6)
    # blur some items between two classes (low probability) and relabel others (misclassified)
    images, targets = images.clone(), targets.clone()
    unsure, wrong = torch.arange(0, 6 * K, 5), torch.arange(2, 6 * K, 7)
    images[unsure] = ((images[unsure].float() + round(255 / (K + 1)) / 2).round()).to(torch.uint8)
    targets[wrong] = (targets[wrong] + 1) % K
    model = ColourModel()
    settings = GridSettings(n=2, n_grids=100, min_probability=0.6, seed=3)
    grids = build_grids(model, model.spec, images, targets, settings, batch_size=8, device="cpu")
    with torch.no_grad():
        probs = torch.softmax(model(images.float() / 255), dim=1)
    used = grids.items.ravel()
    assert len(set(used.tolist())) == used.size  # each item at most once
    assert (probs[used, targets[used]] > 0.6).all() and (probs[used].argmax(1) == targets[used]).all()
    assert not set(used.tolist()) & set(wrong.tolist())
    assert all(len(set(row)) == 4 for row in grids.targets.tolist())  # distinct classes per grid
    np.testing.assert_array_equal(grids.targets, targets.numpy()[grids.items])
    for cls in range(K):  # each class's items appear grid after grid in decreasing logit order
        logits = grids.logits[grids.targets == cls]
        assert (np.diff(logits) <= 0).all()
    # the blocks run until fewer than n*n classes have items left, and the grids are read off the blocks
    order = confident_order(targets.numpy(), confidences(model, images, targets, model.spec, 8, "cpu"), 0.6)
    blocks = sample_blocks(order, 2, seed=3)
    left = {c: len(order[c]) - int((targets.numpy()[blocks] == c).sum()) for c in order}
    assert sum(v > 0 for v in left.values()) < 4 and set(used.tolist()) <= set(blocks.tolist())


def test_grids_are_deterministic_from_the_seed():
    order = {c: np.arange(10 * c, 10 * c + 10) for c in range(K)}
    a, b = sample_grids(order, 2, 8, seed=5), sample_grids(order, 2, 8, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_grids(order, 2, 8, seed=6))
    assert a.shape == (8, 4)


def test_blocks_follow_the_authors_legacy_numpy_stream():
    """Their get_sorted_indices: np.random.seed(42), then np.random.choice of n*n classes among those left."""
    order = {c: np.arange(100 * c, 100 * c + 3) for c in range(5)}  # 5 classes, 3 items each, 2x2 blocks
    blocks = sample_blocks(order, 2, seed=42)
    legacy = np.random.RandomState(42)  # the stream np.random.seed(42) starts
    first = legacy.choice(np.arange(5), size=4, replace=False)
    second = legacy.choice(np.arange(5), size=4, replace=False)  # every class still has items after one block
    assert blocks[:4].tolist() == [100 * c for c in first.tolist()]
    taken = {c: int((first == c).sum()) for c in range(5)}
    assert blocks[4:8].tolist() == [100 * c + taken[c] for c in second.tolist()]
    # drawing stops when fewer than 4 classes have items left: 15 items allow at most 3 blocks
    assert len(blocks) % 4 == 0 and 4 <= len(blocks) <= 12 and len(set(blocks.tolist())) == len(blocks)
    grids = sample_grids(order, 2, 2, seed=42)  # the first grid is the first block; item 4 is left out
    assert grids[0].tolist() == [100 * c for c in first.tolist()] and grids[1, 0] == blocks[5]
    assert blocks[4] not in grids


def test_assembly_leaves_one_item_out_between_grids_and_passes_over_repeated_classes():
    """Their make_multi_image walk by hand: 3 blocks of 2x2, items 0..11 of classes below."""
    classes = dict(enumerate([0, 1, 2, 3, 1, 0, 3, 2, 2, 0, 1, 3]))
    blocks = np.arange(12)
    # grid 0 takes items 0-3 and the next grid starts at 5 (item 4 left out); it takes 5, 6, 7, passes over
    # 8 (class 2) and 9 (class 0), takes 10; the third would start at 12: no items left
    assert assemble_grids(blocks, classes, 4, n_grids=10) == [[0, 1, 2, 3], [5, 6, 7, 10]]
    assert assemble_grids(blocks, classes, 4, n_grids=1) == [[0, 1, 2, 3]]


def test_too_few_confident_classes_is_an_error():
    order = {0: np.array([0, 1]), 1: np.array([2]), 2: np.array([3, 4])}
    with pytest.raises(GridError, match=r"grid.n = 2 needs 4 classes.*only 3 have any"):
        sample_grids(order, 2, 10, seed=0)


def test_batched_equals_unbatched_and_a_naive_per_pair_implementation():
    torch.manual_seed(0)
    model = build_model("small_cnn", K).eval()
    grids = (torch.rand(3, 3, 32, 32) * 255).to(torch.uint8)
    targets = np.array([[0, 1, 2, 3], [5, 4, 3, 2], [1, 3, 5, 0]])
    method = create_method("gradient")
    batched = score_grids(method, model, grids, targets, batch_size=5, device="cpu")
    single = score_grids(method, model, grids, targets, batch_size=1, device="cpu")
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-7)
    naive = np.zeros((3, 4))
    for g in range(3):
        for k in range(4):
            saliency = method.attribute(model, grids[g : g + 1].float() / 255, torch.tensor([targets[g, k]]))[0]
            positive = saliency.clamp(min=0).double()
            r, c = divmod(k, 2)
            naive[g, k] = positive[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16].sum() / positive.sum()
    np.testing.assert_allclose(batched, naive, rtol=1e-5, atol=1e-7)
    assert 0.0 < batched.mean() < 1.0


def test_resize_feeds_the_model_its_input_size():
    images, targets = colour_items()
    settings = GridSettings(n=3, n_grids=2, resize=True)
    grids = build_grids(ColourModel(), ColourModel.spec, images, targets, settings, 16, "cpu")
    assert grids.images.shape == (2, 3, SIZE, SIZE) and grids.images.dtype == torch.uint8


def test_a_model_that_rejects_the_grid_size_suggests_resize():
    class FixedSize(ColourModel):
        def forward(self, x):
            if x.shape[-1] != SIZE:
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
            return super().forward(x)

    images, targets = colour_items()
    with pytest.raises(GridError, match="grid.resize: true"):
        build_grids(FixedSize(), ColourModel.spec, images, targets, GridSettings(n=2, n_grids=2), 16, "cpu")


def test_a_model_of_one_input_size_gets_resized_grids_without_the_setting():
    """A ViT's position embeddings take only its input size (timm asserts it): its grids are resized; a model
    that rejects the size with an assertion gets the same suggestion as one raising a RuntimeError."""
    from salbench.models.vit import SPEC as VIT_SPEC

    class AssertsSize(ColourModel):
        spec = dataclasses.replace(ColourModel.spec, lacks={"any_input_size": "position embeddings"})

        def forward(self, x):
            assert x.shape[-1] == SIZE, "Input height doesn't match model"
            return super().forward(x)

    assert resizes_grids(VIT_SPEC, GridSettings()) and not resizes_grids(ColourModel.spec, GridSettings())
    images, targets = colour_items()
    grids = build_grids(AssertsSize(), AssertsSize.spec, images, targets, GridSettings(n=2, n_grids=2), 16, "cpu")
    assert grids.images.shape == (2, 3, SIZE, SIZE)
    with pytest.raises(GridError, match="grid.resize: true"):
        build_grids(AssertsSize(), ColourModel.spec, images, targets, GridSettings(n=2, n_grids=2), 16, "cpu")


def test_config_grid_section_forms_and_n_check():
    base = read_config_file(ROOT / "tests" / "workflow" / "config_tiny.yaml")
    base.pop("grid", None)
    assert not GridSettings.from_config(validate_config(base).get("grid")).enabled
    on = validate_config({**base, "grid": {}})["grid"]
    assert GridSettings.from_config(on) == GridSettings(enabled=True)
    off = validate_config({**base, "grid": {"enabled": False, "n": 3}})
    assert not GridSettings.from_config(off["grid"]).enabled  # no class check when off
    with pytest.raises(ConfigError, match=r"'grid.n'.*9 distinct classes.*'shapes' has 6; allowed values: 2"):
        validate_config({**base, "grid": {"n": 3}})
    info = GridSettings(enabled=True, n=3).metric_info()["grid_localisation_3x3"]
    assert info["family"] == "localisation" and math.isclose(info["chance"], 1 / 9)


def _colour_store(tmp_path, model) -> tuple:
    """A data store of noise images whose targets are the (random) model's predictions, and its checkpoint."""
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(96, 3, 16, 16, generator=generator) * torch.rand(96, 3, 1, 1, generator=generator) * 255)
    images = images.to(torch.uint8)
    with torch.no_grad():  # a head of K prototype items' centred features: it predicts many classes
        net, x = model.net, (images.float() / 255 - model.mean) / model.std
        features = net.flatten(net.pool(net.features(x)))
        centred = features - features.mean(dim=0)
        net.fc.weight.copy_(centred[torch.randperm(len(x), generator=generator)[:K]])
        net.fc.bias.copy_(-net.fc.weight @ features.mean(dim=0))
        targets = model(images.float() / 255).argmax(1).numpy()
    items = Items(images=images.permute(0, 2, 3, 1).numpy(), targets=targets,
                  item_ids=[f"i{k:03d}" for k in range(96)], image_ids=[f"i{k:03d}" for k in range(96)])
    attrs = {"dataset": "noise", "classes": [f"c{k}" for k in range(K)], "objects": 1, "manifest_sha256": "m"}
    write_store(items_to_dataset(items, attrs), tmp_path / "data.zarr")
    save_checkpoint(model, tmp_path / "model.pt", {"num_classes": K})
    return targets


def test_jobs_write_a_recorded_grid_store_and_a_score_table_the_report_reads(tmp_path):
    from salbench.cli import main

    torch.manual_seed(1)
    model = build_model("small_cnn", K).eval()
    targets = _colour_store(tmp_path, model)
    assert len(np.unique(targets)) >= 4, "the random model must predict at least 4 classes"
    settings = '{"n": 2, "n_grids": 6, "min_probability": 0.0, "seed": 7}'
    common = ["--dataset", "noise", "--model", "cnn", "--checkpoint", str(tmp_path / "model.pt"), "--device", "cpu"]
    assert main(["build-grid", *common, "--data", str(tmp_path / "data.zarr"), "--settings", settings,
                 "--out", str(tmp_path / "grid.zarr")]) == 0
    store = open_store(tmp_path / "grid.zarr")
    built = store.attrs["n_grids_built"]
    assert 1 <= built <= 6 and store.attrs["seed"] == 7 and store.attrs["n"] == 2
    assert store["image"].shape == (built, 3, 32, 32) and store["source_index"].shape == (built, 4)
    data = open_store(tmp_path / "data.zarr")
    first = store.attrs["source_item_ids"][0]
    assert first == [str(i) for i in data["item"].values[store["source_index"].values[0]]]
    cells = tile(torch.from_numpy(data["image"].sel(item=np.asarray(first, dtype=object)).values)[None])[0]
    np.testing.assert_array_equal(store["image"].values[0], cells.numpy())  # recorded items = the grid's cells
    for method in ("centre", "gradient"):
        assert main(["grid-score", *common, "--method", method, "--grids", str(tmp_path / "grid.zarr"),
                     "--batch-size", "3", "--out", str(tmp_path / f"{method}.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "gradient.parquet")
    assert len(table) == built * 4 and set(table["metric"]) == {"grid_localisation_2x2"}
    np.testing.assert_array_equal(table["target"], store["cell_target"].values.ravel())
    assert table["value"].between(0, 1).all()
    scores = load_scores([tmp_path / "centre.parquet", tmp_path / "gradient.parquet"])
    summary = summarise(scores, GridSettings(enabled=True, n=2).metric_info(), n_boot=200)
    assert list(summary["method"]) == ["centre", "gradient"]
    assert summary["value"].iloc[0] == pytest.approx(0.25, abs=1e-6)
    assert (summary["ci_low"] <= summary["value"]).all() and (summary["value"] <= summary["ci_high"]).all()


def test_allow_empty_records_why_and_scores_nothing(tmp_path):
    from salbench.cli import main
    from salbench.jobs import build_grid

    torch.manual_seed(1)
    model = build_model("small_cnn", K).eval()
    _colour_store(tmp_path, model)
    strict = {"n": 3, "n_grids": 2, "min_probability": 0.999}
    with pytest.raises(GridError, match="grid.n = 3 needs 9 classes"):
        build_grid("noise", "cnn", tmp_path / "data.zarr", tmp_path / "model.pt", strict, "cpu", 16,
                   tmp_path / "grid.zarr")
    store = build_grid("noise", "cnn", tmp_path / "data.zarr", tmp_path / "model.pt", {**strict, "allow_empty": True},
                       "cpu", 16, tmp_path / "grid.zarr")
    assert store.attrs["n_grids_built"] == 0 and "needs 9 classes" in store.attrs["empty_reason"]
    assert open_store(tmp_path / "grid.zarr")["image"].shape == (0, 3, 48, 48)
    assert main(["grid-score", "--dataset", "noise", "--model", "cnn", "--method", "gradient", "--grids",
                 str(tmp_path / "grid.zarr"), "--checkpoint", str(tmp_path / "model.pt"), "--device", "cpu", "--out",
                 str(tmp_path / "gradient.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "gradient.parquet")
    assert table.empty and set(SCORE_COLUMNS) <= set(table.columns)


@pytest.mark.slow  # draws the leaderboard section (figures): ~20 s on a free core
def test_report_leaderboard_shows_grid_localisation_with_intervals(tmp_path):
    """Grid tables go to the leaderboard beside the score tables; the metric info comes from the grid section."""
    from report.conftest import REGISTERED_METRICS
    from report.synthetic import make_study

    from salbench.grid import cell_ids
    from salbench.report.assemble import render_page, run_sections
    from salbench.store import read_table

    study = make_study(tmp_path)
    images, targets = colour_items()
    settings = GridSettings(enabled=True, n=2, n_grids=6, seed=0)
    grids = build_grids(ColourModel(), ColourModel.spec, images, targets, settings, 16, "cpu")
    files = []
    for model in ("cnn_a", "cnn_b"):
        for method, kind in (("gradient", "cell"), ("random", "uniform")):
            values = score_grids(Hand(kind), ColourModel(), grids.images, grids.targets, 8, "cpu")
            path = tmp_path / f"grid_{model}_{method}.parquet"
            write_table(pd.DataFrame({"dataset": "shapes", "model": model, "method": method,
                                      "item": cell_ids(range(len(values)), 2), "target": grids.targets.ravel(),
                                      "metric": settings.metric, "value": values.ravel()}), path)
            files.append(path)
    config = {**study.kwargs["config"], "metrics": REGISTERED_METRICS, "grid": {"n": 2, "n_grids": 6, "seed": 0}}
    folders = run_sections("synthetic", config, {"scores": study.kwargs["score_files"], "grids": files},
                           tmp_path / "sections", names=["leaderboard"])
    html = render_page("synthetic", folders, tmp_path / "report", config).read_text()
    summary = read_table(folders["leaderboard"] / "table.parquet").set_index(["model", "method", "metric"])
    for model in ("cnn_a", "cnn_b"):
        hit = summary.loc[(model, "gradient", "grid_localisation_2x2")]
        chance = summary.loc[(model, "random", "grid_localisation_2x2")]
        assert hit["value"] == pytest.approx(1.0) and chance["value"] == pytest.approx(0.25)
        assert hit["n_items"] == 4 * len(grids.items) and chance["ci_low"] <= 0.25 <= chance["ci_high"]
        assert bool(hit["beats_controls"])
    assert "grid_localisation_2x2" in html and "chance 1/4 = 0.250" in html
