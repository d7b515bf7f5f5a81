"""sMPRT: the same per-layer scores as quantus.SmoothMPRT on identical inputs and noise, one sample = MPRT's
cascade, the noise's scale and a clean last sample, and the smoothed cascade computed once per job."""

from __future__ import annotations

import warnings
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from salbench.methods import create_method
from salbench.methods.base import Method
from salbench.methods.sampling import RowSampler
from salbench.sanity import randomisation
from salbench.sanity.checks import get_check
from salbench.sanity.run import CheckJob, SanitySettings, run_checks
from salbench.sanity.similarity import abs_normalise
from salbench.sanity.verdicts import verdict_values

from methods.threads import one_thread  # noqa: F401  (fixture)
from .helpers import trained_cnn, two_class_images

N = 8


class QuantusSaliency(Method):
    """``quantus.explain(method="Saliency")`` as a method: SmoothMPRT smooths those maps whatever its explain_func."""

    name = "quantus_saliency"

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import quantus

        return torch.from_numpy(quantus.explain(model, inputs.numpy(), target.numpy(), method="Saliency"))[:, 0]


class FirstChannel(Method):
    """The input's first channel, whatever the model: smoothing it shows the noise itself."""

    name = "first_channel"

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return inputs[:, 0].clone()


def job(method: Method, x: torch.Tensor, y: torch.Tensor, samples: int, noise: float = 0.1, seed: int = 42,
        model: nn.Module | None = None) -> CheckJob:
    settings = SanitySettings(items=len(x), modes=("cascading",), orders=("bottom_up",), measures=("spearman_abs",),
                              smprt_samples=samples, smprt_noise=noise)
    return CheckJob(method, model or trained_cnn(epochs=2), x, y, [f"i{k}" for k in range(len(x))], settings, seed,
                    len(x), "cpu")


def per_stage(table: Any) -> np.ndarray:
    """The sMPRT table's ``spearman_abs`` values as ``[stage, item]``."""
    part = table[(table["check"] == "smprt") & (table["statistic"] == "spearman_abs")]
    return part.pivot(index="stage_index", columns="item", values="value").to_numpy()


def clip_abs(a: np.ndarray, **_: Any) -> np.ndarray:
    """Our ``spearman_abs`` preprocessing as Quantus' ``normalise_func`` (per item)."""
    return abs_normalise(torch.from_numpy(a).flatten(1)).numpy().reshape(a.shape)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("samples", [1, 3])
def test_smprt_equals_quantus_smooth_mprt_on_the_same_layers_seeds_and_noise(samples):
    """Quantus' layers, seeding (``seed + 1`` before each layer) and noise draws (``np.random.randn`` replaced by
    ours, in Quantus' call order) give every layer's score (newer-checks.md §2 parity; one sample: plain MPRT)."""
    quantus = pytest.importorskip("quantus")
    model, (x, y) = trained_cnn(), two_class_images(N, seed=5)
    with mock.patch.object(randomisation, "layer_seed", lambda seed, layer: seed + 1):
        ours = per_stage(run_checks(job(QuantusSaliency(), x, y, samples, model=model), [get_check("smprt")]))
    sampler, calls = RowSampler(x, 42, n_samples=max(1, samples - 1)), []

    def randn(*shape: int) -> np.ndarray:  # each smoothing draws samples - 1 noise batches, in sample order
        calls.append(len(calls) % (samples - 1))
        return sampler.normal(torch.arange(shape[0]), torch.full((shape[0],), calls[-1]), shape[1:]).double().numpy()

    with warnings.catch_warnings(), mock.patch("numpy.random.randn", randn):
        warnings.simplefilter("ignore")
        theirs = quantus.SmoothMPRT(
            nr_samples=samples, noise_magnitude=0.1, layer_order="bottom_up", seed=42, skip_layers=False, abs=False,
            normalise=True, normalise_func=clip_abs, similarity_func=quantus.similarity_func.correlation_spearman,
            disable_warnings=True, display_progressbar=False)(
            model, x.numpy(), y.numpy(), a_batch=None, explain_func=quantus.explain,
            explain_func_kwargs={"method": "Saliency"}, channel_first=True, softmax=False)
    assert list(theirs) == ["original", "net.conv1", "net.conv2", "net.fc"] and len(calls) == 5 * (samples - 1)
    np.testing.assert_allclose(ours, np.array(list(theirs.values())), rtol=0, atol=1e-12)


@pytest.mark.usefixtures("one_thread")
def test_one_sample_is_the_plain_cascade_and_more_samples_smooth_it():
    x, y = two_class_images(4, seed=5)
    plain = job(create_method("gradient"), x, y, samples=1)
    assert plain.smoothed_cascade("bottom_up")[1] is not plain.cascade("cascading", "bottom_up")[1]
    torch.testing.assert_close(plain.smoothed_cascade("bottom_up")[1], plain.cascade("cascading", "bottom_up")[1],
                               rtol=0, atol=0)
    smooth = job(create_method("gradient"), x, y, samples=4)
    assert not torch.equal(smooth.smoothed_cascade("bottom_up")[1], plain.cascade("cascading", "bottom_up")[1])
    assert smooth.smoothed_cascade("bottom_up") is smooth.smoothed_cascade("bottom_up")  # computed once


@pytest.mark.usefixtures("one_thread")
def test_noise_has_the_configured_scale_and_the_last_sample_is_clean():
    """With two samples the smoothed first channel is ``x + sigma * eps / 2``: ``eps`` standard normal,
    ``sigma = noise * (max x - min x)`` per item; the same copies at every stage, so a model-independent map
    scores similarity 1 and fails."""
    x, y = two_class_images(4, seed=5)
    x[1] *= 0.5  # a smaller range, a smaller sigma
    check = job(FirstChannel(), x, y, samples=2, noise=0.2)
    names, smoothed = check.smoothed_cascade("bottom_up")
    eps = (2 * smoothed - 2 * x[:, 0]) / (0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))).view(-1, 1, 1)
    assert abs(float(eps.mean())) < 0.05 and abs(float(eps.std()) - 1) < 0.05
    assert (smoothed == smoothed[:1]).all()
    values = verdict_values(run_checks(check, [get_check("smprt")]), "spearman_abs")["smprt"]
    np.testing.assert_allclose(values, 1.0, atol=1e-12)
    assert not get_check("smprt").passes(float(values.mean()))
