"""The benchmark harness's table: each summariser reads its benchmark's JSON, cases without a target included."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_harness", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_metric_rows_hold_the_floor_where_there_is_one_and_library_ratios_without_target():
    rows = harness()._metrics({"results": [
        {"case": "road_morf", "ratio_floor": 0.4, "ratio_floor_plus_imputation": 1.01, "ratio_pytorch_grad_cam": 4.5},
        {"case": "road_morf, grey", "ratio_quantus_ROAD": 6.7},  # a library comparison only: no floor
    ]})
    assert rows == [
        ("metrics", "road_morf", "floor_plus_imputation", 1.01, ">= 0.9", True),
        ("metrics", "road_morf", "pytorch_grad_cam", 4.5, "", None),
        ("metrics", "road_morf, grey", "quantus_ROAD", 6.7, "", None),
    ]


def test_every_summariser_reads_the_committed_harness_results():
    run = harness()
    files = sorted(BENCHMARKS.glob("results/*-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].json"))
    assert files, "no harness result file (benchmarks/run.py writes <machine>-<date>.json)"
    for path in files:
        records = json.loads(path.read_text())["benchmarks"]
        for bench in run.BENCHMARKS:
            record = records.get(bench.name)
            if record is not None and "error" not in record:
                rows = bench.summarise(record)
                assert rows and all(len(row) == 6 for row in rows), (path.name, bench.name)


def test_meta_evaluation_row_holds_the_ratio_against_its_target():
    run = harness()
    rows = run._meta_evaluation({"results": [
        {"methods": ["a", "b", "c"], "metrics": ["sparseness", "deletion"], "ratio_metaquantus": 4.2,
         "ratio_metaquantus_no_gc": 1.5}]})
    assert rows == [("meta_evaluation", "3 methods x 2 metrics", "vs metaquantus", 4.2, ">= 5", False),
                    ("meta_evaluation", "3 methods x 2 metrics", "vs metaquantus without gc.collect", 1.5, "", None)]
    (bench,) = [b for b in run.BENCHMARKS if b.name == "meta_evaluation"]
    assert bench.summarise is run._meta_evaluation and bench.quick  # in the harness, with a smoke setting
