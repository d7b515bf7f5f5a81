"""SmoothGrad, SmoothGrad-squared and VarGrad: wrappers over any method, chunk- and batch-independent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from salbench.methods import create_method
from salbench.methods import noise
from salbench.methods.noise import Moments
from salbench.methods.runs import item_runs
from salbench.methods.sampling import RowSampler
from salbench.params import ParamError

from .helpers import images, make_method, tiny_model

WRAPPERS = ["smoothgrad", "smoothgrad_sq", "vargrad"]


@pytest.mark.parametrize(
    ("base", "base_params"),
    [("gradient", {}), ("integrated_gradients", {"n_steps": 4}), ("gradcam", {"layer": "net.relu3"}),
     ("lrp_epsilon", {})],
)
def test_smoothgrad_without_noise_equals_its_base(base, base_params):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    expected = create_method(base, **base_params).attribute(model, x, target)
    smooth = create_method("smoothgrad", base=base, base_params=base_params, noise_level=0.0, n_samples=4)
    torch.testing.assert_close(smooth.attribute(model, x, target), expected, rtol=1e-5, atol=1e-7)
    flat = create_method("vargrad", base=base, base_params=base_params, noise_level=0.0, n_samples=4)
    torch.testing.assert_close(flat.attribute(model, x, target), torch.zeros_like(expected), rtol=0, atol=1e-10)


def test_smoothgrad_averages_channels_of_seeded_noisy_copies_then_reduces():
    model, x, target = tiny_model(), images(2), torch.tensor([3, 1])
    n, level = 6, 0.2
    sampler = RowSampler(x, 5)
    sigma = level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    grads = torch.stack([
        torch.stack([
            create_method("gradient").attribute_channels(
                model, (x[i] + sigma[i] * sampler.normal(torch.tensor([i]), torch.tensor([k]), tuple(x.shape[1:]))[0]
                        ).unsqueeze(0),
                target[i : i + 1],
            )[0]
            for k in range(n)
        ])
        for i in range(2)
    ])  # [item, sample, C, H, W]
    reduce = create_method("gradient", channel_reduction="max_abs").reduce
    expected = {
        "smoothgrad": reduce(grads.mean(1)),
        "smoothgrad_sq": reduce((grads**2).mean(1)),
        "vargrad": reduce(grads.var(1, unbiased=False)),
    }
    for name, value in expected.items():
        method = create_method(name, n_samples=n, noise_level=level, seed=5, internal_batch_size=5)
        torch.testing.assert_close(method.attribute(model, x, target), value, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", WRAPPERS)
def test_chunked_equals_unchunked(name):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    whole = create_method(name, n_samples=8, internal_batch_size=24).attribute(model, x, target)
    for chunk in (1, 5, 9):
        chunked = create_method(name, n_samples=8, internal_batch_size=chunk).attribute(model, x, target)
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", WRAPPERS)
def test_noise_drawn_in_blocks_of_chunks_equals_noise_drawn_per_chunk(name, monkeypatch):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    maps = {}
    # one block of all 24 rows; blocks of 10 rows (0-9, 10-19, 20-23); one block per chunk of 5 rows
    for budget in (24 * x[0].numel(), 2 * 5 * x[0].numel(), 1):
        monkeypatch.setattr(noise, "NOISE_BLOCK_ELEMENTS", {"cpu": budget, "gpu": budget})
        maps[budget] = create_method(name, n_samples=8, internal_batch_size=5).attribute(model, x, target)
    first, *others = maps.values()
    assert all(torch.equal(first, other) for other in others)


@pytest.mark.parametrize("base", ["gradient", "input_x_gradient", "gradcam", "integrated_gradients"])
def test_vargrad_is_non_negative(base):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    method = make_method("vargrad", base=base, base_params={"layer": "net.relu3"} if base == "gradcam" else {},
                         n_samples=10)
    assert (method.attribute(model, x, target) >= 0).all()


@pytest.mark.parametrize("variance", [False, True])
def test_moments_match_torch_statistics(variance):
    values = torch.randn(20, 3, 2) * 5 + 100  # 4 items x 5 samples; a large mean, where E[a^2] - E[a]^2 would cancel
    moments = Moments(4, values, variance)
    for start in range(0, 20, 3):  # runs split across updates
        moments.update(*item_runs(start, min(start + 3, 20), 5), values[start : start + 3])
    assert moments.count == [5, 5, 5, 5]
    grouped = values.view(4, 5, 3, 2)
    torch.testing.assert_close(moments.mean, grouped.mean(1))
    if variance:
        torch.testing.assert_close(moments.variance(), grouped.var(1, unbiased=False), rtol=1e-4, atol=1e-5)


def test_wrapper_defaults_and_validation():
    assert create_method("smoothgrad").params == {
        "base": "gradient", "base_params": {}, "n_samples": 50, "noise_level": 0.15,
        "internal_batch_size": 64, "seed": 0,
    }
    with pytest.raises(KeyError, match="unknown method"):
        create_method("smoothgrad", base="nope")
    with pytest.raises(ParamError, match="ignores the model"):
        create_method("vargrad", base="sobel")
    with pytest.raises(ParamError, match="noise_level"):
        create_method("smoothgrad_sq", noise_level=-0.1)
    with pytest.raises(ParamError, match="n_samples"):
        create_method("smoothgrad", n_samples=0)


@pytest.mark.parametrize(("name", "params"), [("smoothgrad", {}), ("vargrad", {}), ("expected_gradients", {}),
                                              ("expected_gradients", {"reference": "blur"})])
def test_chunks_read_nothing_back_from_the_device(name, params, monkeypatch):
    """No per-chunk host round trip (``.tolist()``, ``.item()``, ``int(t)``: each waits for a GPU): the number of
    such reads does not grow with the number of chunks (of two rows or more: captum reads a one-row target)."""
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    reads = {"n": 0}
    for attr in ("tolist", "item", "__int__"):
        original = getattr(torch.Tensor, attr)

        def counted(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, counted)
    per_chunking = []
    for chunk in (2, 24):
        reads["n"] = 0
        create_method(name, n_samples=8, internal_batch_size=chunk, **params).attribute(model, x, target)
        per_chunking.append(reads["n"])
    assert per_chunking[0] == per_chunking[1], per_chunking


def test_noisy_without_noise_is_the_rms_normalised_base_map():
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    base = create_method("input_x_gradient").attribute(model, x, target)
    clean = create_method("noisy", base="input_x_gradient", sigma=0.0).attribute(model, x, target)
    rms = base.flatten(1).square().mean(1).sqrt().view(-1, 1, 1)
    torch.testing.assert_close(clean, base / rms)
    torch.testing.assert_close(clean.flatten(1).square().mean(1), torch.ones(3))


def test_noisy_adds_sigma_times_standard_normal_noise():
    model, x, target = tiny_model(), images(4, size=32), torch.tensor([0, 1, 2, 3])
    clean = create_method("noisy", sigma=0.0).attribute(model, x, target)
    noise = (create_method("noisy", sigma=2.0).attribute(model, x, target) - clean) / 2.0
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1.0) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([noise.flatten(), clean.flatten()]))[0, 1])) < 0.05


def test_noisy_noise_is_fresh_per_model_and_target_and_repeatable_otherwise():
    """Independent noise for a randomised model or another target (else a randomisation check would see the shared
    noise as similarity); the same question asked twice, in another batch or layout, gets the same map."""
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    method = create_method("noisy", sigma=1.0, seed=3)
    maps = method.attribute(model, x, target)
    torch.testing.assert_close(method.attribute(model, x, target), maps, rtol=0, atol=0)
    single = torch.cat([method.attribute(model, x[i : i + 1], target[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(single, maps, rtol=1e-5, atol=1e-6)
    clean = create_method("noisy", sigma=0.0).attribute(model, x, target)
    other_model = tiny_model(seed=1)
    other_clean = create_method("noisy", sigma=0.0).attribute(other_model, x, target)
    noise = {
        "original": maps - clean,
        "other model": method.attribute(other_model, x, target) - other_clean,
        "other target": method.attribute(model, x, target.roll(1)) - create_method(
            "noisy", sigma=0.0).attribute(model, x, target.roll(1)),
        "other seed": create_method("noisy", sigma=1.0, seed=4).attribute(model, x, target) - clean,
    }
    for name, value in noise.items():
        if name != "original":
            correlation = torch.corrcoef(torch.stack([value.flatten(), noise["original"].flatten()]))[0, 1]
            assert abs(float(correlation)) < 0.1, name


def test_noisy_validation_and_skip_reason_follow_the_base():
    with pytest.raises(ParamError, match="sigma"):
        create_method("noisy", sigma=-1.0)
    with pytest.raises(KeyError, match="unknown method"):
        create_method("noisy", base="nope")
    gradcam = create_method("noisy", base="gradcam", base_params={"layer": "net.relu3"})
    assert gradcam.skip_reason(SimpleNamespace(family="cnn", gap_fc=True, arch="x", lacks={})) is None
    assert "layer_maps" in gradcam.skip_reason(SimpleNamespace(
        family="cnn", gap_fc=True, arch="x", lacks={"layer_maps": "no maps"}))
