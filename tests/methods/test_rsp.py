"""RSP and RAP (Nam et al.): rule properties, hand-worked starts, a hand-computed RAP, real layouts, no trace."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch
import torchvision
from torch import nn

from salbench.methods import create_method
from salbench.methods.relprop import UnsupportedModuleError, comparative_shares, rap_weighted, rsp_conv, uniform_shift
from salbench.methods.rsp import RAP, RSP, purge, relative_gradcam
from salbench.models import build_model
from salbench.models.base import ModelSpec, NormalizedClassifier
from salbench.params import ParamError

from .test_registry import assert_clean_run, assert_no_hooks
from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _pixels(n: int, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _trained_like(model: NormalizedClassifier) -> NormalizedClassifier:
    """Batch norms with the non-zero scales and non-trivial statistics of a trained net (timm zero-initialises
    the last scale of each residual branch, which cuts the branch off every propagation)."""
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0, 0.1)
                bn.running_mean.normal_(0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _default(arch: str) -> NormalizedClassifier:
    torch.manual_seed(0)
    return _trained_like(build_model(arch, 5))


def _method(name: str, model: NormalizedClassifier):
    return create_method(name, **({"layer": model.spec.target_layer} if name == "rsp" else {}))


# --- the rules ------------------------------------------------------------------------------------------------


def _comparative_share_by_autograd(conv: nn.Conv2d, x: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """The authors' formulation, one item at a time: kernel = dW of sum(R . conv(x+, W)); z-rule with it."""
    out = []
    for xb, rb in zip(x.clamp(min=0), part):
        weight = conv.weight.detach().clone().requires_grad_()
        (kernel,) = torch.autograd.grad((rb * conv._conv_forward(xb[None], weight, None)).sum(), weight)
        leaf = xb[None].clone().requires_grad_()
        z = conv._conv_forward(leaf, kernel, None)
        s = torch.where(z != 0, rb / torch.where(z != 0, z, torch.ones_like(z)), torch.zeros_like(z))
        (grad,) = torch.autograd.grad(z, leaf, s)
        out.append(leaf.detach() * grad)
    return torch.cat(out)


@pytest.mark.parametrize("kernel,stride,dilation", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (1, 2, 1)])
def test_comparative_shares_match_the_autograd_formulation(kernel, stride, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation).double()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    relevance = torch.randn(2, 5, *conv(x).shape[-2:], dtype=torch.float64)

    target, hostile = comparative_shares(conv, x, relevance)

    torch.testing.assert_close(target, _comparative_share_by_autograd(conv, x, relevance.clamp(min=0)))
    torch.testing.assert_close(hostile, _comparative_share_by_autograd(conv, x, (-relevance).clamp(min=0)))


@pytest.mark.parametrize("kernel", [3, 1])
def test_conv_rule_conserves_target_and_hostile_parts_and_the_total(kernel):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, kernel, padding=kernel // 2).double()
    x = torch.rand(3, 4, 6, 6, dtype=torch.float64)  # all inputs active: every output has a receptive field
    relevance = torch.randn(3, 6, 6, 6, dtype=torch.float64)

    target, hostile = comparative_shares(conv, x, relevance)
    result = rsp_conv(conv, x, relevance)

    per_item = lambda t: t.flatten(1).sum(1)  # noqa: E731
    torch.testing.assert_close(per_item(target), per_item(relevance.clamp(min=0)))
    torch.testing.assert_close(per_item(hostile), per_item((-relevance).clamp(min=0)))
    torch.testing.assert_close(per_item(result), per_item(relevance))
    assert (target >= 0).all() and (hostile >= 0).all()
    assert (result > 0).any() and (result < 0).any()
    if kernel == 1:  # no factor 2, no shift
        torch.testing.assert_close(result, target - hostile)
    else:  # 2 (C+ - C-), shifted by one constant on the nonzero entries
        shift = 2 * (target - hostile) - result
        assert torch.allclose(shift, shift.flatten(1)[:, :1, None, None].expand_as(shift))


def test_uniform_shift_moves_only_nonzero_entries():
    contributions = torch.tensor([[3.0, 0.0, 1.0, 2.0]])
    shifted = uniform_shift(contributions, torch.tensor([[3.0]]))
    torch.testing.assert_close(shifted, torch.tensor([[2.0, 0.0, 0.0, 1.0]]))


def test_rap_hidden_rule_on_a_hand_example():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, -1.0]]))
    x, relevance = torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0]])
    # activator x1 w1 = 2 gets all of R = 3; the inhibitor (|x2 w2| = 1) gets R * 1 / (2 + 1) = 1 (inverted:
    # the sign of R); the sum 4 exceeds R by 1, subtracted evenly from both nonzero entries
    torch.testing.assert_close(rap_weighted(layer, x, relevance), torch.tensor([[2.5, 0.5]]))


# --- RSP's start ----------------------------------------------------------------------------------------------


