"""Verdicts: bootstrap intervals, thresholds, control validation, and the controls' real verdicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbench.methods import create_method
from salbench.models import build_model
from salbench.params import ParamError
from salbench.sanity.input_sensitivity import input_sensitivity
from salbench.sanity.randomisation import stage_maps, stage_similarities
from salbench.sanity.similarity import Similarity
from salbench.sanity.verdicts import RULES, bootstrap_interval, check_rules, verdict, verdicts

from .helpers import images


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).normal(0.3, 1.0, 400)
    mean, low, high = bootstrap_interval(values, seed=1)
    assert (mean, low, high) == bootstrap_interval(values, seed=1) != bootstrap_interval(values, seed=2)
    assert mean == pytest.approx(values.mean()) and low < mean < high
    half_width = 1.96 * values.std() / np.sqrt(values.size)  # normal-theory interval as an independent check
    assert high - low == pytest.approx(2 * half_width, rel=0.15)


def test_bootstrap_interval_drops_nan_and_handles_degenerate_input():
    assert bootstrap_interval([0.5, np.nan, 0.5]) == (0.5, 0.5, 0.5)
    assert all(np.isnan(bootstrap_interval([np.nan])))


def test_verdict_direction_and_decisiveness():
    below = RULES["model_sensitivity"]
    assert verdict("m", "model_sensitivity", [0.1, 0.2, 0.15], below).passed
    undecided = verdict("m", "model_sensitivity", [0.0, 1.0, 0.2, 0.8], below)  # mean 0.5: not below
    assert not undecided.passed and not undecided.decisive
    above = RULES["input_sensitivity"]
    clear = verdict("m", "input_sensitivity", [0.5, 0.6, 0.55, 0.52], above)
    assert clear.passed and clear.decisive and clear.ci_low > above.threshold
    empty = verdict("m", "input_sensitivity", [np.nan], above)
    assert not empty.passed and empty.n_items == 0 and "no finite" in empty.note


def test_thresholds_are_params():
    assert check_rules({"input_invariance": 0.2})["input_invariance"].threshold == 0.2
    with pytest.raises(ParamError, match="allowed"):
        check_rules({"model_sensitivty": 0.2})
    with pytest.raises(ParamError, match="number"):
        check_rules({"input_invariance": "low"})
    with pytest.raises(ParamError, match="unknown check"):
        verdicts({("gradient", "faithfulness"): [0.1]})


def test_a_control_passing_its_check_makes_the_check_untrustworthy():
    similar, changed = [0.95, 0.97, 0.99], [0.1, 0.05, 0.2]
    failing_control = {v.method: v for v in verdicts({("sobel", "model_sensitivity"): similar,
                                                      ("gradient", "model_sensitivity"): changed})}
    assert not failing_control["sobel"].passed and failing_control["gradient"].passed
    assert failing_control["gradient"].trustworthy is True
    passing_control = {v.method: v for v in verdicts({("sobel", "model_sensitivity"): changed,
                                                      ("gradient", "model_sensitivity"): changed})}
    assert passing_control["gradient"].trustworthy is False and "not trustworthy" in passing_control["gradient"].note
    assert passing_control["sobel"].trustworthy is False
    unvalidated = verdicts({("gradient", "model_sensitivity"): changed, ("gradient", "random_logit"): changed})
    assert all(v.trustworthy is None for v in unvalidated)
    assert {v.check: v.note for v in unvalidated}["model_sensitivity"] == "control sobel not evaluated"
    row = unvalidated[0].as_row()
    assert {"method", "check", "value", "ci_low", "ci_high", "passed", "trustworthy"} <= set(row)


def test_controls_and_gradient_on_small_cnn():
    """Sobel fails model sensitivity and centre fails input sensitivity, so both checks are trustworthy;
    the gradient passes both; random maps (seeded by the image, not the model; new for a noisy image) fail both."""
    model = build_model("small_cnn", 4).eval()
    x, t = images(6, size=32), torch.arange(6) % 4
    similarity = Similarity(["spearman_abs"])
    stats = {}
    for name in ("sobel", "centre", "random", "gradient"):
        method = create_method(name)
        _, maps = stage_maps(method, model, x, t, seed=0, batch_size=6)
        stats[(name, "model_sensitivity")] = stage_similarities(maps, similarity)["spearman_abs"][-1].numpy()
        gap = input_sensitivity(method, model, x, t, maps[0], similarity, batch_size=6)["gap"]
        stats[(name, "input_sensitivity")] = gap.numpy()
    results = {(v.method, v.check): v for v in verdicts(stats, n_boot=500)}
    assert not results[("sobel", "model_sensitivity")].passed
    assert not results[("centre", "input_sensitivity")].passed
    assert results[("sobel", "input_sensitivity")].passed  # edges follow the image
    assert not results[("centre", "model_sensitivity")].passed  # and the centre ignores the model
    assert not results[("random", "model_sensitivity")].passed and not results[("random", "input_sensitivity")].passed
    assert results[("gradient", "model_sensitivity")].passed and results[("gradient", "input_sensitivity")].passed
    assert all(v.trustworthy is True for v in results.values())
