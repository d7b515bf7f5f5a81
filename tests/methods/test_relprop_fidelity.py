"""RAP and RSP follow the authors' code (wjNam/Relative_Attributing_Propagation, wjNam/Relative_Sectional_Propagation,
``modules/layers.py``): each rule pinned on a hand-worked case, computed with plain Python independently of
:mod:`salbench.methods.relprop`, and shown to differ from the rule it replaced (issue 24)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbench.methods.relprop import EPS, input_bounds, pool_rule, rap_weighted, rsp_conv
from salbench.methods.rsp import RAP, RAP_POOL_EPS, RSP, purge, relative_gradcam
from salbench.models.base import ModelSpec, NormalizedClassifier

from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

# --- plain-Python reference rules on unrolled layers ------------------------------------------------------------
# A layer is a list, per output unit (flat index), of its (input flat index, weight) connections.


def _unrolled_conv(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> list[list[tuple[int, float]]]:
    """Connections of an unpadded, stride-1 convolution on a ``[C, H, W]`` input, outputs in ``[O, H', W']`` order."""
    c_in, h, w = in_shape
    kh, kw = conv.kernel_size
    weight = conv.weight.tolist()
    return [[(c * h * w + (i + u) * w + (j + v), weight[o][c][u][v]) for c in range(c_in) for u in range(kh)
             for v in range(kw)]
            for o in range(conv.out_channels) for i in range(h - kh + 1) for j in range(w - kw + 1)]


def _forward(conns: list[list[tuple[int, float]]], bias: list[float], x: list[float], per: int) -> list[float]:
    """ReLU of the layer's output (``per`` outputs per bias entry)."""
    return [max(sum(wi * x[i] for i, wi in conn) + bias[k // per], 0.0) for k, conn in enumerate(conns)]


def _shift(values: list[float], target_sum: float) -> list[float]:
    nonzero = [k for k, v in enumerate(values) if v != 0]
    excess = (sum(values) - target_sum) / len(nonzero)
    return [v - excess if v != 0 else v for v in values]


def _rap_hidden(conns, x: list[float], r: list[float], conv_variant: bool) -> list[float]:
    """RAP at a hidden layer with inputs >= 0: activators share R_j; inhibitors get R_j I/(A+I) with R_j's sign.
    ``conv_variant`` (Conv2d.RAP_relprop): a negative R_j goes to the inhibitors only, R_j (1 + I/(A+I)) in all."""
    out = [0.0] * len(x)
    for conn, rj in zip(conns, r):
        contrib = [(i, x[i] * wi) for i, wi in conn]
        act = sum(v for _, v in contrib if v > 0)
        inh = -sum(v for _, v in contrib if v < 0)
        for i, v in contrib:
            if v > 0 and (rj > 0 or not conv_variant):
                out[i] += rj * v / act
            elif v < 0:
                extra = 1.0 if conv_variant and rj < 0 else 0.0
                out[i] += rj * (inh / (act + inh) + extra) * (-v) / inh
    return _shift(out, sum(r))


def _zbox(conns, x: list[float], r: list[float], low: list[float], high: list[float]) -> list[float]:
    """z^B with per-input bounds ``low``/``high``."""
    out = [0.0] * len(x)
    for conn, rj in zip(conns, r):
        terms = [(i, x[i] * wi - low[i] * max(wi, 0.0) - high[i] * min(wi, 0.0)) for i, wi in conn]
        z = sum(t for _, t in terms)
        for i, t in terms:
            out[i] += rj * t / z
    return out


def _absolute_influence(fc: nn.Linear, a: list[float], t: int) -> list[float]:
    w, b = fc.weight.tolist()[t], fc.bias.tolist()[t]
    logit = sum(wi * ai for wi, ai in zip(w, a)) + b
    c = [abs(wi * ai) for wi, ai in zip(w, a)]
    return [logit * ci / sum(c) for ci in c]


# --- RAP: the conv rule differs from the linear rule --------------------------------------------------------------


def test_rap_routes_negative_relevance_to_inhibitors_at_convolutions_only():
    # one output, weights (2, -1), input (1, 2): activator 2 (A = 2), inhibitor magnitude 2 (I = 2); R = -3
    conv = nn.Conv2d(2, 1, 1, bias=False).double()
    linear = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(1, 2, 1, 1))
        linear.weight.copy_(torch.tensor([[2.0, -1.0]]))
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    r = torch.tensor([-3.0], dtype=torch.float64)
    # Conv2d.RAP_relprop: the inhibitor takes -3 (1 + 2/4) = -4.5, the activator 0; shift +1.5 on the one
    # nonzero entry -> (0, -3)
    torch.testing.assert_close(rap_weighted(conv, x.view(1, 2, 1, 1), r.view(1, 1, 1, 1)).flatten(),
                               torch.tensor([0.0, -3.0], dtype=torch.float64))
    # Linear.RAP_relprop (the rule every layer used before): activator -3, inhibitor -3 * 2/4 = -1.5; shift
    # +0.75 on both -> (-2.25, -0.75)
    torch.testing.assert_close(rap_weighted(linear, x.view(1, 2), r.view(1, 1)).flatten(),
                               torch.tensor([-2.25, -0.75], dtype=torch.float64))


def test_rap_conv_rule_on_mixed_signs_matches_a_hand_computation():
    # two output locations with R = +3 and -3, inputs (1, 1) and (1, 2), weights (2, -1)
    conv = nn.Conv2d(2, 1, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(1, 2, 1, 1))
    x = torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=torch.float64).view(1, 2, 1, 2)
    r = torch.tensor([3.0, -3.0], dtype=torch.float64).view(1, 1, 1, 2)
    # location 0 (R = 3, A = 2, I = 1): activator 3, inhibitor 3 * 1/3 = 1; location 1 (R = -3, A = 2, I = 2):
    # activator 0, inhibitor -4.5. Sum -0.5 vs R's 0: +1/6 on the three nonzero entries
    expected = torch.tensor([[19 / 6, 0.0], [7 / 6, -13 / 3]], dtype=torch.float64).view(1, 2, 1, 2)
    torch.testing.assert_close(rap_weighted(conv, x, r), expected)


def _three_conv_net() -> nn.Sequential:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 3, (1, 2)), nn.ReLU(), nn.Conv2d(3, 3, (1, 2)), nn.ReLU(), nn.Conv2d(3, 2, (1, 2)), nn.ReLU(),
        nn.Flatten(), nn.Linear(2, 3),
    ).double()
    with torch.no_grad():  # alive units, mixed-sign weights
        for conv in (net[0], net[2], net[4]):
            conv.bias.fill_(0.3)
    return net


