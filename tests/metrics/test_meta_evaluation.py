"""MetaQuantus meta-evaluation: the statistics on hand-built arrays, the perturbations, and built-to-fail metrics."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon
from torch import nn

from salbench.methods import create_method
from salbench.metrics.base import Metric, ScoringBatch
from salbench.metrics.meta_evaluation import (
    PerturbationTest, Problem, PerturbedScores, Verdict, default_suite, draw_generator, inter_consistency_ar,
    inter_consistency_nr, intra_consistency, meta_consistency, meta_evaluate, perturb_inputs, perturb_model,
    signed_rank_p,
)


def synthetic(rng: np.random.Generator, methods: int = 3, items: int = 12, iterations: int = 2, draws: int = 3,
              shift: float = 0.0, noise: float = 1.0) -> PerturbedScores:
    reference = rng.normal(size=(methods, items)) + np.arange(methods)[:, None]
    perturbed = reference + shift + noise * rng.normal(size=(iterations, draws, methods, items))
    subsets = rng.random((iterations, draws, items)) < 0.7
    return PerturbedScores(reference, perturbed, subsets)


def suite_of(make) -> dict:
    return {test: make(test) for test in default_suite()}


# ------------------------------------------------------------------------------------------- statistics


def test_same_estimator_gives_mc_one_half_exactly():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(3, 10))
    same = PerturbedScores(reference, np.broadcast_to(reference, (3, 5, 3, 10)).copy(), np.ones((3, 5, 10), bool))
    for row in meta_consistency(suite_of(lambda _: same), higher_is_better=True):
        assert (row["IAC_NR"], row["IAC_AR"], row["IEC_NR"], row["IEC_AR"]) == (1.0, 0.0, 1.0, 0.0)
        assert row["MC"] == 0.5
        assert row["fails_ar"] and not row["fails_nr"] and row["flagged"]


def test_different_estimator_is_reactive_but_not_resilient():
    rng = np.random.default_rng(1)
    rows = meta_consistency(suite_of(lambda _: synthetic(rng, items=30, shift=-5.0, noise=0.1)), higher_is_better=True)
    for row in rows:
        assert row["IAC_NR"] < 1e-4 and row["IAC_AR"] > 1 - 1e-4
        assert row["IEC_AR"] == 1.0  # every perturbed score is lower, i.e. worse for a higher-is-better metric


def test_iec_ar_follows_the_metric_direction():
    reference, lower = np.array([[2.0, 3.0], [1.0, 5.0]]), np.array([[1.0, 2.0], [0.0, 4.0]])
    subset = np.array([True, True])
    assert inter_consistency_ar(reference, lower, subset, higher_is_better=True) == 1.0
    # the metaquantus 0.0.5 rule scores both directions as lower-is-better: it would give 0.0 here
    assert inter_consistency_ar(reference, lower, subset, higher_is_better=False) == 0.0


def test_iec_nr_counts_rank_positions_that_keep_their_method():
    reference = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    swapped = np.array([[2.0, 1.0], [1.0, 2.0], [3.0, 3.0]])  # item 0: methods 0 and 1 swap places
    assert inter_consistency_nr(reference, swapped, np.array([True, True])) == pytest.approx(4 / 6)
    assert inter_consistency_nr(reference, swapped, np.array([False, True])) == 1.0


def test_empty_subset_is_nan_not_free_credit():
    reference, perturbed, empty = np.ones((2, 4)), np.zeros((2, 4)), np.zeros(4, bool)
    assert math.isnan(intra_consistency(reference[0], perturbed[0], empty, disruptive=True))
    assert math.isnan(inter_consistency_ar(reference, perturbed, empty, True))
    unchanged = PerturbedScores(reference, np.ones((1, 1, 2, 4)), np.ones((1, 1, 4), bool))
    never_flipped = PerturbedScores(reference, np.zeros((1, 1, 2, 4)), np.zeros((1, 1, 4), bool))
    row = meta_consistency(suite_of(lambda test: never_flipped if test.disruptive else unchanged), True)[0]
    assert (row["IAC_NR"], row["IEC_NR"]) == (1.0, 1.0)
    assert math.isnan(row["IAC_AR"]) and math.isnan(row["IEC_AR"]) and row["subset_ar_min"] == 0 and row["fails_ar"]
    assert math.isnan(row["MC"]) and row["flagged"]  # not 1.0, the mean of the two components that exist


def test_small_subset_caps_iac_ar():
    reference, perturbed = np.arange(3.0), np.arange(3.0) + 10
    assert intra_consistency(reference, perturbed, np.ones(3, bool), disruptive=True) == pytest.approx(1 - 2 ** -2)


def test_one_method_is_refused():
    with pytest.raises(ValueError, match="at least 2 methods"):
        PerturbedScores(np.zeros((1, 3)), np.zeros((1, 1, 1, 3)), np.zeros((1, 1, 3), bool))


def test_verdict_rule():
    good = {"IAC_NR": 0.45, "IAC_AR": 0.9, "IEC_NR": 0.9, "IEC_AR": 0.8, "MC": 0.76}
    assert Verdict().judge(good) == {"fails_nr": False, "fails_ar": False, "flagged": False}
    assert Verdict().judge({**good, "IEC_NR": 0.4})["fails_nr"]
    assert Verdict().judge({**good, "IEC_AR": math.nan})["fails_ar"]
    assert Verdict().judge({**good, "MC": 0.55})["flagged"]


# ------------------------------------------------------------------------------------------- perturbations


def tiny_model() -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 4))
    net.register_buffer("scale", torch.ones(1))
    return net.eval()


def test_model_perturbation_is_multiplicative_seeded_and_spares_buffers():
    model = tiny_model()
    a = perturb_model(model, 0.1, draw_generator(0, 0, 0, 0))
    b = perturb_model(model, 0.1, draw_generator(0, 0, 0, 0))
    c = perturb_model(model, 0.1, draw_generator(0, 0, 0, 1))
    weight, perturbed = model[3].weight, a[3].weight
    assert torch.equal(perturbed, b[3].weight) and not torch.equal(perturbed, c[3].weight)
    assert (perturbed / weight - 1).std().item() == pytest.approx(0.1, rel=0.1)
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), a.parameters()))
    assert torch.equal(a.scale, model.scale) and torch.equal(model[3].weight, weight)


def test_input_perturbation_is_bounded_and_stays_in_pixel_range():
    images = torch.rand(6, 1, 8, 8)
    noisy = perturb_inputs(images, 0.01, draw_generator(0, 2, 0, 0))
    assert 0 < (noisy - images).abs().max().item() <= 0.01 + 1e-7
    wide = perturb_inputs(images, 5.0, draw_generator(0, 3, 0, 0))
    assert wide.min().item() >= 0 and wide.max().item() <= 1
    assert torch.equal(noisy, perturb_inputs(images, 0.01, draw_generator(0, 2, 0, 0)))


def test_test_names_and_levels_are_checked():
    assert [t.name for t in default_suite()] == ["Model Resilience Test", "Model Adversary Test",
                                                 "Input Resilience Test", "Input Adversary Test"]
    with pytest.raises(ValueError, match="level"):
        PerturbationTest("model", False, 0.0)


# ------------------------------------------------------------------------------------------- end to end


class FreshRandom(Metric):
    """Built to be unreliable: fresh random numbers at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return self.rng.random(batch.maps.shape[0])


