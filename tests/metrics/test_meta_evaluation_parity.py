"""Parity of the meta-evaluation aggregates with the ``metaquantus`` package (newer-checks.md §4, parity (a), (b)).

Our per-test arrays are written into a ``MetaEvaluation`` object's result holders, and its own analysis
(``run_intra_analysis``, ``run_inter_analysis``, ``run_meta_consistency_analysis``) must give our numbers. Its
IEC_AR reads every direction as lower-is-better (``if score_direction:``), so the paper's higher-is-better rule is
obtained from it with ``score_direction=None``.
"""

import numpy as np
import pytest
from metaquantus import MetaEvaluation

from salbench.metrics.meta_evaluation import PerturbedScores, default_suite, meta_consistency

METHODS = ("a", "b", "c")
PACKAGE_KEYS = {"IAC_NR": "IAC_{NR} mean", "IAC_AR": "IAC_{AR} mean", "IEC_NR": "IEC_{NR} mean",
                "IEC_AR": "IEC_{AR} mean"}


def random_scores(rng: np.random.Generator, iterations: int = 2, draws: int = 3, items: int = 12) -> PerturbedScores:
    reference = rng.normal(size=(len(METHODS), items)) + np.arange(len(METHODS))[:, None]
    perturbed = reference + rng.normal(0.3, 1.0, size=(iterations, draws, len(METHODS), items))
    subsets = rng.random((iterations, draws, items)) < 0.7
    subsets[..., :2] = True  # at least two items per draw: no empty subset (where the package sets p = 0)
    return PerturbedScores(reference, perturbed, subsets)


def package_results(results: dict, score_direction: str | None) -> dict:
    first = next(iter(results.values()))
    iterations, draws = first.perturbed.shape[:2]
    evaluation = MetaEvaluation(test_suite={test.name: None for test in results}, xai_methods={m: {} for m in METHODS},
                                iterations=iterations, nr_perturbations=draws, write_to_file=False)
    evaluation.results_y_preds = np.zeros(first.reference.shape[1])
    for test, scores in results.items():
        evaluation.results_eval_scores[test.name] = dict(zip(METHODS, scores.reference))
        evaluation.results_eval_scores_perturbed[test.name] = {
            i: {m: list(scores.perturbed[i, :, x]) for x, m in enumerate(METHODS)} for i in range(iterations)}
        evaluation.results_indices_perturbed[test.name] = {i: list(scores.subsets[i]) for i in range(iterations)}
    evaluation.run_intra_analysis()
    evaluation.run_inter_analysis(score_direction=score_direction)
    return evaluation.run_meta_consistency_analysis()


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_aggregates_match_metaquantus(higher_is_better):
    rng = np.random.default_rng(7)
    results = {test: random_scores(rng) for test in default_suite()}
    ours = {row["kind"]: row for row in meta_consistency(results, higher_is_better)}
    theirs = package_results(results, score_direction=None if higher_is_better else "lower")
    for kind, package_kind in (("model", "Model"), ("input", "Input")):
        package = theirs[package_kind]
        for name, key in PACKAGE_KEYS.items():
            assert ours[kind][name] == pytest.approx(package["consistency_results"][key], abs=1e-12), name
        assert ours[kind]["MC"] == pytest.approx(package["MC_mean"], abs=1e-12)
        assert ours[kind]["MC_std"] == pytest.approx(package["MC_std"], abs=1e-12)


def test_package_direction_bug_inverts_iec_ar_for_higher_is_better():
    rng = np.random.default_rng(7)
    results = {test: random_scores(rng) for test in default_suite()}
    ours = {row["kind"]: row for row in meta_consistency(results, higher_is_better=True)}
    buggy = package_results(results, score_direction="higher")["Model"]["consistency_results"]["IEC_{AR} mean"]
    assert buggy != pytest.approx(ours["model"]["IEC_AR"])
    lower = {row["kind"]: row for row in meta_consistency(results, higher_is_better=False)}
    assert buggy == pytest.approx(lower["model"]["IEC_AR"], abs=1e-12)


def test_same_estimator_matches_metaquantus_mc_one_half():
    reference = np.random.default_rng(0).normal(size=(len(METHODS), 6))
    same = PerturbedScores(reference, reference[None, None].copy(), np.ones((1, 1, 6), bool))
    results = {test: same for test in default_suite()}
    theirs = package_results(results, score_direction=None)
    for row in meta_consistency(results, higher_is_better=True):
        assert row["MC"] == theirs[row["kind"].capitalize()]["MC_mean"] == 0.5
