"""Pixel removal keyed by model family: a CoDA-Net's pixel is zeroed in all 6 channels of [x, 1 - x], as the
authors' ``masked_predict`` (interpretability/analyses/pixel_removal.py, github.com/moboehle/CoDA-Nets) does;
any other model's pixel is set to black, as before."""

import numpy as np
import pytest
import torch

from salbench.metrics import create_metric
from salbench.metrics.base import ScoringBatch
from salbench.models import NormalizedClassifier, build_model
from salbench.models.coda import LOGIT_BIAS, CoDAConfig, CoDANet, coda_spec
from salbench.params import ParamError

TINY = CoDAConfig(channels=(5, 4, 3), ranks=(3, 4, 2), kernels=(3, 3, 1), strides=(1, 2, 1), paddings=(1, 1, 0),
                  temperature=7.0)
SIZE, REMOVED = 8, 16  # 25 % of 64 pixels


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = NormalizedClassifier(CoDANet(TINY, 3), coda_spec("tiny_coda", TINY, SIZE)).eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, SIZE, SIZE, generator=generator)
    maps = torch.rand(2, SIZE, SIZE, generator=generator)  # distinct values: no ties
    targets = torch.tensor([0, 2])
    least = maps.flatten(1).argsort(dim=1)[:, :REMOVED]  # the authors' np.argsort, least important first
    return model, images, maps, targets, least


def by_hand(model, encoded: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Sigmoid of the target logit of a 6-channel input: DAU layers, sum over positions, / T + b."""
    with torch.no_grad():
        logits = model.net.layers(encoded).sum(dim=(2, 3)) / TINY.temperature + LOGIT_BIAS
    return logits.gather(1, targets[:, None]).squeeze(1).sigmoid().double().numpy()


def test_coda_pixels_are_removed_in_all_six_channels(setup):
    model, images, maps, targets, least = setup
    seen = []
    handle = model.net.layers[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        value = create_metric("pixel_removal").score(ScoringBatch(images, maps, targets, model=model))
    finally:
        handle.remove()
    encoded = torch.cat([images, 1 - images], dim=1)
    for b in range(2):
        encoded[b].flatten(1)[:, least[b]] = 0.0
    (fed,) = seen
    torch.testing.assert_close(fed, encoded)  # the removed pixels are 0 in all 6 channels, the rest untouched
    assert (fed.flatten(2).gather(2, least[:, None, :].expand(-1, 6, -1)) == 0).all()
    np.testing.assert_allclose(value, by_hand(model, encoded, targets), rtol=1e-6)


def test_black_pixels_are_not_removed_for_a_coda_net(setup):
    """The old rule (pixel-space black, i.e. [0, 0, 0, 1, 1, 1]) stays available and gives other numbers."""
    model, images, maps, targets, least = setup
    black = images.clone()
    for b in range(2):
        black[b].flatten(1)[:, least[b]] = 0.0
    batch = ScoringBatch(images, maps, targets, model=model)
    old = create_metric("pixel_removal", baseline="black").score(batch)
    np.testing.assert_allclose(old, by_hand(model, torch.cat([black, 1 - black], dim=1), targets), rtol=1e-6)
    assert np.abs(old - create_metric("pixel_removal").score(batch)).max() > 1e-4


def test_a_cnn_keeps_black_removal():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3).eval()
    images, maps = torch.rand(2, 3, 32, 32), torch.rand(2, 32, 32)
    batch = ScoringBatch(images, maps, torch.tensor([0, 1]), model=model)
    np.testing.assert_array_equal(create_metric("pixel_removal").score(batch),
                                  create_metric("pixel_removal", baseline="black").score(batch))
    with pytest.raises(ParamError, match="baseline"):
        create_metric("pixel_removal", baseline="zero")
