"""The report's metric-trust section: the meta-evaluation jobs' tables turned into a verdict per metric and resilient ranks."""

import pandas as pd

from salbench.metrics.meta_evaluation import META_COLUMNS
from salbench.report.meta import load_section, pair_tables
from salbench.report.resilience import RESILIENCE_COLUMNS
from salbench.store import write_table


def _meta_row(metric: str, kind: str, mc: float, fails_nr: bool, fails_ar: bool) -> dict:
    row = dict.fromkeys(META_COLUMNS, 0.0)
    row.update(metric=metric, kind=kind, higher_is_better=True, IAC_NR=0.6, IAC_AR=0.9, IEC_NR=0.8, IEC_AR=0.7, MC=mc,
               MC_std=0.01, subset_nr_min=7, subset_ar_min=3, fails_nr=fails_nr, fails_ar=fails_ar,
               flagged=fails_nr or fails_ar or mc <= 0.6)
    return {"dataset": "shapes", "model": "cnn", **row}


def _tables(tmp_path):
    meta = pd.DataFrame([_meta_row("deletion", "model", 0.75, False, False),
                         _meta_row("deletion", "input", 0.58, False, False),
                         _meta_row("sparseness", "model", 0.5, False, True)])
    ranks = pd.DataFrame([dict(zip(RESILIENCE_COLUMNS, ["shapes", "cnn", "deletion", m, mrr, order, lo, hi, 0.5,
                                                        0.7, 0.4, 3, 2]))
                          for m, mrr, order, lo, hi in (("gradient", 1.5, 1, 1, 2), ("gradcam", 1.5, 2, 1, 2))])
    folder = tmp_path / "results" / "shapes" / "cnn" / "meta"
    return [write_table(meta, folder / "meta_evaluation.parquet"), write_table(ranks, folder / "resilience.parquet")]


def test_each_metric_and_kind_gets_its_components_and_verdict(tmp_path):
    (pair,) = pair_tables(load_section(_tables(tmp_path)))
    rows = {(r["metric"], r["kind"]): r for r in pair["meta"]}
    assert (pair["dataset"], pair["model"]) == ("shapes", "cnn")
    model = rows[("deletion", "model")]
    assert model["verdict"] == "trustworthy" and model["MC"] == 0.75 and (model["subset_nr_min"], model["subset_ar_min"]) == (7, 3)
    assert rows[("deletion", "input")]["verdict"].startswith("trust with care")
    assert rows[("sparseness", "model")]["verdict"] == "fails adversarial reactivity"


def test_resilient_ranks_show_range_and_concordance(tmp_path):
    (pair,) = pair_tables(load_section(_tables(tmp_path)))
    (metric,) = pair["resilience"]
    assert (metric["metric"], metric["n_settings"], metric["kendall_w"], metric["mean_tau"]) == ("deletion", 3, 0.7, 0.4)
    assert [(r["method"], r["rank_min"], r["rank_max"]) for r in metric["methods"]] == [
        ("gradient", 1, 2), ("gradcam", 1, 2)]


def test_no_meta_evaluation_no_section():
    assert load_section([]) is None
