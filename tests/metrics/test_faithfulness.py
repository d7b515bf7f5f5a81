"""Deletion (RISE protocol): perfect vs reversed maps, AUC rule, chunking, baselines, ties."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.base import saliency_ranks, top_pixels
from salbench.metrics.faithfulness import deletion_curves, select, trapezoid_auc
from salbench.models.base import ModelSpec, NormalizedClassifier

SIZE = 8
SPEC = ModelSpec(arch="test", input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.5, 0.5, 0.5), target_layer="net")


class RegionNet(nn.Module):
    """Logit 0 = gain x mean of normalised channel 0 over a fixed region; logit 1 = 0."""

    def __init__(self, region: torch.Tensor, gain: float = 4.0) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.gain = gain

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = (z[:, 0] * self.region).sum(dim=(1, 2)) / self.region.sum()
        return torch.stack([self.gain * s, torch.zeros_like(s)], dim=1)


class ConstantNet(nn.Module):
    """Logits ``log(1 - p), log(p)`` whatever the input."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor([math.log(1 - p), math.log(p)]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(z.shape[0], 2) + 0 * z.sum(dim=(1, 2, 3))[:, None]


def region_setup(n: int = 3):
    region = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    region[:4, :4] = True
    model = NormalizedClassifier(RegionNet(region), SPEC).eval()
    images = 0.8 + 0.2 * torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return model, images, region, torch.zeros(n, dtype=torch.long)


def small_cnn() -> NormalizedClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    return NormalizedClassifier(net, SPEC).eval()


