"""The sanity job's checks on one method: table layout, shared original maps, verdict statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from salbench.methods import create_method
from salbench.models import build_model
from salbench.sanity.run import COLUMNS, SanitySettings, class_checks, model_checks
from salbench.sanity.verdicts import VERDICT_STATISTIC, check_rules, verdict_values

SETTINGS = SanitySettings(items=4, modes=("cascading", "independent"), measures=("spearman_abs", "ssim"),
                          smprt_samples=2)


def _inputs(n: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(2))
    return x, torch.arange(n) % 3, [f"item-{i}" for i in range(n)]


def test_model_checks_cover_every_check_and_stage_with_the_original_first():
    model = build_model("small_cnn", 3).eval()
    permuted = build_model("small_cnn", 3).eval()
    x, targets, items = _inputs()
    blocks = model.spec.extra["randomisation_blocks"]
    result = model_checks(create_method("gradient"), model, permuted, x, targets, items, SETTINGS, 0, blocks, 2, "cpu")
    table = result.table
    assert list(table.columns) == COLUMNS
    assert set(table["check"]) == {"model_sensitivity", "model_sensitivity_independent", "data_randomisation",
                                   "input_invariance", "input_sensitivity", "emprt", "smprt"}
    cascade = table[(table["check"] == "model_sensitivity") & (table["statistic"] == "spearman_abs")]
    assert list(cascade.drop_duplicates("stage")["stage"]) == ["original", *(name for name, _ in blocks)]
    np.testing.assert_allclose(cascade[cascade["stage_index"] == 0]["value"], 1.0, atol=1e-6)
    assert result.stages[0] == "original" and result.cascade.shape == (len(blocks) + 1, 4, 32, 32)
    # the gradient is input-invariant under the compensated mean shift (Kindermans et al.)
    invariance = table[(table["check"] == "input_invariance") & (table["statistic"] == "relative_l1")]
    assert (invariance["value"] < 1e-4).all()
    values = verdict_values(table, "spearman_abs")
    assert set(values) == {"model_sensitivity", "top_layer_sensitivity", "data_randomisation", "input_invariance",
                           "input_sensitivity", "emprt", "smprt"}
    last = cascade["stage_index"].max()
    np.testing.assert_array_equal(values["model_sensitivity"], cascade[cascade["stage_index"] == last]["value"])


def test_a_model_independent_map_fails_every_model_check_it_should():
    model = build_model("small_cnn", 3).eval()
    x, targets, items = _inputs()
    result = model_checks(create_method("sobel"), model, model, x, targets, items, SETTINGS, 0, None, 4, "cpu")
    values = verdict_values(result.table, "spearman_abs")
    np.testing.assert_allclose(values["model_sensitivity"], 1.0, atol=1e-6)  # the same map at every stage
    np.testing.assert_allclose(values["data_randomisation"], 1.0, atol=1e-6)


def test_class_checks_read_the_pairs_maps_and_run_the_random_logit_test():
    model = build_model("small_cnn", 3).eval()
    x, targets, items = _inputs()
    image_ids = ["a", "a", "b", "b"]
    masks = torch.zeros(4, 32, 32, dtype=torch.bool)
    masks[0, :8, :8] = masks[1, -8:, -8:] = masks[2, :8, -8:] = masks[3, -8:, :8] = True
    maps = masks.float()  # oracle maps: each item's own object
    table = class_checks(create_method("gradient"), model, x, targets, maps, masks, items, image_ids, 3,
                         SETTINGS, 0, 4, "cpu")
    assert set(table["check"]) == {"class_sensitivity", "random_logit"}
    own = table[(table["check"] == "class_sensitivity") & (table["statistic"] == "own_hit")]["value"]
    other = table[(table["check"] == "class_sensitivity") & (table["statistic"] == "other_hit")]["value"]
    assert (own == 1).all() and (other == 0).all()
    assert set(verdict_values(table, "spearman_abs")) == {"class_sensitivity", "random_logit"}
    assert set(VERDICT_STATISTIC) >= {"class_sensitivity", "random_logit"}


def test_settings_from_config_ignore_workflow_only_keys():
    settings = SanitySettings.from_config({"items": 8, "measure": "ssim", "data_randomisation": {"epochs": 3}})
    assert settings.items == 8 and "ssim" in settings.similarity().measures


def test_a_map_that_randomisation_makes_constant_counts_as_dissimilar():
    table = pd.DataFrame({"check": "model_sensitivity", "statistic": "spearman_abs",
                          "stage": ["original", "original", "head", "head"], "stage_index": [0, 0, 1, 1],
                          "item": ["a", "b", "a", "b"], "value": [1.0, np.nan, np.nan, np.nan]})
    values = verdict_values(table, "spearman_abs")["model_sensitivity"]
    assert values[0] == 0.0 and np.isnan(values[1])  # b's original map was constant: no verdict from it


def test_top_layer_sensitivity_reads_the_cascade_part_way_down():
    """Guided backprop's published failure: similar while the top layers are randomised, changed at the end."""
    stages = ["original", "head", "stage3", "stage2", "stem"]
    similarity = {"gbp": [1.0, 0.95, 0.9, 0.4, 0.1], "gradient": [1.0, 0.3, 0.2, 0.1, 0.05]}
    for method, curve in similarity.items():
        table = pd.DataFrame({"check": "model_sensitivity", "statistic": "spearman_abs", "stage": stages,
                              "stage_index": range(5), "item": "a", "value": curve})
        half = verdict_values(table, "spearman_abs")  # ceil(0.5 * 4) = stage 2 (head and stage3 randomised)
        assert half["top_layer_sensitivity"][0] == curve[2] and half["model_sensitivity"][0] == curve[4]
        assert verdict_values(table, "spearman_abs", top_fraction=0.25)["top_layer_sensitivity"][0] == curve[1]
    rules = check_rules()
    assert not rules["top_layer_sensitivity"].passes(0.9) and rules["top_layer_sensitivity"].passes(0.2)


