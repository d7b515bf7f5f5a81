"""Class sensitivity on shapes_pair items and the random-logit test, with constructed outcomes."""

from __future__ import annotations

import pytest
import torch

from salbench.data import create_dataset
from salbench.methods import create_method
from salbench.saliency import compute_maps
from salbench.sanity.class_sensitivity import class_sensitivity, pair_partners, random_logit, random_other_classes
from salbench.sanity.similarity import Similarity

from .helpers import NUM_CLASSES, images, linear_model


@pytest.fixture(scope="module")
def pair_items():
    items = create_dataset("shapes_pair", n_eval=4, image_size=32).generate("eval")
    return torch.from_numpy(items.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(items.masks), items


def test_pair_partners():
    assert pair_partners(["a", "a", "b", "c", "b", "c"]).tolist() == [1, 0, 4, 5, 2, 3]
    with pytest.raises(ValueError, match="exactly 2"):
        pair_partners(["a", "a", "b"])


def test_maps_of_each_object_pass_and_class_blind_maps_fail(pair_items):
    """Ground truth: an oracle map (the item's own object) is class sensitive; the centre prior is the same for both."""
    x, masks, items = pair_items
    oracle = class_sensitivity(masks.float(), masks, items.image_ids, Similarity())
    torch.testing.assert_close(oracle["own_hit"], torch.ones(len(items), dtype=torch.float64))
    assert oracle["similarity"].max() < 0.2 and oracle["hit_margin"].mean() > 0.5
    centre = create_method("centre").attribute(None, x, torch.from_numpy(items.targets))
    blind = class_sensitivity(centre, masks, items.image_ids, Similarity())
    torch.testing.assert_close(blind["similarity"], torch.ones(len(items), dtype=torch.float64))
    torch.testing.assert_close(blind["own_hit"][0::2], blind["other_hit"][1::2])  # one point, judged against both


def test_tolerance_defaults_to_the_pointing_game():
    maps = torch.zeros(2, 224, 224)
    maps[:, 100, 100] = 1.0
    masks = torch.zeros(2, 224, 224, dtype=torch.bool)
    masks[0, 100, 115] = True  # 15 px away: a hit at the default tolerance
    masks[1, 100, 116] = True  # 16 px: a miss
    values = class_sensitivity(maps, masks, ["i", "i"], Similarity())
    assert values["own_hit"].tolist() == [1.0, 0.0] and values["other_hit"].tolist() == [0.0, 1.0]


def test_random_other_classes_are_seeded_and_never_the_target():
    targets = torch.arange(600) % 6
    other = random_other_classes(targets, 6, seed=42)
    assert (other != targets).all() and other.min() >= 0 and other.max() <= 5
    assert torch.equal(other, random_other_classes(targets, 6, seed=42))
    counts = torch.bincount(other[targets == 0], minlength=6)
    assert counts[0] == 0 and (counts[1:] > 10).all()  # uniform over the five other classes


def test_random_logit_ground_truth():
    """A class-independent map scores 1; a linear model's gradient, the weight row of another class, scores low."""
    x, t = images(8), torch.arange(8) % NUM_CLASSES
    model = linear_model()
    for name, low, high in (("sobel", 1.0, 1.0), ("gradient", -1.0, 0.3)):
        method = create_method(name)
        maps = compute_maps(method, model, x, t, batch_size=4, progress=False)
        values = random_logit(method, model, x, t, maps, NUM_CLASSES, Similarity(), measure="spearman_abs")
        assert values.shape == (8,) and low - 1e-9 <= values.min() and values.max() <= high + 1e-9
