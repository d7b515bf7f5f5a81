"""Published claims as data: the shipped claims file validates, errors name the claim and key, outcomes are right
on hand-worked tables, and the paired interval of a comparison equals a plain resampling loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from salbench.config import load_catalog, load_config
from salbench.report import claims
from salbench.stats import resample_weights
from salbench.report.tables import aggregate

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = ROOT / "config" / "claims.yaml"


def test_shipped_claims_validate_against_the_registries():
    parsed = claims.load_claims(CLAIMS, load_catalog())
    assert len(parsed) >= 20 and len({c.id for c in parsed}) == len(parsed)
    assert {c.kind for c in parsed} == set(claims.KINDS)
    assert all(c.paper and c.evidence in claims.EVIDENCE for c in parsed)


def test_the_demo_config_is_in_scope_of_the_claims_whose_data_it_has():
    demo = load_config(ROOT / "config" / "config.yaml")
    parsed = {c.id: c for c in claims.load_claims(CLAIMS, load_catalog())}
    for cid in ("adebayo2018-guided-backprop-top-layers", "kindermans2019-ig-zero-baseline-not-invariant",
                "torchray-gradcam-beats-gradient", "peng2022-mdm-beats-gradcam"):
        assert claims.scoped_pairs(parsed[cid], demo)
    assert claims.method_ids("integrated_gradients", demo, {"baseline": "black"}, load_catalog()) == [
        "integrated_gradients"]  # the catalog's default baseline
    assert not claims.scoped_pairs(parsed["torchray-voc07-vgg16"], demo)  # VOC07 numbers: not run on the demo


def _write(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "claims": [entry]}))
    return path


GOOD = {"id": "c1", "kind": "verdict", "claim": "x", "method": "gradcam", "check": "model_sensitivity",
        "expect": "pass", "source": {"paper": "p"}}


@pytest.mark.parametrize("change, words", [
    ({"method": "gradcan"}, ["'c1'", "'method'", "'gradcan'", "gradcam"]),
    ({"expect": "passes"}, ["'c1'", "'expect'", "pass, fail"]),
    ({"check": "model_sensitivty"}, ["'c1'", "'check'", "model_sensitivity"]),
    ({"kind": "rank"}, ["'c1'", "'kind'", "verdict, compare, value"]),
    ({"colour": "red"}, ["'c1'", "'colour'", "unknown"]),
    ({"source": {"paper": "p", "evidence": "rumour"}}, ["'c1'", "'source.evidence'", "mem"]),
    ({"kind": "compare", "metric": "pointing_gam", "better": "gradcam", "worse": "gradient", "method": None},
     ["'c1'", "'metric'", "pointing_game"]),
    ({"kind": "value", "metric": "pointing_game", "values": {"gradcam": "high"}, "tolerance": 0.1, "method": None},
     ["'c1'", "'values.gradcam'", "'high'"]),
    ({"kind": "value", "metric": "pointing_game", "values": {"gradcam": 0.5}, "method": None},
     ["'c1'", "'tolerance'", "missing"]),
])
def test_errors_name_the_claim_and_key(tmp_path, change, words):
    entry = {**GOOD, **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    if entry["kind"] != "verdict":
        entry.pop("check"), entry.pop("expect")
    with pytest.raises(claims.ClaimError) as err:
        claims.load_claims(_write(tmp_path, entry), load_catalog())
    for word in words:
        assert word in str(err.value), str(err.value)


def test_a_duplicated_id_is_an_error(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [GOOD, GOOD]}))
    with pytest.raises(claims.ClaimError, match="'c1': id is used twice"):
        claims.load_claims(path)


def test_paired_difference_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(5)
    n = 30
    targets = rng.integers(0, 3, size=n)
    a, b = rng.random(n), rng.random(n) * 0.8
    b[[3, 7]] = np.nan  # b cannot score two items: they leave b's aggregate only
    items = [f"i{k:02d}" for k in range(n)]
    scores = pd.DataFrame({"item": items * 2, "target": np.tile(targets, 2), "method": ["a"] * n + ["b"] * n,
                           "value": np.concatenate([a, b])})
    info = {"aggregate": "class_mean", "higher_is_better": False}
    diff, low, high, _ = claims.paired_difference(scores, "a", "b", info, 400, np.random.default_rng(11))
    ok = ~np.isnan(b)
    assert diff == pytest.approx(-(aggregate(a, targets, "class_mean") - aggregate(b[ok], targets[ok], "class_mean")))
    loop = []
    for weights in resample_weights(n, 400, np.random.default_rng(11)):
        for w in weights.astype(int):
            idx = np.repeat(np.arange(n), w)
            keep = idx[ok[idx]]
            loop.append(-(aggregate(a[idx], targets[idx], "class_mean") - aggregate(b[keep], targets[keep], "class_mean")))
    assert (low, high) == pytest.approx(tuple(np.quantile(loop, [0.025, 0.975])))


def _verdicts(passed: bool, trustworthy) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "model": "m", "method": "gbp", "check": "top_layer_sensitivity",
                          "statistic": "similarity", "passes_when": "below", "threshold": 0.5, "value": 0.9,
                          "ci_low": 0.8, "ci_high": 0.95, "passed": passed, "decisive": True,
                          "trustworthy": trustworthy}])


@pytest.mark.parametrize("passed, trustworthy, outcome, decisive", [
    (False, True, "reproduced", True), (True, True, "not reproduced", True), (False, False, "reproduced", False)])
def test_verdict_claims_follow_the_verdict_and_its_trust(passed, trustworthy, outcome, decisive):
    config = {"datasets": {"d": {"source": "shapes"}}, "models": {"m": {"arch": "small_cnn"}},
              "methods": {"gbp": {"method": "guided_backprop", "params": {}}}}
    claim = claims.parse_claim({"id": "gbp", "kind": "verdict", "claim": "x", "method": "guided_backprop",
                                "check": "top_layer_sensitivity", "expect": "fail", "source": {"paper": "p"}}, 0)
    tables = claims.Tables(config=config, scores=pd.DataFrame(columns=["metric"]), summary=pd.DataFrame(),
                           verdicts=_verdicts(passed, trustworthy), metric_info={})
    row = claims.evaluate([claim], tables).iloc[0]
    assert (row["subject"], row["outcome"], bool(row["decisive"])) == ("gbp", outcome, decisive)
    assert claims.counts(claims.evaluate([claim], tables))[outcome] == 1


def test_params_select_method_ids_by_resolved_params():
    config = {"methods": {"ig": {"method": "integrated_gradients", "params": {}},
                          "ig_uniform": {"method": "integrated_gradients", "params": {"baseline": "uniform"}}}}
    catalog = load_catalog()
    assert claims.method_ids("integrated_gradients", config, {"baseline": "black"}, catalog) == ["ig"]
    assert claims.method_ids("integrated_gradients", config) == ["ig", "ig_uniform"]
    assert claims.method_ids("ig_uniform", config) == ["ig_uniform"]


def test_a_median_value_claim_gets_the_shared_bootstrap_interval():
    """The median and its interval come from salbench.stats (one resampling scheme for the whole report)."""
    from salbench.stats import group_rng, statistic_interval

    values = np.random.default_rng(3).random(40)
    config = {"datasets": {"d": {"source": "shapes"}}, "models": {"m": {"arch": "small_cnn"}},
              "methods": {"g": {"method": "gradient"}}, "metrics": {"pointing_game": {"metric": "pointing_game"}}}
    scores = pd.DataFrame({"dataset": "d", "model": "m", "method": "g", "metric": "pointing_game",
                           "item": [f"i{k}" for k in range(40)], "target": 0, "value": values})
    summary = pd.DataFrame([{"dataset": "d", "model": "m", "method": "g", "metric": "pointing_game", "value": 0.5,
                             "ci_low": 0.4, "ci_high": 0.6, "aggregate": "mean"}])
    claim = claims.parse_claim({"id": "med", "kind": "value", "claim": "x", "metric": "pointing_game", "method": "g",
                                "value": 0.5, "tolerance": 0.2, "statistic": "median", "source": {"paper": "p"}}, 0)
    row = claims.evaluate([claim], claims.Tables(config=config, scores=scores, summary=summary,
                                                 verdicts=pd.DataFrame(), metric_info={}, n_boot=300, seed=4)).iloc[0]
    expected = statistic_interval(values, lambda drawn: np.median(drawn, axis=1), n_boot=300,
                                  rng=group_rng(4, ("d", "m", "g", "pointing_game", "median")))
    assert (row["ours"], row["ci_low"], row["ci_high"]) == pytest.approx(expected)
    assert row["ours"] == pytest.approx(np.median(values)) and row["ci_low"] < row["ours"] < row["ci_high"]