class Constant(Metric):
    """Built to be unreactive: the same score whatever happens."""

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return np.full(batch.maps.shape[0], 0.5)


class KeepTopProbability(Metric):
    """Deterministic and perturbation-sensitive: the target's probability when only the map's top half is kept."""

    def score(self, batch: ScoringBatch) -> np.ndarray:
        flat = batch.maps.reshape(len(batch.maps), -1)
        keep = (flat >= flat.median(dim=1, keepdim=True).values).reshape(batch.maps.shape).unsqueeze(1)
        with torch.no_grad():
            logits = self.model(batch)(batch.images * keep)
        return logits.softmax(dim=1).gather(1, batch.targets[:, None])[:, 0].double().numpy()


def quadrant_problem(items: int = 16) -> tuple[nn.Module, torch.Tensor]:
    """A linear classifier of 4 classes, each reading its own 4x4 quadrant of an 8x8 image, and images of a bright
    quadrant over a dim background: the model is right, and the maps that point at the quadrant keep it right."""
    quadrant = torch.zeros(4, 8, 8)
    for c, (r, q) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        quadrant[c, r:r + 4, q:q + 4] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with torch.no_grad():
        model[1].weight.copy_(quadrant.reshape(4, 64) + 0.3 * torch.randn(4, 64))
        model[1].bias.zero_()
    classes = torch.arange(items) % 4
    images = 0.5 * torch.rand(items, 1, 8, 8) + 0.25 * quadrant[classes].unsqueeze(1)
    return model.eval(), images


def test_built_to_fail_metrics_are_flagged_and_a_reliable_one_passes():
    torch.manual_seed(0)
    model, images = quadrant_problem()
    methods = {name: create_method(name) for name in ("gradient", "input_x_gradient", "sobel")}
    metrics = {"random": FreshRandom(), "constant": Constant(), "reliable": KeepTopProbability()}
    suite = default_suite(sigma_ar=2.0)
    rows = meta_evaluate(Problem(model, images, methods, metrics), suite, iterations=2, perturbations=3, seed=0)
    by = {(row["metric"], row["kind"]): row for row in rows}
    assert set(by) == {(m, k) for m in metrics for k in ("model", "input")}
    for kind in ("model", "input"):
        assert by["random", kind]["fails_nr"] and by["random", kind]["flagged"]
        assert by["constant", kind]["MC"] == 0.5 and by["constant", kind]["fails_ar"]
        assert not by["reliable", kind]["flagged"], by["reliable", kind]
        assert by["reliable", kind]["subset_ar_mean"] > 0 and by["reliable", kind]["subset_nr_min"] > 0


@pytest.mark.parametrize("differences", [[0.0, 0.0, 1.0, -2.0, 1.0], [1.0, 1.0, 1.0, 2.0, 2.0, -0.5], [0.0] * 4,
                                         [3.0, -1.0, 2.0, 5.0, 4.0], [1.0, -1.0, 1.0, -1.0, 1.0, 0.0, 2.0, 2.0]])
def test_signed_rank_p_is_scipys_wilcoxon(differences):
    expected = wilcoxon(differences, zero_method="zsplit", alternative="two-sided").pvalue
    assert signed_rank_p(np.array(differences)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("differences", [[0.0, 1.0, 1.0, math.nan], [0.5, math.nan, 2.0, 3.0, 1.0]])
def test_signed_rank_p_of_a_missing_score_is_nan_as_scipys(differences):
    """The tied case (exact convolution here) once crashed on a NaN difference (the demo's disruptive model
    perturbation left a metric without a value); SciPy propagates NaN, and so does this."""
    assert math.isnan(wilcoxon(differences, zero_method="zsplit").pvalue)
    assert math.isnan(signed_rank_p(np.array(differences)))