def test_relative_gradcam_and_purge_on_a_hand_example():
    # [B=1, N=3 classes (target first), K=2 channels, 1 x 2 locations]
    cams = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]],    # target, peak 2
                         [[[0.0, 0.0]], [[1.0, 0.0]]],    # hostile 1, peak 1
                         [[[0.0, 4.0]], [[0.0, 0.0]]]])[None]  # hostile 2, peak 4
    # normalised: T = [[1, 0], [0, .5]], H1 = [[0, 0], [1, 0]], H2 = [[0, 1], [0, 0]]; rel = 2 T - H1 - H2
    # = [[2, -1], [-1, 1]]; positives / 3, negatives / 2
    rel = relative_gradcam(cams)
    torch.testing.assert_close(rel, torch.tensor([[[[2 / 3, -1 / 2]], [[-1 / 2, 1 / 3]]]]))
    # channel sums [1/6, -1/6]: the target location scaled to 2, the hostile one to -1, over K = 2 channels
    torch.testing.assert_close(purge(rel), torch.tensor([[[[1.0, -0.5]], [[1.0, -0.5]]]]))


def test_relative_gradcam_keeps_items_apart():
    cams = torch.rand(3, 4, 5, 2, 2, generator=torch.Generator().manual_seed(0))
    together = purge(relative_gradcam(cams))
    alone = torch.cat([purge(relative_gradcam(cams[i : i + 1])) for i in range(3)])
    torch.testing.assert_close(together, alone)


def test_rsp_rejects_fewer_than_two_compared_classes():
    with pytest.raises(ParamError):
        RSP(layer="net.relu3", top_n=1)


# --- RAP against a hand computation ---------------------------------------------------------------------------


def _mlp() -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():  # alive hidden units, mixed-sign weights
        net[1].bias.fill_(0.5)
        net[3].bias.fill_(0.5)
    return net


def _rap_by_hand(net: nn.Sequential, x: list[float], t: int) -> list[float]:
    """RAP with plain Python loops: absolute influence, activators/inverted inhibitors + shift, z^B on [min, max]."""
    w = [layer.weight.tolist() for layer in (net[1], net[3], net[5])]
    b = [layer.bias.tolist() for layer in (net[1], net[3], net[5])]
    a1 = [max(sum(wi * xi for wi, xi in zip(row, x)) + bj, 0.0) for row, bj in zip(w[0], b[0])]
    a2 = [max(sum(wi * ai for wi, ai in zip(row, a1)) + bj, 0.0) for row, bj in zip(w[1], b[1])]
    logit = sum(wi * ai for wi, ai in zip(w[2][t], a2)) + b[2][t]
    c = [abs(ai * wi) for ai, wi in zip(a2, w[2][t])]
    r2 = [logit * ci / sum(c) for ci in c]
    # hidden layer 4 -> 3 with inputs a1 >= 0
    r1 = [0.0] * len(a1)
    for j, rj in enumerate(r2):
        contrib = [ai * wi for ai, wi in zip(a1, w[1][j])]
        act, inh = sum(v for v in contrib if v > 0), -sum(v for v in contrib if v < 0)
        for i, v in enumerate(contrib):
            if v > 0:
                r1[i] += rj * v / act
            elif v < 0:
                r1[i] += rj * inh / (act + inh) * (-v) / inh
    nonzero = [i for i, v in enumerate(r1) if v != 0]
    excess = (sum(r1) - sum(r2)) / len(nonzero)
    r1 = [v - excess if i in nonzero else v for i, v in enumerate(r1)]
    # input layer 3 -> 4: z^B with l = min(x), h = max(x), one pair per item (the authors' final_backward)
    lo, hi = min(x), max(x)
    r0 = [0.0] * len(x)
    for j, rj in enumerate(r1):
        terms = [xi * wi - lo * max(wi, 0.0) - hi * min(wi, 0.0) for xi, wi in zip(x, w[0][j])]
        for i, term in enumerate(terms):
            r0[i] += rj * term / sum(terms)
    return r0


def test_rap_matches_a_hand_computation_and_conserves_the_logit():
    net = _mlp()
    x = torch.rand(2, 3, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([0, 1])

    relevance = RAP().attribute_channels(net, x, target)

    expected = torch.tensor([_rap_by_hand(net, x[i].flatten().tolist(), int(target[i])) for i in range(2)])
    torch.testing.assert_close(relevance.flatten(1), expected.double())
    torch.testing.assert_close(relevance.flatten(1).sum(1), net(x).gather(1, target[:, None]).squeeze(1).detach())


# --- whole propagation on the default models ------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_rap_conserves_the_target_logit_and_is_bipolar(arch):
    model = _default(arch)
    x, target = _pixels(3), torch.tensor([0, 2, 4])

    maps = RAP().attribute(model, x, target)

    logits = model(x).gather(1, target[:, None]).squeeze(1).detach()
    torch.testing.assert_close(maps.sum((1, 2)), logits, rtol=1e-4, atol=1e-6)
    assert ((maps > 0).flatten(1).any(1) & (maps < 0).flatten(1).any(1)).all()


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_rsp_conserves_the_purged_start_and_is_bipolar(arch):
    model = _default(arch)
    x, target = _pixels(3), torch.tensor([0, 2, 4])

    maps = _method("rsp", model).attribute(model, x, target)

    # purged start: target locations sum to 2, hostile ones to -1 (both present at 4 x 4)
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(3), rtol=1e-4, atol=1e-5)
    assert ((maps > 0).flatten(1).any(1) & (maps < 0).flatten(1).any(1)).all()


