"""Saliency-card attributes (Boggust et al., FAccT 2023) from hand-made measurements: each rule's pass, fail and
inconclusive."""

from __future__ import annotations

import pandas as pd
import pytest

from salbench.config import load_catalog
from salbench.report import cards

EVIDENCE = "index.html#x"


def _run(method="m", device="cpu", seed=0, seconds=1.0, n=10, mode=False, warn=False, model="cnn") -> cards.Run:
    return cards.run_of({"dataset": "shapes", "model": model, "method": method, "seed": seed, "device": device,
                         "compute_s": seconds, "provenance": {"determinism": {"deterministic_algorithms": mode,
                                                                               "deterministic_warn_only": warn}}}, n)


def test_run_reads_seconds_per_item_from_the_store_attrs():
    assert _run(seconds=2.0, n=8).seconds_per_item == 0.25
    assert cards.run_of({"runtime_s": 3.0}, 3).seconds_per_item == 1.0  # stores without compute_s


def test_determinism():
    assert cards.determinism([], False, EVIDENCE).status == "inconclusive"
    plain = cards.determinism([_run()], False, EVIDENCE)
    assert plain.status == "pass" and "draws no random numbers" in plain.summary
    seeded = cards.determinism([_run(seed=7)], True, EVIDENCE)
    assert seeded.status == "pass" and "seed 7" in seeded.summary
    assert cards.determinism([_run(seed=None)], True, EVIDENCE).status == "fail"
    assert cards.determinism([_run(seed=None)], False, EVIDENCE).status == "pass"  # no randomness: no seed needed
    gpu = cards.determinism([_run(device="cuda:0", mode=True, warn=True)], False, EVIDENCE)
    assert gpu.status == "inconclusive" and "cuda:0" in gpu.summary
    assert cards.determinism([_run(device="cuda:0", mode=True)], False, EVIDENCE).status == "pass"


def _ranks(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "shapes", "model": "cnn", "metric": metric, "method": method, "rank": low,
                          "rank_low": low, "rank_high": high, "n_ranked": 5} for method, metric, low, high in rows])


def test_hyperparameter_dependence():
    ranks = _ranks([("sg", "deletion", 1, 2), ("sg_wide", "deletion", 2, 3), ("sg", "pg", 1, 1),
                    ("sg_wide", "pg", 3, 4)])
    variants = {"sg": {"noise_level": 0.15}, "sg_wide": {"noise_level": 0.5}}
    failed = cards.hyperparameters("sg", {"noise_level": 0.15, "internal_batch_size": 8}, variants, ranks, EVIDENCE)
    assert failed.status == "fail" and "pg on shapes/cnn vs sg_wide" in failed.summary
    overlapping = cards.hyperparameters("sg", {"noise_level": 0.15}, variants, ranks[ranks["metric"] == "deletion"],
                                        EVIDENCE)
    assert overlapping.status == "pass"
    single = cards.hyperparameters("sg", {"noise_level": 0.15, "seed": 0}, {"sg": {}}, ranks, EVIDENCE)
    assert single.status == "inconclusive" and single.summary.startswith("one setting of noise_level ran")
    assert cards.hyperparameters("g", {"max_batch": 4}, {"g": {}}, ranks, EVIDENCE).status == "pass"


@pytest.mark.parametrize("method, status, words", [
    ("gradient", "pass", "only the model's outputs"), ("centre", "pass", "reads no model"),
    ("gradcam", "fail", "a named internal layer"), ("cam", "fail", "global-average-pooling"),
    ("coda_contributions", "fail", "family coda"), ("lrp_epsilon", "fail", "propagation rules"),
])
def test_model_agnosticism_from_the_catalog(method, status, words):
    attribute = cards.agnosticism(load_catalog()["methods"][method], EVIDENCE)
    assert attribute.status == status and words in attribute.summary


def test_efficiency_against_the_study_median():
    runs = [_run("a", seconds=1.0), _run("b", seconds=2.0), _run("c", seconds=50.0), _run("edges", seconds=0.01)]
    medians = cards.cost_medians(runs, {"edges"})
    assert medians == {("shapes", "cnn"): pytest.approx(0.2)}  # the control is not counted
    assert cards.efficiency([runs[0]], medians, EVIDENCE).status == "pass"
    slow = cards.efficiency([runs[2]], medians, EVIDENCE)
    assert slow.status == "fail" and "25.0x" in slow.summary and "5 s per item" in slow.summary
    assert cards.efficiency([_run(seconds=float("nan"))], medians, EVIDENCE).status == "inconclusive"


def _verdicts(rows: list[tuple[str, bool, bool, object]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "shapes", "model": "cnn", "method": "m", "check": check, "passed": passed,
                          "decisive": decisive, "trustworthy": trusted, "rewards_noise": None}
                         for check, passed, decisive, trusted in rows])


def test_sensitivity_counts_only_trusted_checks():
    passed = _verdicts([("model_sensitivity", True, True, True), ("emprt", True, True, None)])
    assert cards.sensitivity("model sensitivity", passed, EVIDENCE).status == "pass"
    failed = _verdicts([("model_sensitivity", True, True, True), ("smprt", False, True, True)])
    assert cards.sensitivity("model sensitivity", failed, EVIDENCE).status == "fail"
    untrusted = cards.sensitivity("model sensitivity", _verdicts([("model_sensitivity", False, True, False)]), EVIDENCE)
    assert untrusted.status == "inconclusive" and "not counted" in untrusted.summary
    assert cards.sensitivity("model sensitivity", _verdicts([("emprt", True, False, True)]),
                             EVIDENCE).status == "inconclusive"  # the interval crosses the threshold
    assert cards.sensitivity("label sensitivity", _verdicts([("emprt", True, True, True)]),
                             EVIDENCE).status == "inconclusive"  # none of its checks ran


def test_standing_of_a_metric_family():
    families = {"pg": "localisation", "deletion": "faithfulness", "insertion": "faithfulness"}
    summary = pd.DataFrame({"metric": ["pg", "deletion", "insertion"], "method": "m",
                            "beats_controls": pd.array([True, True, False], dtype="boolean")})
    ranks = _ranks([("m", "pg", 1, 2), ("m", "deletion", 2, 3), ("m", "insertion", 4, 5)])
    assert cards.standing("localisation", summary, ranks, families, EVIDENCE).status == "pass"
    mixed = cards.standing("faithfulness", summary, ranks, families, EVIDENCE)
    assert mixed.status == "inconclusive" and "mean rank 3.0 of 5" in mixed.summary
    assert cards.standing("minimality", summary, ranks, families, EVIDENCE).status == "inconclusive"
    none = summary.assign(beats_controls=pd.array([False] * 3, dtype="boolean"))
    assert cards.standing("faithfulness", none, ranks, families, EVIDENCE).status == "fail"