def _rap_by_hand(net: nn.Sequential, x: list[float], t: int, conv_variant: bool) -> list[float]:
    """RAP on the [3, 1, 4] input of :func:`_three_conv_net`: absolute influence, two hidden convolutions,
    z^B on [min x, max x]; ``conv_variant`` False gives the old rule (Linear.RAP_relprop at every layer)."""
    layers = [_unrolled_conv(net[0], (3, 1, 4)), _unrolled_conv(net[2], (3, 1, 3)), _unrolled_conv(net[4], (3, 1, 2))]
    widths = [3, 2, 1]
    acts = [x]
    for conns, conv, width in zip(layers, (net[0], net[2], net[4]), widths):
        acts.append(_forward(conns, conv.bias.tolist(), acts[-1], width))
    r = _absolute_influence(net[7], acts[3], t)
    r = _rap_hidden(layers[2], acts[2], r, conv_variant)
    r = _rap_hidden(layers[1], acts[1], r, conv_variant)
    return _zbox(layers[0], x, r, [min(x)] * len(x), [max(x)] * len(x))


def test_rap_on_a_conv_net_matches_the_authors_conv_rule_not_the_linear_one():
    net = _three_conv_net()
    x = torch.rand(2, 3, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logits = net(x).detach()
    target = torch.stack([logits[0].argmax(), logits[1].argmin()])  # a positive and a negative target logit
    assert logits[0, target[0]] > 0 > logits[1, target[1]]

    relevance = RAP().attribute_channels(net, x, target).flatten(1)

    items = [(x[i].flatten().tolist(), int(target[i])) for i in range(2)]
    expected = torch.tensor([_rap_by_hand(net, xi, t, conv_variant=True) for xi, t in items], dtype=torch.float64)
    old_rule = torch.tensor([_rap_by_hand(net, xi, t, conv_variant=False) for xi, t in items], dtype=torch.float64)
    torch.testing.assert_close(relevance, expected)
    assert ((expected - old_rule).abs().amax(1) > 0.05 * expected.abs().amax(1)).all()  # the old rule differs
    torch.testing.assert_close(relevance.sum(1), logits.gather(1, target[:, None]).squeeze(1))


# --- the z^B bounds: one L and one H per image, the extremes of the normalised input ---------------------------


def test_input_bounds_are_one_min_and_one_max_per_item():
    x = torch.tensor([[[[0.5, -1.0]], [[2.0, 0.0]]], [[[3.0, 1.0]], [[1.5, 2.5]]]])
    low, high = input_bounds(x)
    torch.testing.assert_close(low.flatten(), torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(high.flatten(), torch.tensor([2.0, 3.0]))
    assert low.shape == high.shape == (2, 1, 1, 1)


def _normalised_model() -> NormalizedClassifier:
    """conv 2 x 2 (3 -> 2 channels) on a 3 x 3 image, ReLU, a linear head over the 2 x 2 x 2 map, ImageNet
    normalisation inside the model."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].bias.fill_(0.5)
    spec = ModelSpec(arch="tiny", input_size=3, target_layer="net.1", **IMAGENET)
    return NormalizedClassifier(net, spec).double().eval()


def _images() -> torch.Tensor:
    """Pixels in [0.2, 0.8]: the normalised image's extremes are far from the images of pixel values 0 and 1."""
    return 0.2 + 0.6 * torch.rand(2, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


def _per_channel_bounds(n: int) -> tuple[list[float], list[float]]:
    """The old rule: per input (channel-major, 9 pixels per channel) the images of pixel values 0 and 1."""
    mean, std = IMAGENET["mean"], IMAGENET["std"]
    return ([(0 - mean[c]) / std[c] for c in range(3) for _ in range(n)],
            [(1 - mean[c]) / std[c] for c in range(3) for _ in range(n)])


def _zbox_cases(model: NormalizedClassifier, x: torch.Tensor, relevance_at_conv) -> tuple[list, list]:
    """Hand z^B at the first layer of every item with the authors' bounds and with the old per-channel ones."""
    conns = _unrolled_conv(model.net[0], (3, 3, 3))
    new, old = [], []
    for b in range(x.shape[0]):
        z = [(x[b, c, i, j].item() - IMAGENET["mean"][c]) / IMAGENET["std"][c]
             for c in range(3) for i in range(3) for j in range(3)]
        r = relevance_at_conv(b, z, conns)
        new.append(_zbox(conns, z, r, [min(z)] * 27, [max(z)] * 27))
        old.append(_zbox(conns, z, r, *_per_channel_bounds(9)))
    return new, old


def test_rap_input_rule_uses_the_extremes_of_the_normalised_image():
    model, x, target = _normalised_model(), _images(), torch.tensor([0, 2])

    def relevance_at_conv(b, z, conns):
        return _absolute_influence(model.net[3], _forward(conns, model.net[0].bias.tolist(), z, 4), int(target[b]))

    new, old = map(torch.tensor, _zbox_cases(model, x, relevance_at_conv))
    relevance = RAP().attribute_channels(model, x, target).flatten(1)
    torch.testing.assert_close(relevance, new.double())
    assert ((new - old).abs().amax(1) > 0.05 * new.abs().amax(1)).all()  # the old bounds give another map


def test_rsp_input_rule_uses_the_extremes_of_the_normalised_image():
    model, x, target = _normalised_model(), _images(), torch.tensor([1, 2])
    net = model.net
    with torch.no_grad():  # Grad-CAM at the ReLU: the head reads the map directly, dy_c/dA = w_c
        activations = net[1](net[0]((x - model.mean) / model.std))
        weights = net[3].weight.view(3, 2, 2, 2).mean((2, 3))  # [class, channel]
        order = [[t] + [c for c in range(3) if c != t] for t in target.tolist()]  # top_n = 3: every class
        cams = torch.stack([torch.stack([activations[b] * weights[c].view(2, 1, 1) for c in order[b]])
                            for b in range(2)])
        start = purge(relative_gradcam(cams))

    def relevance_at_conv(b, z, conns):
        return start[b].flatten().tolist()

    new, old = map(torch.tensor, _zbox_cases(model, x, relevance_at_conv))
    relevance = RSP(layer="net.1", top_n=3).attribute_channels(model, x, target).flatten(1)
    torch.testing.assert_close(relevance, new.double())
    assert ((new - old).abs().amax(1) > 0.05 * new.abs().amax(1)).all()


# --- RSP's shift and RAP's pooling ------------------------------------------------------------------------------


def test_rsp_shift_subtracts_the_relevance_sum_as_the_authors_shift_rel():
    # a (2 x 1) kernel down a column x = (1, 0, 0, 2); R = (1, 1, -1) over the three outputs. The middle output
    # has no active input: its R+ is lost. G+ = 1 (1, 0) + 1 (0, 0) = (1, 0) -> C+ = (1, 0, 0, 0);
    # G- = (0, 2) -> C- = (0, 0, 0, 1). 2 (C+ - C-) = (2, 0, 0, -2); the authors subtract sum(R) = 1 over the
    # two nonzero entries -> (1.5, 0, 0, -2.5). (The old shift, by the excess over sum(R), gave (2.5, 0, 0, -1.5).)
    conv = nn.Conv2d(1, 1, (2, 1), bias=False).double()
    x = torch.tensor([1.0, 0.0, 0.0, 2.0], dtype=torch.float64).view(1, 1, 4, 1)
    r = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64).view(1, 1, 3, 1)
    torch.testing.assert_close(rsp_conv(conv, x, r).flatten(),
                               torch.tensor([1.5, 0.0, 0.0, -2.5], dtype=torch.float64))


def test_rap_pooling_adds_nothing_to_zero_inputs():
    pool = nn.AdaptiveAvgPool2d(1)
    x = torch.tensor([0.0, 1.0, 3.0, 0.0], dtype=torch.float64).view(1, 1, 2, 2)
    r = torch.tensor([2.0], dtype=torch.float64).view(1, 1, 1, 1)
    # RelPropSimple.RAP_relprop: x R / sum(x) -> exactly 0 at the zeros; RSP's code pools x + 1e-9
    torch.testing.assert_close(pool_rule(pool, x, r, RAP_POOL_EPS).flatten(),
                               torch.tensor([0.0, 0.5, 1.5, 0.0], dtype=torch.float64), rtol=0, atol=0)
    assert (pool_rule(pool, x, r, EPS).flatten()[[0, 3]] > 0).all()
