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
from salbench.sanity.checks import get_check
from salbench.sanity.run import CheckJob, SanitySettings, run_checks
from salbench.sanity.verdicts import (RULES, bootstrap_interval, check_rules, noise_trap, verdict, verdict_values,
                                      verdicts)

from .helpers import images, trained_cnn, two_class_images


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


def test_noise_trap_reads_the_paired_difference_in_the_checks_direction():
    clean = np.array([0.6, 0.7, 0.65, 0.62, 0.68, 0.66])
    lower = clean - np.array([0.3, 0.28, 0.31, 0.29, 0.3, 0.32])  # noise lowers the similarity: a "below" check gains
    trap = noise_trap("model_sensitivity", "noisy", "gradient", lower, clean, n_boot=500)
    assert trap.rewards_noise and trap.ci_high < 0 and trap.difference == pytest.approx(-0.3, abs=0.02)
    assert not noise_trap("input_sensitivity", "noisy", "gradient", lower, clean, n_boot=500).rewards_noise  # "above"
    assert noise_trap("input_sensitivity", "noisy", "gradient", clean, lower, n_boot=500).rewards_noise
    spread = clean + np.array([0.2, -0.2, 0.1, -0.1, 0.15, -0.15])  # interval crosses 0: not flagged
    assert not noise_trap("model_sensitivity", "noisy", "gradient", spread, clean, n_boot=500).rewards_noise
    with_nan = noise_trap("model_sensitivity", "noisy", "gradient", np.append(lower, np.nan), np.append(clean, 0.5))
    assert with_nan.n_items == clean.size
    with pytest.raises(ValueError, match="same items"):
        noise_trap("model_sensitivity", "noisy", "gradient", lower[:3], clean)


def test_noise_trap_flags_top_down_randomisation_on_a_trained_cnn_with_input_x_gradient():
    """newer-checks.md section 3, acceptance case: input x gradient plus noise scores better on top-down
    randomisation (Binder et al. 2023), so that check rewards noise; noise does not help input sensitivity
    (the noisy copy's map is no closer to the original's), so that check is not flagged."""
    model = trained_cnn(n=32, epochs=25)
    x, y = two_class_images(12, seed=5)
    settings = SanitySettings(items=12, modes=("cascading",), measures=("spearman_abs",))
    checks = [get_check("top_layer_sensitivity"), get_check("input_sensitivity")]
    methods = {"ixg": create_method("input_x_gradient"),
               "ixg_noisy": create_method("noisy", base="input_x_gradient", sigma=1.0)}
    stats = {}
    for name, method in methods.items():
        job = CheckJob(method, model, x, y, [f"i{i}" for i in range(12)], settings, 0, 12, "cpu")
        for check, values in verdict_values(run_checks(job, checks), "spearman_abs").items():
            stats[(name, check)] = values
    results = {(v.method, v.check): v for v in verdicts(stats, n_boot=500, noisy_pairs={"ixg_noisy": "ixg"})}
    top = results[("ixg", "top_layer_sensitivity")]
    assert top.rewards_noise is True and "rewards noise: scores ixg_noisy better than ixg" in top.note
    trap = results[("ixg_noisy", "top_layer_sensitivity")]
    assert trap.clean_method == "ixg" and trap.noise_ci_high < 0
    assert results[("ixg", "input_sensitivity")].rewards_noise is False
    assert results[("ixg_noisy", "input_sensitivity")].noise_ci_low > -np.inf
    without_pairs = verdicts(stats, n_boot=200)
    assert all(v.rewards_noise is None and v.clean_method == "" for v in without_pairs)