@pytest.mark.parametrize("name", ["rsp", "rap"])
@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_batch_equals_items_and_model_is_untouched(arch, name):
    model = _default(arch)
    x, target = _pixels(3), torch.tensor([1, 3, 0])
    method = _method(name, model)
    logits = model(x).detach()

    maps = method.attribute(model, x, target)

    alone = torch.cat([method.attribute(model, x[i : i + 1], target[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, alone, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model(x), logits, rtol=0, atol=0)
    assert_clean_run(type(method), {}, model, SIZE)


def test_rsp_target_class_changes_the_map():
    model = _default("small_resnet")
    x = _pixels(1).expand(2, -1, -1, -1)
    maps = _method("rsp", model).attribute(model, x, torch.tensor([0, 3]))
    assert not torch.allclose(maps[0], maps[1])


def test_rsp_cannot_start_inside_a_residual_block():
    model = _default("small_resnet")
    with pytest.raises(UnsupportedModuleError, match="inside a residual block"):
        RSP(layer="net.layer4.0.conv2").attribute(model, _pixels(1), torch.tensor([0]))


def test_rap_needs_a_linear_output_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(UnsupportedModuleError, match="last conv/linear"):
        RAP().attribute(net, _pixels(1, 8), torch.tensor([0]))
    assert_no_hooks(net)


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.parametrize("method", [RAP(), RSP(layer="0")])
def test_hooks_are_removed_when_the_forward_raises(method):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Boom(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="boom"):
        method.attribute(net, _pixels(1, 8), torch.tensor([0]))
    assert_no_hooks(net)


# --- localisation ---------------------------------------------------------------------------------------------


def _cell_model() -> NormalizedClassifier:
    """Two convs, 2 x 2 average pooling, a head where class 0 reads only the top-left cell, class 3 the bottom-right."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(4, 4, 3, padding=1), relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(2), flatten=nn.Flatten(), fc=nn.Linear(16, 4),
    ))
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.weight.view(4, 4, 2, 2)[0, :, 0, 0] = 1.0
        net.fc.weight.view(4, 4, 2, 2)[3, :, 1, 1] = 1.0
    spec = ModelSpec(arch="cells", input_size=16, target_layer="net.relu2", **IMAGENET)
    return NormalizedClassifier(net, spec).eval()


def test_rap_relevance_stays_in_the_cell_the_class_reads():
    model = _cell_model()
    maps = RAP().attribute(model, _pixels(2, 16), torch.tensor([0, 3]))
    # two 3x3 convolutions widen the 8 x 8 cell by at most 2 pixels
    assert maps[0, 10:, :].abs().sum() == 0 and maps[0, :, 10:].abs().sum() == 0
    assert maps[1, :6, :].abs().sum() == 0 and maps[1, :, :6].abs().sum() == 0
    assert maps[0, :8, :8].abs().sum() > 0 and maps[1, 8:, 8:].abs().sum() > 0


# --- real layouts ---------------------------------------------------------------------------------------------

LAYOUTS = {
    "vgg16": (lambda: torchvision.models.vgg16(weights=None, num_classes=5), "net.features.29"),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None, num_classes=5), "net.layer4"),
    "timm_resnet50": (lambda: timm.create_model("resnet50", pretrained=False, num_classes=5), "net.layer4"),
}


@pytest.fixture(scope="module")
def layouts() -> dict[str, NormalizedClassifier]:
    torch.manual_seed(0)
    return {arch: _trained_like(NormalizedClassifier(build(), ModelSpec(arch=arch, input_size=SIZE, target_layer=layer,
                                                                          **IMAGENET)))
            for arch, (build, layer) in LAYOUTS.items()}


@pytest.mark.parametrize("name", ["rsp", "rap"])
@pytest.mark.parametrize("arch", list(LAYOUTS))
def test_runs_on_vgg16_and_resnet50_layouts(layouts, arch, name):
    model = layouts[arch]
    x, target = _pixels(2), torch.tensor([1, 4])
    logits = model(x).detach()

    maps = _method(name, model).attribute(model, x, target)

    if name == "rap" or arch == "vgg16":  # at 32 px ResNet50's layer4 is 1 x 1: RSP's start has one sign
        assert ((maps > 0).flatten(1).any(1) & (maps < 0).flatten(1).any(1)).all()
    if name == "rap":
        torch.testing.assert_close(maps.sum((1, 2)), logits.gather(1, target[:, None]).squeeze(1), rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(model(x), logits, rtol=0, atol=0)
    assert_clean_run(type(_method(name, model)), {}, model, SIZE)
