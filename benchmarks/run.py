"""Every salbench benchmark in one command: run them, print one table of the figures with their targets, and
write ``benchmarks/results/<machine>-<YYYY-MM-DD>.json`` (each benchmark's full JSON plus the table).

Benchmarks (each a script beside this one, also runnable alone; their docstrings define the figures):
methods (throughput against direct captum/zennit calls and the forward+backward floor), op_counts (operators
and host syncs per batch against the same library calls: what decides a launch-bound GPU's pace), perturbation
(batched against a per-item loop and libraries), metrics (perturbation metrics against their forward floor
and Quantus / pytorch_grad_cam), sanity (the randomisation cascade against its floor and quantus.MPRT),
newer_checks (eMPRT and sMPRT against quantus.EfficientMPRT and quantus.SmoothMPRT), meta_evaluation (the
metric meta-evaluation against metaquantus.MetaEvaluation, one per metric),
dag (``snakemake -n`` and the no-op rerun of a ~1,000-job config), pipeline (a job's overhead outside the
compute, zarr write throughput and bytes per map, scaling with the item count) and determinism (rerun and
CPU agreement of every configured method on ``--device``).

    .venv/bin/python benchmarks/run.py [--quick] [--only methods metrics] [--device cpu] [--machine NAME]
    make bench          # the same, every benchmark at its default settings

``--quick`` runs each with fewer rounds and items (a smoke run: minutes, noisier figures). On a GPU, the
benchmarks that take a device run on it and the others on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent

#: one row of the table: (benchmark, case, figure, value, target as text, met or not (None: no target))
Row = tuple[str, str, str, float, str, bool | None]


def _at_least(value: float, target: float) -> tuple[str, bool]:
    return f">= {target:g}", value >= target


def _methods(result: dict[str, Any]) -> list[Row]:
    rows = []
    for r in result["results"]:
        case = f"{r['model']}/{r['method']}"
        if "ratio" in r:
            rows.append(("methods", case, f"vs {r['reference']}", r["ratio"], *_at_least(r["ratio"], 0.95)))
        if "ratio_floor" in r:
            rows.append(("methods", case, "vs fwd+bwd floor", r["ratio_floor"], *_at_least(r["ratio_floor"], 0.8)))
        if "ratio" not in r and "ratio_floor" not in r:
            rows.append(("methods", case, "items/s", r["ours_items_per_s"], "", None))
    return rows


def _op_counts(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in result["results"]:
        case = f"{r['model']}/{r['method']}"
        ratio = r["ratio_compute_ops"]
        rows.append(("op_counts", case, f"ops vs {r['reference']}", ratio, "<= 1.05", ratio <= 1.05))
        rows.append(("op_counts", case, "host syncs ours - library", r["extra_syncs"], "<= 0", r["extra_syncs"] <= 0))
    return rows


def _perturbation(result: dict[str, Any]) -> list[Row]:
    rows = []
    for r in result["results"]:
        for key, value in r.items():
            if key.startswith("ratio_"):  # RSP may cost at most 3x LRP-epsilon (issue 5)
                target = _at_least(value, 1 / 3) if key == "ratio_zennit_lrp_epsilon" else ("", None)
                rows.append(("perturbation", r["case"], key.removeprefix("ratio_"), value, *target))
        rows.append(("perturbation", r["case"], "s/item batched", r["batched_s_per_item"], "", None))
    return rows


def _metrics(result: dict[str, Any]) -> list[Row]:
    rows = []
    for r in result["results"]:
        # the floor including the imputation or noise where the metric has one; none for the library-only cases
        floor = next((k for k in ("ratio_floor_plus_imputation", "ratio_floor_plus_noise", "ratio_floor") if k in r), None)
        if floor is not None:
            rows.append(("metrics", r["case"], floor.removeprefix("ratio_"), r[floor], *_at_least(r[floor], 0.9)))
        for key, value in r.items():
            if key.startswith("ratio_") and not key.startswith("ratio_floor"):
                rows.append(("metrics", r["case"], key.removeprefix("ratio_"), value, "", None))
    return rows


def _sanity(result: dict[str, Any]) -> list[Row]:
    rows = [("sanity", f"cascade/{r['method']}", "vs floor", r["ratio_floor"], *_at_least(r["ratio_floor"], 0.9))
            for r in result["cascade_vs_floor"]]
    rows += [("sanity", f"MPRT/{r['method']}", "vs quantus.MPRT", r["ratio_quantus"],
              *_at_least(r["ratio_quantus"], 5.0)) for r in result["check_vs_quantus"]]
    return rows


def _newer_checks(result: dict[str, Any]) -> list[Row]:
    rows = [("newer_checks", f"eMPRT+sMPRT/{r['method']}", "vs quantus (all measures)", r["ratio_quantus"],
             *_at_least(r["ratio_quantus"], 5.0)) for r in result["results"]]
    rows += [("newer_checks", f"eMPRT+sMPRT/{r['method']}", "vs quantus (spearman_abs only)", r["ratio_one_measure"],
              "", None) for r in result["results"]]
    return rows


def _meta_evaluation(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in result["results"]:
        case = f"{len(r['methods'])} methods x {len(r['metrics'])} metrics"
        rows.append(("meta_evaluation", case, "vs metaquantus", r["ratio_metaquantus"],
                     *_at_least(r["ratio_metaquantus"], 5.0)))
        rows.append(("meta_evaluation", case, "vs metaquantus without gc.collect", r["ratio_metaquantus_no_gc"], "",
                     None))
    return rows


def _dag(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    older = [{"jobs": result.get("jobs"), **{key: {"median": result.get(key)} for key in ("plan_s", "noop_rerun_s")}}]
    for study in result.get("studies", older):  # records before 2026-12-07 held one study
        case = f"{study['jobs']} jobs"
        for key, label in (("plan_s", "snakemake -n s"), ("noop_rerun_s", "no-op rerun s")):
            target = study["jobs"] < 25_000  # the 20,000-job study: at most 60 s each
            rows.append(("dag", case, label, study[key]["median"], "<= 60" if target else "",
                         study[key]["median"] <= 60 if target else None))
    return rows


def _transformers(result: dict[str, Any]) -> list[Row]:
    return [("transformers", r["case"], f"vs {r['floor']} floor", r["ratio_floor"], *_at_least(r["ratio_floor"], 0.8))
            for r in result["results"]]


def _attnlrp(result: dict[str, Any]) -> list[Row]:
    return [("attnlrp", r["case"], "vs lxt", r["ratio"], *_at_least(r["ratio"], 0.95)) if "ratio" in r else
            ("attnlrp", r["case"], "vs forward+backward", r["ratio_floor"], "", None)  # no lxt case (timm model)
            for r in result["results"]]


def _pipeline(result: dict[str, Any]) -> list[Row]:
    overhead = result["job_overhead"]
    limit = 5.0 + overhead["model_load_s"]
    rows: list[Row] = [("pipeline", "saliency job", "overhead s", overhead["overhead_s"], f"< {limit:.2f}",
                        overhead["overhead_s"] < limit)]
    fixed = result.get("fixed_cost")  # since 2026-12-07: a job through the warm worker vs in its own process
    if fixed:
        rows += [("pipeline", "job fixed cost via worker", "s", fixed["worker"]["fixed_cost_s_median"], "<= 0.5",
                  fixed["met"]),
                 ("pipeline", "job fixed cost", "plain/worker", fixed["ratio_plain_over_worker"], "", None)]
    rows += [("pipeline", f"store {r['dtype']}", "bytes/map", r["bytes_per_map"], "", None)
             for r in result["storage"]]
    rows += [("pipeline", f"store {r['dtype']}", "MB/s", r["raw_mb_per_s"], "", None) for r in result["storage"]]
    for method in sorted({r["method"] for r in result["scaling"]}):
        runs = sorted((r for r in result["scaling"] if r["method"] == method), key=lambda r: r["items"])
        per_item = [r["compute_s_per_item"] for r in runs]
        spread = max(per_item) / min(per_item)  # 1 when the compute is exactly linear in the items
        rows.append(("pipeline", f"scaling {method}", f"compute/item max/min over {runs[0]['items']}..."
                     f"{runs[-1]['items']} items", spread, "", None))
        rows.append(("pipeline", f"scaling {method}", "peak RSS MB max/min",
                     max(r["peak_rss_mb"] for r in runs) / min(r["peak_rss_mb"] for r in runs), "", None))
    return rows


def _determinism(result: dict[str, Any]) -> list[Row]:
    return [("determinism", result["device"], "pairs bitwise equal on rerun",
             result["rerun_bitwise_equal"], f"of {result['ran']}", result["rerun_bitwise_equal"] == result["ran"])]


@dataclass(frozen=True)
class Benchmark:
    name: str
    full: list[str]  # extra arguments at the default settings
    quick: list[str]  # ... and for a smoke run
    takes_device: bool
    summarise: Callable[[dict[str, Any]], list[Row]]
    on_gpu: tuple[str, ...] = ()  # ... and on a GPU (bigger batches)


BENCHMARKS = [
    Benchmark("methods", [], ["--repeats", "2", "--min-seconds", "0.5"], True, _methods,
              ("--batch-scale", "8", "--min-seconds", "1")),
    Benchmark("op_counts", [], ["--models", "small_cnn"], True, _op_counts),
    Benchmark("perturbation", [], ["--batch", "4", "--repeats", "1", "--loop-items", "2"], False, _perturbation),
    Benchmark("metrics", [], ["--items", "8", "--repeats", "1", "--min-seconds", "0.3"], True, _metrics),
    Benchmark("sanity", [], ["--items", "4", "--rounds", "1", "--floor-rounds", "2"], False, _sanity),
    Benchmark("newer_checks", [], ["--items", "4", "--samples", "4", "--rounds", "1"], False, _newer_checks),
    Benchmark("meta_evaluation", [], ["--items", "4", "--iterations", "1", "--perturbations", "2"], False,
              _meta_evaluation),
    Benchmark("dag", [], ["--repeats", "1"], False, _dag),
    Benchmark("pipeline", [], ["--items", "8"], True, _pipeline),
    Benchmark("determinism", [], ["--batch", "2"], True, _determinism),
    Benchmark("transformers", [], ["--rounds", "2", "--batch", "2"], True, _transformers),
    Benchmark("attnlrp", [], ["--rounds", "2", "--batch", "2"], True, _attnlrp),
]


def run_one(bench: Benchmark, quick: bool, device: str, folder: Path, timeout: float | None) -> dict[str, Any]:
    """Run one benchmark script into ``folder``; its JSON record (with the wall seconds it took), or an error."""
    args = [sys.executable, str(HERE / f"{bench.name}.py"), *(bench.quick if quick else bench.full),
            "--out", str(folder)]
    if bench.takes_device:
        args += ["--device", device, *(bench.on_gpu if device.startswith("cuda") else ())]
    print(f"\n== {bench.name}: {' '.join(args[1:])}", flush=True)
    start = time.perf_counter()
    try:
        status = subprocess.run(args, cwd=HERE, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        status = f"killed after the {timeout:g} s timeout"
    written = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if status != 0 or not written:
        return {"error": f"exit status {status}", "benchmark_wall_s": time.perf_counter() - start}
    record = json.loads(written[-1].read_text())
    written[-1].unlink()
    record["benchmark_wall_s"] = time.perf_counter() - start
    return record


def print_table(rows: list[Row]) -> None:
    print(f"\n{'benchmark':15s} {'case':44s} {'figure':40s} {'value':>10s}  target")
    for bench, case, figure, value, target, met in rows:
        mark = "" if met is None else ("  ok" if met else "  MISSED")
        print(f"{bench:15s} {case[:44]:44s} {figure[:40]:40s} {value:10.3f}  {target}{mark}")
    missed = [r for r in rows if r[5] is False]
    print(f"\n{sum(r[5] is True for r in rows)} targets met, {len(missed)} missed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and items: a smoke run")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run only these")
    parser.add_argument("--device", default="cpu", help="device for the benchmarks that take one (cpu, cuda)")
    parser.add_argument("--machine", default=socket.gethostname(), help="name in the result file")
    parser.add_argument("--timeout", type=float, help="seconds each benchmark may run before it is stopped")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    records, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="salbench-bench-") as tmp:
        for bench in chosen:
            records[bench.name] = run_one(bench, args.quick, args.device, Path(tmp), args.timeout)
            if "error" in records[bench.name]:  # the others still run; the table and JSON say which failed
                rows.append((bench.name, "FAILED", records[bench.name]["error"], float("nan"), "", False))
                continue
            try:
                rows += bench.summarise(records[bench.name])
            except (KeyError, TypeError, ValueError) as err:  # a result the table cannot read: keep the JSON
                rows.append((bench.name, "FAILED", f"summary: {type(err).__name__}: {err}", float("nan"), "", False))
    print_table(rows)
    today = datetime.date.today().isoformat()
    result = {
        "machine": args.machine, "date": today, "device": args.device, "quick": args.quick,
        "targets_met": sum(r[5] is True for r in rows), "targets_missed": sum(r[5] is False for r in rows),
        "table": [dict(zip(("benchmark", "case", "figure", "value", "target", "met"), r)) for r in rows],
        "benchmarks": records,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.machine}-{today}.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
