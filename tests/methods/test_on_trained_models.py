"""Methods on the embedded default's trained CNN: the claims that need a model that has learned the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbench.config import load_config
from salbench.methods import METHODS, create_method
from salbench.metrics import create_metric
from salbench.metrics.base import ScoringBatch
from trained import ROOT, as_inputs, trained_default

pytestmark = pytest.mark.slow


def demo_method(name: str, model):
    """The method as the default config sets it up for ``model``."""
    spec = load_config(ROOT / "config" / "config.yaml")["methods"][name]
    cls = METHODS.get(spec["method"])
    params = dict(spec["params"])
    if cls.needs_layer:
        params.setdefault("layer", model.spec.layer(cls.layer_role))
    return cls(**params)


def pointing_accuracy(maps: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor) -> float:
    """TorchRay pointing game: mean over classes of the per-class hit rate."""
    hits = create_metric("pointing_game").score(ScoringBatch(images=None, maps=maps, targets=targets, masks=masks))
    return float(np.mean([hits[targets.numpy() == c].mean() for c in np.unique(targets.numpy())]))


def test_mdm_finds_the_object_far_better_than_the_centre_prior():
    trained = trained_default("small_cnn")
    images, targets, masks = as_inputs(trained.eval_items)
    maps = demo_method("mdm", trained.model).attribute(trained.model, images, targets)
    centre = create_method("centre").attribute(trained.model, images, targets)
    mdm_accuracy, centre_accuracy = pointing_accuracy(maps, targets, masks), pointing_accuracy(centre, targets, masks)
    print(f"pointing game on shapes eval: MDM {mdm_accuracy:.3f}, centre {centre_accuracy:.3f}")
    assert mdm_accuracy >= centre_accuracy + 0.25


def test_rsp_puts_positive_relevance_on_the_target_and_negative_on_the_other_object():
    """On two-object images (one item per present class) the target object collects positive relevance, and
    more of the hostile (negative) relevance than the target does falls on the other class's object."""
    trained = trained_default("small_cnn")
    images, targets, masks = as_inputs(trained.pair_items)
    maps = demo_method("rsp", trained.model).attribute(trained.model, images, targets)
    other = masks.view(-1, 2, *masks.shape[1:]).flip(1).reshape(masks.shape)  # items come in pairs per image
    positive, negative = maps.clamp(min=0), (-maps).clamp(min=0)
    pos_on_target = (positive * masks).flatten(1).sum(1) / (positive.flatten(1).sum(1) + 1e-12)
    target_area = masks.flatten(1).float().mean(1)
    neg_on_other = (negative * other).flatten(1).sum(1) - (negative * masks).flatten(1).sum(1)
    print(f"RSP on pairs: positive share on target {pos_on_target.mean():.3f} (area {target_area.mean():.3f}); "
          f"items with more negative relevance on the other object: {(neg_on_other > 0).float().mean():.2f}")
    assert (pos_on_target > target_area).float().mean() >= 0.8
    assert (neg_on_other > 0).float().mean() >= 0.7
