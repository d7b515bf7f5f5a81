"""Max-sensitivity (Yeh et al. 2019): Quantus on the same noise, a hand-worked map, constant maps, the noise itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from salbench.methods import create_method
from salbench.methods.base import Method
from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.robustness import LinfNoise
from salbench.models.base import ModelSpec, NormalizedClassifier

SIZE = 12
SPEC = ModelSpec(arch="test", input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.5, 0.5, 0.5), target_layer="net.0")


class InputMap(Method):
    """Phi(x) = the first input channel (not registered): Phi(x + d) - Phi(x) = d's first channel."""

    name = "input_map"
    uses_model = False

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return inputs[:, 0].to(torch.float32)


def small_cnn() -> NormalizedClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(16, 3))
    return NormalizedClassifier(net, SPEC).eval()


def setup(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, SIZE, SIZE, generator=g), torch.arange(n) % 3


def all_noise(images: torch.Tensor, seed: int, radius: float, samples: int) -> torch.Tensor:
    """``[N, samples, C, H, W]``: every row of the metric's noise."""
    n = len(images)
    rows = LinfNoise(images, seed, radius, samples)(torch.arange(n).repeat_interleave(samples), torch.arange(samples).repeat(n))
    return rows.reshape(n, samples, *images.shape[1:])


@pytest.mark.parametrize("name", ["gradient", "input_x_gradient", "sobel", "input_map"])
def test_matches_quantus_max_sensitivity_on_the_same_noise(name):
    quantus = pytest.importorskip("quantus")
    model, (images, targets) = small_cnn(), setup()
    method = InputMap() if name == "input_map" else create_method(name)
    maps = method.attribute(model, images, targets).detach()
    samples = 5
    metric = create_metric("max_sensitivity", n_samples=samples, max_batch=7)
    ours = metric.score(ScoringBatch(images, maps, targets, model=model, method=method))
    noise = all_noise(images, 0, 0.2, samples).reshape(len(images), samples, -1).numpy()
    calls = []

    def same_noise(arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        """Quantus' perturbation at step ``len(calls)``: our noise for that sample, every item at once."""
        calls.append(kwargs)
        return arr + noise[:, len(calls) - 1]

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs) -> np.ndarray:
        return method.attribute(model, torch.from_numpy(inputs), torch.from_numpy(targets)).detach().numpy()

    reference = quantus.MaxSensitivity(nr_samples=samples, perturb_func=same_noise, disable_warnings=True)
    expected = reference(model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=maps.numpy()[:, None],
                         explain_func=explain, device="cpu", batch_size=len(images))
    assert len(calls) == samples and calls[0]["lower_bound"] == metric.params["radius"]  # Quantus' own radius
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    assert (ours > 0).all()


def test_input_map_sensitivity_is_the_largest_noise_norm_over_the_input_norm():
    images, targets = setup(3)
    maps = images[:, 0]
    for radius in (0.1, 0.2):
        metric = create_metric("max_sensitivity", n_samples=6, radius=radius)
        values = metric.score(ScoringBatch(images, maps, targets, method=InputMap()))  # no model: a control
        first_channel = all_noise(images, 0, radius, 6)[:, :, 0].flatten(2).double()
        expected = first_channel.norm(dim=2).amax(dim=1) / maps.flatten(1).double().norm(dim=1)
        np.testing.assert_allclose(values, expected.numpy(), rtol=1e-6)  # x + d - x in float32
        # |d| <= r on every pixel, so the change is at most r * sqrt(H*W); about r * sqrt(H*W / 3) for uniform d
        bound = radius * SIZE / maps.flatten(1).double().norm(dim=1)
        assert (values <= bound.numpy()).all() and (values >= bound.numpy() / np.sqrt(3) * 0.8).all()
    small = create_metric("max_sensitivity", n_samples=6, radius=0.1).score(ScoringBatch(images, maps, targets,
                                                                                          method=InputMap()))
    np.testing.assert_allclose(values, 2 * small, rtol=1e-6)  # the same uniform draws, scaled by the radius


def test_a_constant_map_has_zero_sensitivity_and_a_zero_map_none():
    images, targets = setup(3)
    centre = create_method("centre")
    maps = centre.attribute(None, images, targets)
    values = create_metric("max_sensitivity", n_samples=4).score(ScoringBatch(images, maps, targets, method=centre))
    np.testing.assert_array_equal(values, [0.0, 0.0, 0.0])
    zero = torch.zeros(3, SIZE, SIZE)
    values = create_metric("max_sensitivity", n_samples=2).score(
        ScoringBatch(images, zero, targets, method=InputMap()))
    assert np.isnan(values).all()


def test_batching_and_chunking_change_nothing_and_the_seed_changes_the_noise():
    model, (images, targets) = small_cnn(), setup(5)
    method = create_method("gradient")
    maps = method.attribute(model, images, targets).detach()
    whole = create_metric("max_sensitivity", n_samples=3, max_batch=15).score(
        ScoringBatch(images, maps, targets, model=model, method=method))
    metric = create_metric("max_sensitivity", n_samples=3, max_batch=2)
    parts = [metric.score(ScoringBatch(images[s], maps[s], targets[s], model=model, method=method))
             for s in (slice(0, 2), slice(2, 5))]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5)
    other = create_metric("max_sensitivity", n_samples=3, seed=1).score(
        ScoringBatch(images, maps, targets, model=model, method=method))
    assert not np.allclose(other, whole)


def test_noise_is_uniform_in_the_linf_ball_and_independent_per_row():
    images, _ = setup(2)
    noise = all_noise(images, 0, 0.2, 50)
    assert noise.abs().max() <= 0.2 and noise.shape == (2, 50, 3, SIZE, SIZE)
    assert abs(noise.mean()) < 0.005 and abs(noise.var() - 0.2**2 / 3) < 0.001
    assert not torch.equal(noise[0, 0], noise[0, 1]) and not torch.equal(noise[0, 0], noise[1, 0])
    again = LinfNoise(images[1:], 0, 0.2, 50)(torch.tensor([0, 0]), torch.tensor([7, 3]))  # its own batch and order
    torch.testing.assert_close(again, noise[1, [7, 3]], rtol=0, atol=0)


def test_protocol_defaults_and_errors():
    metric = create_metric("max_sensitivity")
    assert metric.params == {"n_samples": 200, "radius": 0.2, "seed": 0, "max_batch": 32}
    assert metric.needs_method and metric.needs_model and not metric.higher_is_better
    assert not create_metric("deletion").needs_method
    images, targets = setup(2)
    with pytest.raises(ValueError, match="max_sensitivity needs the saliency method"):
        metric.score(ScoringBatch(images, images[:, 0], targets))
    with pytest.raises(ValueError, match="max_sensitivity needs the model"):
        metric.score(ScoringBatch(images, images[:, 0], targets, method=create_method("gradient")))
    for key, value in (("n_samples", 0), ("radius", -0.1), ("max_batch", 1.5)):
        with pytest.raises(ValueError, match=key):
            create_metric("max_sensitivity", **{key: value})