def reference_curves(model, images, maps, targets, steps, fill) -> torch.Tensor:
    """Per-item, per-step loop straight from the protocol's description."""
    pixels = SIZE * SIZE
    curves = torch.zeros(len(images), steps + 1)
    for i, (image, saliency) in enumerate(zip(images, maps)):
        order = torch.argsort(saliency.flatten(), descending=True, stable=True)
        for k in range(steps + 1):
            x = image.clone().reshape(3, -1)
            idx = order[: k * pixels // steps]
            x[:, idx] = fill.reshape(3, 1)
            with torch.no_grad():
                curves[i, k] = model(x.reshape(1, 3, SIZE, SIZE)).softmax(1)[0, targets[i]]
    return curves


def test_perfect_map_deletes_faster_than_its_reverse():
    model, images, region, targets = region_setup()
    perfect = region.float().expand(3, SIZE, SIZE) + 0.01 * torch.rand(3, SIZE, SIZE)
    metric = create_metric("deletion")
    good = metric.score(ScoringBatch(images, perfect, targets, model=model))
    bad = metric.score(ScoringBatch(images, -perfect, targets, model=model))
    assert good.dtype == np.float64 and good.shape == (3,)
    assert (good < bad).all()
    curves = metric.curves(ScoringBatch(images, perfect, targets, model=model))
    # the 16 region pixels go in the first 4 steps of 4 px; then the class evidence is gone (p = 1/2)
    torch.testing.assert_close(curves[:, 4:], torch.full((3, 13), 0.5))
    assert (curves[:, :4].diff(dim=1) < 0).all()


def test_auc_of_a_constant_probability_is_that_probability():
    model = NormalizedClassifier(ConstantNet(0.7), SPEC).eval()
    images = torch.rand(2, 3, SIZE, SIZE)
    batch = ScoringBatch(images, torch.rand(2, SIZE, SIZE), torch.ones(2, dtype=torch.long), model=model)
    values = create_metric("deletion", steps=8).score(batch)
    np.testing.assert_allclose(values, [0.7, 0.7], rtol=1e-6)


def test_trapezoid_rule():
    curves = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(trapezoid_auc(curves), torch.tensor([0.5, 0.2, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("baseline", ["mean", "black"])
def test_curves_match_a_per_item_reference_and_chunking_changes_nothing(baseline):
    model, images, targets = small_cnn(), torch.rand(3, 3, SIZE, SIZE), torch.tensor([0, 2, 1])
    maps = torch.rand(3, SIZE, SIZE)
    fill = model.mean.flatten() if baseline == "mean" else torch.zeros(3)
    unchunked = deletion_curves(model, images, maps, targets, steps=5, baseline=baseline, max_batch=256)
    chunked = deletion_curves(model, images, maps, targets, steps=5, baseline=baseline, max_batch=4)
    assert unchunked.shape == (3, 6)
    torch.testing.assert_close(chunked, unchunked, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(unchunked, reference_curves(model, images, maps, targets, 5, fill), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        intact = model(images).softmax(1)[torch.arange(3), targets]
        empty = model(fill.view(1, 3, 1, 1).expand_as(images)).softmax(1)[torch.arange(3), targets]
    torch.testing.assert_close(unchunked[:, 0], intact)
    torch.testing.assert_close(unchunked[:, -1], empty)


def test_ties_are_removed_in_row_major_order():
    model, images, targets = small_cnn(), torch.rand(2, 3, SIZE, SIZE), torch.tensor([0, 1])
    flat = torch.zeros(2, SIZE, SIZE)
    row_major = -torch.arange(SIZE * SIZE, dtype=torch.float32).view(1, SIZE, SIZE).expand(2, -1, -1)
    tied = deletion_curves(model, images, flat, targets, steps=7)
    torch.testing.assert_close(tied, deletion_curves(model, images, row_major, targets, steps=7), rtol=0, atol=0)


def test_deletion_declares_the_rise_protocol_and_checks_params():
    metric = create_metric("deletion")
    assert metric.needs_model and not metric.higher_is_better
    assert metric.params == {"steps": 16, "baseline": "mean", "max_batch": 256}
    with pytest.raises(ValueError, match="baseline"):
        create_metric("deletion", baseline="blur")
    with pytest.raises(ValueError, match="steps"):
        create_metric("deletion", steps=0)


# --- insertion ------------------------------------------------------------------------------------------


def test_rise_blur_kernel_is_scipys_filtered_impulse_and_blur_pads_with_the_fill():
    import scipy.ndimage

    from salbench.metrics.faithfulness import rise_blur, rise_blur_kernel

    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1.0
    rise_2d = scipy.ndimage.gaussian_filter(impulse, 5)  # how RISE builds its kernel
    taps = rise_blur_kernel(11, 5.0)
    np.testing.assert_allclose(np.outer(taps, taps), rise_2d, rtol=1e-12)
    assert taps.sum() == pytest.approx(1.0)
    fill = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1)
    flat_image = fill.expand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(rise_blur(flat_image, fill, 11, 5.0), flat_image)
    image = torch.rand(1, 3, SIZE, SIZE, dtype=torch.float64)
    kernel = torch.from_numpy(rise_2d).expand(3, 1, 11, 11)
    padded = torch.nn.functional.pad(image - fill.double(), (5, 5, 5, 5))  # zero padding in normalised space
    reference = torch.nn.functional.conv2d(padded, kernel, groups=3) + fill.double()
    torch.testing.assert_close(rise_blur(image, fill.double(), 11, 5.0), reference)


def test_insertion_perfect_map_beats_its_reverse_and_curve_ends_are_blurred_and_intact():
    model, images, region, targets = region_setup()
    perfect = region.float().expand(3, SIZE, SIZE) + 0.01 * torch.rand(3, SIZE, SIZE)
    metric = create_metric("insertion", steps=8)
    good = metric.score(ScoringBatch(images, perfect, targets, model=model))
    bad = metric.score(ScoringBatch(images, -perfect, targets, model=model))
    assert good.dtype == np.float64 and (good > bad).all()
    curves = metric.curves(ScoringBatch(images, perfect, targets, model=model))
    from salbench.metrics.faithfulness import rise_blur

    with torch.no_grad():
        blurred = rise_blur(images, model.mean, 11, 5.0)
        torch.testing.assert_close(curves[:, 0], model(blurred).softmax(1)[:, 0])
        torch.testing.assert_close(curves[:, -1], model(images).softmax(1)[:, 0])
    # the region's 16 px are in after 2 steps of 8 px: the rest of the curve stays at the intact value
    torch.testing.assert_close(curves[:, 2:], curves[:, -1:].expand(-1, 7))


def test_insertion_chunking_changes_nothing_and_params_are_checked():
    model, images, targets = small_cnn(), torch.rand(3, 3, SIZE, SIZE), torch.tensor([0, 2, 1])
    maps = torch.rand(3, SIZE, SIZE)
    one = create_metric("insertion", steps=5, max_batch=256).score(ScoringBatch(images, maps, targets, model=model))
    chunked = create_metric("insertion", steps=5, max_batch=4).score(ScoringBatch(images, maps, targets, model=model))
    np.testing.assert_allclose(chunked, one, rtol=1e-6)
    metric = create_metric("insertion")
    assert metric.needs_model and metric.higher_is_better and metric.params["kernel_size"] == 11
    with pytest.raises(ValueError, match="sigma"):
        create_metric("insertion", sigma=0)
    with pytest.raises(ValueError, match="model"):
        metric.score(ScoringBatch(images, maps, targets))


def test_two_step_deletion_curve_and_its_area_by_hand():
    # RegionNet reads channel 0 over the top-left 4x4 region: on an all-ones image z = (1 - 0.5) / 0.5 = 1, logit
    # 4 * 1 against 0, p = sigmoid(4). Step 1 deletes the 32 most salient pixels (the region first) to the mean
    # colour (z = 0, p = 1/2); step 2 deletes everything (p = 1/2). Area: (p0 / 2 + 1/2 + 1/4) / 2.
    model, _, region, _ = region_setup(n=1)
    batch = ScoringBatch(torch.ones(1, 3, SIZE, SIZE), region.float()[None], torch.zeros(1, dtype=torch.long),
                         model=model)
    metric = create_metric("deletion", steps=2)
    values, curves = metric.score_curves(batch)
    p0 = 1 / (1 + math.exp(-4))
    np.testing.assert_allclose(curves, [[p0, 0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(values, [p0 / 4 + 0.375], rtol=1e-6)
    np.testing.assert_array_equal(metric.fractions(), [0.0, 0.5, 1.0])


@pytest.mark.parametrize(("name", "params"), [
    ("deletion", {"steps": 5}), ("insertion", {"steps": 4}),
    ("road_morf", {"percentages": [20, 50, 80]}), ("road_lerf", {"percentages": [10, 40]}),
])
def test_score_curves_are_the_curves_the_score_reduces(name, params):
    model, images, targets = small_cnn(), torch.rand(3, 3, SIZE, SIZE), torch.tensor([0, 2, 1])
    batch = ScoringBatch(images, torch.rand(3, SIZE, SIZE), targets, model=model)
    metric = create_metric(name, **params)
    values, curves = metric.score_curves(batch)
    fractions = metric.fractions()
    assert curves.dtype == np.float64 and curves.shape == (3, len(fractions))
    np.testing.assert_array_equal(values, metric.score(batch))  # one implementation, seeded: the same numbers
    np.testing.assert_array_equal(curves, metric.curves(batch).double().numpy())
    if name.startswith("road"):
        np.testing.assert_allclose(fractions, np.asarray(params["percentages"]) / 100)
        np.testing.assert_allclose(values, curves.mean(axis=1), rtol=1e-6)
    else:
        np.testing.assert_allclose(fractions, np.arange(params["steps"] + 1) / params["steps"])
        np.testing.assert_allclose(values, np.trapezoid(curves, fractions, axis=1), rtol=1e-6)


# --- ROAD -------------------------------------------------------------------------------------------------


class GreyNet(nn.Module):
    """A tiny seeded conv net on 1-channel images (Quantus' ROAD only works with one channel)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize("name", ["road_morf", "road_lerf"])
def test_road_matches_quantus_on_one_channel_images(name):
    quantus = pytest.importorskip("quantus")
    model = GreyNet().eval()
    g = torch.Generator().manual_seed(0)
    images, maps = torch.rand(12, 1, 16, 16, generator=g), torch.randn(12, 16, 16, generator=g)
    with torch.no_grad():
        targets = model(images).argmax(1)
    targets[::3] = (targets[::3] + 1) % 3  # some items start misclassified
    percentages = [10, 30, 50, 70, 90]
    metric = create_metric(name, percentages=percentages, noise=0.0, tol=1e-7)
    curves = metric.curves(ScoringBatch(images, maps, targets, model=model))
    assert curves.shape == (12, 5) and set(curves.unique().tolist()) <= {0.0, 1.0}
    # Quantus ranks most relevant first; least relevant first is most relevant first on the negated map
    a_batch = (maps if name == "road_morf" else -maps).numpy()[:, None]
    road = quantus.ROAD(percentages=percentages, noise=0.0, disable_warnings=True)
    expected = road(model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=a_batch, device="cpu",
                    batch_size=12)
    np.testing.assert_allclose(curves.mean(dim=0).numpy(), [expected[p] for p in percentages], rtol=0, atol=1e-6)


def test_road_runs_on_64px_rgb_where_quantus_fails():
    model, images = small_cnn(), torch.rand(2, 3, 64, 64)
    maps, targets = torch.rand(2, 64, 64), torch.tensor([0, 1])
    values = create_metric("road_morf").score(ScoringBatch(images, maps, targets, model=model))
    assert values.shape == (2,) and ((values >= 0) & (values <= 1)).all()
    quantus = pytest.importorskip("quantus")
    road = quantus.ROAD(percentages=[50], disable_warnings=True)
    with pytest.raises(IndexError):  # Quantus 0.6 indexes channel-flattened positions into the pixel grid
        road(model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=maps.numpy()[:, None], device="cpu")


def test_road_perfect_map_orders_morf_below_lerf_and_reversed_map_the_other_way():
    model, _, region, targets = region_setup(n=2)
    images = region.float().expand(2, 3, SIZE, SIZE) * 0.9 + 0.1 * torch.rand(2, 3, SIZE, SIZE)  # bright object
    perfect = region.float().expand(2, SIZE, SIZE) + 0.01 * torch.rand(2, SIZE, SIZE)
    scores = {}
    for name in ("road_morf", "road_lerf"):
        metric = create_metric(name, readout="softmax", percentages=[25, 50])
        scores[name, "good"] = metric.score(ScoringBatch(images, perfect, targets, model=model))
        scores[name, "bad"] = metric.score(ScoringBatch(images, -perfect, targets, model=model))
    assert (scores["road_morf", "good"] < scores["road_lerf", "good"]).all()
    assert (scores["road_morf", "good"] < scores["road_morf", "bad"]).all()
    assert (scores["road_lerf", "good"] > scores["road_lerf", "bad"]).all()
    morf, lerf = create_metric("road_morf"), create_metric("road_lerf")
    assert not morf.higher_is_better and lerf.higher_is_better and morf.needs_model
    assert morf.params["percentages"] == (10, 20, 30, 40, 50, 60, 70, 80, 90) and morf.params["noise"] == 0.01
    with pytest.raises(ValueError, match="percentages"):
        create_metric("road_morf", percentages=[100])
    with pytest.raises(ValueError, match="readout"):
        create_metric("road_lerf", readout="logit")


# --- pixel removal (CoDA) ---------------------------------------------------------------------------------


def test_pixel_removal_removes_the_least_important_quarter():
    model, images, region, targets = region_setup(n=2)
    perfect = region.float().expand(2, SIZE, SIZE) + 0.01 * torch.rand(2, SIZE, SIZE)
    batch = ScoringBatch(images, perfect, targets, model=model)
    kept = create_metric("pixel_removal", readout="softmax").score(batch)
    with torch.no_grad():
        intact = model(images).softmax(1)[:, 0].double().numpy()
    np.testing.assert_allclose(kept, intact, rtol=1e-6)  # only pixels outside the model's region go
    reversed_batch = ScoringBatch(images, -perfect, targets, model=model)
    reversed_ = create_metric("pixel_removal", readout="softmax").score(reversed_batch)
    assert (reversed_ < kept).all()
    # by hand: black out the 16 lowest pixels of the reversed map (the region) and read the target's sigmoid
    flat = images.clone()
    flat[:, :, region] = 0.0
    with torch.no_grad():
        expected = model(flat)[:, 0].sigmoid().double().numpy()
    sigmoid = create_metric("pixel_removal").score(ScoringBatch(images, -perfect, targets, model=model))
    np.testing.assert_allclose(sigmoid, expected, rtol=1e-6)
    assert create_metric("pixel_removal").params == {"fraction": 0.25, "baseline": "auto", "readout": "sigmoid",
                                                      "max_batch": 256}


def test_pixel_removal_reads_the_probability_the_model_was_trained_for():
    _, images, region, targets = region_setup(n=2)
    model = small_cnn()  # three classes: softmax and sigmoid differ
    maps = region.float().expand(2, SIZE, SIZE) + 0.01 * torch.rand(2, SIZE, SIZE)
    batch = ScoringBatch(images, maps, targets, model=model)
    default = create_metric("pixel_removal", readout="probability").score(batch)  # a softmax spec
    np.testing.assert_array_equal(default, create_metric("pixel_removal", readout="softmax").score(batch))
    model.spec = SimpleNamespace(probability="sigmoid")
    by_spec = create_metric("pixel_removal", readout="probability").score(batch)
    np.testing.assert_array_equal(by_spec, create_metric("pixel_removal", readout="sigmoid").score(batch))
    assert not np.array_equal(by_spec, default)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])  # numpy selects / torch does
@pytest.mark.parametrize("levels", [3, 1000])
def test_top_pixels_is_the_sorted_order_prefix_with_ties_row_major(levels, dtype):
    g = torch.Generator().manual_seed(levels)
    maps = torch.randint(-levels, levels, (4, 5, 7), generator=g).to(dtype)  # 3 levels: many ties at every threshold
    maps[0] = 0.0
    maps[1, 0] = -0.0  # equal to 0.0, as for the sort
    ranks = saliency_ranks(maps)
    for count in range(0, 36):
        torch.testing.assert_close(top_pixels(maps, count), ranks < count, rtol=0, atol=0)
    torch.testing.assert_close(top_pixels(maps, 99), torch.ones(4, 35, dtype=torch.bool))


def test_select_is_torch_where_by_arithmetic():
    g = torch.Generator().manual_seed(0)
    chosen = torch.rand(6, 1, 5, 7, generator=g) < 0.4
    fill = torch.tensor([0.5, -0.25, 0.0]).view(1, 3, 1, 1)
    images = torch.randn(6, 3, 5, 7, generator=g)
    other = torch.randn(6, 3, 5, 7, generator=g)
    for first, rest in ((fill, images), (images, other), (images, fill)):
        torch.testing.assert_close(select(chosen, first, rest), torch.where(chosen, first, rest), rtol=0, atol=0)


def test_pixel_removal_matches_a_per_item_sort_with_ties_and_chunks():
    model, targets = small_cnn(), torch.tensor([0, 2, 1])
    images = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    maps = torch.randint(0, 4, (3, SIZE, SIZE), generator=torch.Generator().manual_seed(6)).float()
    expected = []
    for image, saliency, target in zip(images, maps, targets):
        order = torch.argsort(saliency.flatten(), stable=True)[: SIZE * SIZE // 4]  # least important first
        x = image.clone().reshape(3, -1)
        x[:, order] = 0.0
        with torch.no_grad():
            expected.append(model(x.reshape(1, 3, SIZE, SIZE))[0, target].sigmoid().item())
    for max_batch in (1, 2, 256):
        values = create_metric("pixel_removal", max_batch=max_batch).score(ScoringBatch(images, maps, targets,
                                                                                         model=model))
        np.testing.assert_allclose(values, expected, rtol=1e-6)


# --- infidelity --------------------------------------------------------------------------------------------


class LinearNet(nn.Module):
    """Logit 0 = <w, x> (same weights on every channel), logit 1 = 0."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = (z * self.w).sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_infidelity_is_zero_for_the_exact_linear_map_and_scaling_forgives_scale():
    w = torch.randn(SIZE, SIZE, dtype=torch.float64)
    model = LinearNet(w).eval()  # an unwrapped net: its input is the pixel-space image
    images, targets = torch.rand(2, 3, SIZE, SIZE, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
    exact = w.expand(2, SIZE, SIZE)
    for scaling in (True, False):
        value = create_metric("infidelity", n_samples=50, optimal_scaling=scaling).score(
            ScoringBatch(images, exact, targets, model=model))
        np.testing.assert_allclose(value, [0.0, 0.0], atol=1e-18)
    scaled = ScoringBatch(images, 3 * exact, targets, model=model)
    np.testing.assert_allclose(create_metric("infidelity", n_samples=50).score(scaled), [0.0, 0.0], atol=1e-18)
    assert (create_metric("infidelity", n_samples=50, optimal_scaling=False).score(scaled) > 1).all()
    noisy = ScoringBatch(images, exact + torch.randn(2, SIZE, SIZE, dtype=torch.float64), targets, model=model)
    assert (create_metric("infidelity", n_samples=50).score(noisy) > 1e-3).all()


def test_infidelity_samples_follow_the_noisy_baseline_definition():
    model, targets = small_cnn(), torch.tensor([0, 2])
    images, maps = torch.rand(2, 3, SIZE, SIZE), torch.randn(2, SIZE, SIZE)
    metric = create_metric("infidelity", n_samples=40, max_batch=16)
    predicted, change = metric.samples(ScoringBatch(images, maps, targets, model=model))
    assert predicted.shape == change.shape == (2, 40)
    # the perturbed input is clip(0.2 N(0,1), 0, 1): E[I.phi] = sum phi (x - E[clip]) with E[clip] = 0.2 / sqrt(2 pi)
    mean_input = 0.2 / math.sqrt(2 * math.pi)
    expected = ((images - mean_input) * maps[:, None]).sum(dim=(1, 2, 3)).double()
    spread = 0.2 * maps.abs().sum(dim=(1, 2)).double() * math.sqrt(3)
    assert ((predicted.mean(dim=1) - expected).abs() < 4 * spread / math.sqrt(40)).all()
    values = metric.score(ScoringBatch(images, maps, targets, model=model))
    beta = (predicted * change).mean(1) / (predicted**2).mean(1)
    np.testing.assert_allclose(values, ((change - beta[:, None] * predicted) ** 2).mean(1).numpy(), rtol=1e-6)
    assert not metric.higher_is_better and metric.params["n_samples"] == 40
    assert create_metric("infidelity").params["n_samples"] == 10000