def test_both_orders_run_one_cascade_each_sharing_the_original_maps_and_are_stored_for_the_figure(monkeypatch):
    from salbench.sanity import randomisation

    model = build_model("small_cnn", 3).eval()
    x, targets, items = _inputs()
    blocks = model.spec.extra["randomisation_blocks"]
    settings = SanitySettings(items=4, modes=("cascading",), orders=("top_down", "bottom_up"), measures=("ssim",),
                              smprt_samples=1)
    passes = []
    real = randomisation.compute_maps
    monkeypatch.setattr(randomisation, "compute_maps", lambda *a, **k: passes.append(1) or real(*a, **k))
    result = model_checks(create_method("gradient"), model, None, x, targets, items, settings, 0, blocks, 4, "cpu")
    assert len(passes) == 2 * len(blocks) + 1  # the original maps once, then each order's stages
    table = result.table
    bottom_up = table[(table["check"] == "model_sensitivity_bottom_up") & (table["statistic"] == "spearman_abs")]
    names = [name for name, _ in blocks]
    assert list(bottom_up.drop_duplicates("stage")["stage"]) == ["original", *names[::-1]]
    top_down = table[(table["check"] == "model_sensitivity") & (table["statistic"] == "spearman_abs")]
    last = top_down["stage_index"].max()
    np.testing.assert_allclose(bottom_up[bottom_up["stage_index"] == last]["value"].to_numpy(),
                               top_down[top_down["stage_index"] == last]["value"].to_numpy())  # same random end
    values = verdict_values(table, "spearman_abs")
    np.testing.assert_array_equal(values["bottom_layer_sensitivity"],
                                  bottom_up[bottom_up["stage_index"] == 3]["value"])  # ceil(0.5 * 5) stages
    assert result.stages == ["original", *names, *(f"bottom_up:{name}" for name in names[::-1])]
    assert result.cascade.shape == (2 * len(blocks) + 1, 4, 32, 32)
    assert not torch.equal(result.cascade[len(blocks) + 1], result.cascade[1])  # bottom-up stage 1 is its own map
