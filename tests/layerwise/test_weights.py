"""Generalised Grad-CAM channel weights (INV, Bianchi et al. 2024) on a model whose dy/dA is known by hand."""

import pytest
import torch
from torch import nn

from salbench.layerwise.weights import (
    guided_channel_weights,
    kept_channels,
    layer_activations_and_grads,
    percent_weights,
    prune_threshold,
)
from salbench.models import build_model


class LinearHead(nn.Module):
    """``A = feat(x) = x`` (an identity 1x1 conv), ``y_c = sum_kij V[c,k,i,j] A[k,i,j]``: dy_c/dA = V[c]."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.feat = nn.Conv2d(v.shape[1], v.shape[1], 1, bias=False)
        with torch.no_grad():
            self.feat.weight.copy_(torch.eye(v.shape[1])[:, :, None, None])
        self.v = nn.Parameter(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bkij,ckij->bc", self.feat(x), self.v)


def hand_example():
    a = torch.tensor([
        [[1.0, 2], [0, -1]],   # G: only (0,0) has A > 0 and V > 0 -> w = 1 / 4
        [[1.0, 1], [1, 1]],    # V = 2 everywhere -> w = 2
        [[1.0, 1], [1, 1]],    # V = (0.5, 0.5, -4, 0) -> w = 1 / 4
        [[-1.0, -1], [0, 0]],  # A never positive -> w = 0
    ])[None]
    v_target = torch.tensor([
        [[1.0, -1], [3, 2]],
        [[2.0, 2], [2, 2]],
        [[0.5, 0.5], [-4, 0]],
        [[5.0, 5], [5, 5]],
    ])
    return a, torch.stack([-v_target, v_target])  # class 0's gradient is the negative


def test_hand_worked_weights_percentages_and_channel_filter():
    a, v = hand_example()
    model = LinearHead(v)
    (acts,), (grads,), logits = layer_activations_and_grads(model, ["feat"], a, torch.tensor([1]))
    torch.testing.assert_close(grads[0], v[1])  # the logit's gradient: no softmax in between
    torch.testing.assert_close(logits, torch.einsum("bkij,ckij->bc", a, v))
    w = guided_channel_weights(acts, grads)
    torch.testing.assert_close(w, torch.tensor([[0.25, 2.0, 0.25, 0.0]]))
    percent = percent_weights(w)
    torch.testing.assert_close(percent, torch.tensor([[10.0, 80.0, 10.0, 0.0]]))
    assert kept_channels(percent).tolist() == [[False, True, False, False]]  # 76.8 / 4 = 19.2 %
    # class 0 (gradient -V): positive at channel 0's (0,1) where A = 2 (w = 1/4) and channel 2's (1,0) (w = 4/4)
    (acts,), (grads,), _ = layer_activations_and_grads(model, ["feat"], a, torch.tensor([0]))
    percent = percent_weights(guided_channel_weights(acts, grads))
    torch.testing.assert_close(percent, torch.tensor([[20.0, 0.0, 80.0, 0.0]]))
    assert kept_channels(percent).tolist() == [[True, False, True, False]]  # 20 % > 19.2 % (89.6 / 4 dropped it)


def test_a_layer_without_positive_guided_gradient_keeps_no_channel():
    percent = percent_weights(torch.tensor([[0.0, 0.0, 0.0], [1.0, 3.0, 0.0]]))
    torch.testing.assert_close(percent, torch.tensor([[0.0, 0.0, 0.0], [25.0, 75.0, 0.0]]))
    assert kept_channels(percent).tolist() == [[False, False, False], [False, True, False]]


# the authors' computeDiscardValue (main.ipynb), written out by hand: 76.8 / N below 64 channels, then a table
AUTHORS_THRESHOLDS = [(4, 19.2), (8, 9.6), (16, 4.8), (32, 2.4), (48, 1.6), (64, 1.4), (100, 1.4), (128, 0.7),
                      (200, 0.7), (256, 0.35), (384, 0.35), (512, 0.175), (2048, 0.175)]


@pytest.mark.parametrize("n, threshold", AUTHORS_THRESHOLDS)
def test_prune_threshold_is_the_authors_table(n, threshold):
    assert prune_threshold(n) == pytest.approx(threshold, rel=1e-12)
    if n < 64 or n > 512 or n & (n - 1):  # below 64 channels and between powers of two, 89.6 / N is not theirs
        assert threshold != pytest.approx(89.6 / n)


@pytest.mark.parametrize("n, below, above", [(16, 4.8, 4.9), (32, 2.4, 2.5), (64, 1.4, 1.41)])
def test_channels_at_the_threshold_are_dropped_above_kept(n, below, above):
    # 16 and 32 channels (the demo CNN's first layers): 76.8 / N, so 5.5 % (16) and 2.5 % (32) are kept where
    # 89.6 / N (5.6 %, 2.8 %) dropped them
    percent = torch.tensor([[below, above, 5.5, 100 - below - above - 5.5] + [0.0] * (n - 4)], dtype=torch.float64)
    assert kept_channels(percent)[0].tolist() == [False, True, True, True] + [False] * (n - 4)


def test_all_layers_in_one_pass_match_single_layer_passes_and_hooks_are_removed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    x, target = torch.rand(5, 3, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    acts, grads, _ = layer_activations_and_grads(model, ["1", "3"], x, target)
    for name, a, g in zip(["1", "3"], acts, grads):
        (a1,), (g1,), _ = layer_activations_and_grads(model, [name], x, target)
        torch.testing.assert_close(a, a1)
        torch.testing.assert_close(g, g1)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no layer 'nope'"):
        layer_activations_and_grads(model, ["nope"], x, target)


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_the_specs_layerwise_layers_are_rectified_feature_maps_shallow_to_deep(arch):
    model = build_model(arch, 3).eval()
    layers = list(model.spec.layerwise)
    assert len(layers) == 4
    acts, grads, _ = layer_activations_and_grads(model, layers, torch.rand(2, 3, 64, 64), torch.tensor([0, 2]))
    assert all(a.dim() == 4 and (a >= 0).all() and a.shape == g.shape for a, g in zip(acts, grads))
    assert [a.shape[1] for a in acts] == [16, 32, 64, 128]
    assert all(a.shape[-1] >= b.shape[-1] for a, b in zip(acts, acts[1:]))


def test_vgg16_explains_the_authors_conv_layers_5_to_13_after_their_relu():
    from torchvision.models import vgg16

    from salbench.models.pretrained import VGG16_SPEC

    # conv3_1 .. conv5_3 are torchvision's features 10, 12, 14, 17, 19, 21, 24, 26, 28; Keras' Conv2D(relu)
    # output is the ReLU that follows each
    expected = [f"net.features.{i}" for i in (11, 13, 15, 18, 20, 22, 25, 27, 29)]
    assert list(VGG16_SPEC.layerwise) == expected
    with torch.device("meta"):
        features = vgg16().features
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    for n, name in enumerate(expected, start=5):
        i = int(name.rsplit(".", 1)[1])
        assert isinstance(features[i], nn.ReLU) and i - 1 == convs[n - 1]  # the ReLU of the n-th conv
