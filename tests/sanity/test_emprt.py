"""eMPRT: the same per-item scores as quantus.EfficientMPRT where the protocols match, NaN for constant maps,
and a model-independent map fails it."""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pytest
import torch

from salbench.methods import create_method
from salbench.saliency import compute_maps
from salbench.sanity import randomisation
from salbench.sanity.checks import get_check
from salbench.sanity.checks.emprt import complexity_rise, histogram_entropy
from salbench.sanity.run import CheckJob, SanitySettings, run_checks
from salbench.sanity.verdicts import verdict_values, verdicts

from methods.threads import one_thread  # noqa: F401  (fixture)
from .helpers import trained_cnn, two_class_images

N = 8
SETTINGS = SanitySettings(items=N, modes=("cascading",), orders=("bottom_up",), measures=("spearman_abs",))


def emprt_values(method_name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
                 ) -> np.ndarray:
    job = CheckJob(create_method(method_name), model, x, y, [f"i{k}" for k in range(len(x))], SETTINGS, seed,
                   len(x), "cpu")
    return verdict_values(run_checks(job, [get_check("emprt")]), SETTINGS.measure)["emprt"]


@pytest.mark.usefixtures("one_thread")
def test_emprt_equals_quantus_efficient_mprt_with_quantus_seeding():
    """Quantus re-seeds ``seed + 1`` before every layer's ``reset_parameters()``: with our per-layer seed patched to
    that (newer-checks.md §0), the fully randomised model is the same, and so is every item's score."""
    quantus = pytest.importorskip("quantus")
    model, (x, y) = trained_cnn(), two_class_images(N, seed=5)
    method = create_method("input_x_gradient")

    def explain(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        return compute_maps(method, model, torch.as_tensor(inputs), torch.as_tensor(targets), len(inputs),
                            progress=False).numpy()

    with mock.patch.object(randomisation, "layer_seed", lambda seed, layer: seed + 1):
        ours = emprt_values("input_x_gradient", model, x, y, seed=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = quantus.EfficientMPRT(layer_order="bottom_up", seed=42, complexity_func_kwargs={"n_bins": 100},
                                       abs=False, normalise=False, disable_warnings=True, display_progressbar=False)(
            model, x.numpy(), y.numpy(), a_batch=None, explain_func=explain, channel_first=True, softmax=True)
    np.testing.assert_array_equal(ours, np.asarray(theirs))
    # our own per-layer seeds randomise differently: the scores are not Quantus' any more (the patch mattered)
    assert not np.array_equal(emprt_values("input_x_gradient", model, x, y, seed=42), ours)


@pytest.mark.usefixtures("one_thread")
def test_entropy_is_the_histogram_entropy_and_a_constant_original_map_gives_nan():
    rng = np.random.default_rng(0)
    spread = np.repeat(np.arange(100.0), 3)[None]  # every bin equally full: entropy ln 100
    two = np.array([[0.0] * 5 + [1.0] * 5])
    np.testing.assert_allclose(histogram_entropy(spread), np.log(100))
    np.testing.assert_allclose(histogram_entropy(two), np.log(2))
    flat, noise = np.zeros((1, 4, 4)), rng.random((1, 4, 4))
    before, after, rise = complexity_rise(np.concatenate([flat, noise]), np.concatenate([noise, flat]))
    assert before[0] == 0 and np.isnan(rise[0])  # nothing to rise from: left out, not infinite
    assert after[1] == 0 and rise[1] == -1  # a constant randomised map lost all complexity (as in Quantus)
    (result,) = verdicts({("m", "emprt"): rise}, n_boot=50)
    assert result.n_items == 1 and not result.passed


@pytest.mark.usefixtures("one_thread")
def test_a_model_independent_map_scores_zero_and_fails():
    """Sobel edges ignore the model: the same map before and after randomisation, no rise, a failed check."""
    model, (x, y) = trained_cnn(epochs=2), two_class_images(4, seed=5)
    values = emprt_values("sobel", model, x, y, seed=0)
    np.testing.assert_array_equal(values, 0.0)
    assert get_check("emprt").controls == ("sobel",) and not get_check("emprt").passes(float(values.mean()))
