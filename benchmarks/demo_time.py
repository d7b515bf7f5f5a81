"""Where a finished run's time went: wall time, job time by rule, how many jobs ran side by side, the slowest jobs,
and the training records (wall and CPU seconds, accuracies), from the run's Snakemake log and its results.

    .venv/bin/python benchmarks/demo_time.py [--workdir .] [--log .snakemake/log/<time>.snakemake.log]

Run it after `make demo` (on an otherwise idle machine for figures to report). Writes
``benchmarks/results/<hostname>-<YYYY-MM-DD>-demo_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from methods import write_results  # the benchmarks' shared results writer

from salbench.progress import IDLE_RULES, latest_log, parse_log


def training_records(workdir: Path) -> dict[str, dict]:
    """Each ``results/*/models/*.train.json``: wall and CPU seconds, epochs, final accuracies."""
    records = {}
    for path in sorted(workdir.glob("results/*/models/*.train.json")):
        record = json.loads(path.read_text())
        records[str(path.relative_to(workdir))] = {
            key: record.get(key) for key in ("seconds", "cpu_seconds", "epochs", "final_val_accuracy",
                                             "final_train_accuracy")}
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--log", type=Path, help="a Snakemake log (default: the work folder's newest)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    progress = parse_log(args.log or latest_log(args.workdir))
    durations = {rule: values for rule, values in progress.durations().items() if rule not in IDLE_RULES}
    busy = sum(s for values in durations.values() for s in values)
    wall = progress.elapsed()
    by_rule = {rule: {"jobs": len(values), "total_min": sum(values) / 60, "mean_s": statistics.mean(values),
                      "max_s": max(values)} for rule, values in sorted(durations.items(), key=lambda kv: -sum(kv[1]))}
    for rule, row in by_rule.items():
        print(f"{rule:<24} {row['jobs']:>4} jobs  {row['total_min']:6.1f} min  mean {row['mean_s']:6.1f} s  "
              f"max {row['max_s']:6.0f} s")
    print(f"wall {wall / 60:.1f} min for {progress.done} of {progress.total} jobs; {busy / 60:.1f} min of job time, "
          f"{busy / wall if wall else 0:.2f} jobs at once on average")
    write_results(args.out, "demo_time", {
        "log": str(progress.log), "complete": progress.complete, "jobs": progress.total, "done": progress.done,
        "wall_min": wall / 60, "job_min": busy / 60, "jobs_at_once": busy / wall if wall else None,
        "cores": os.cpu_count(), "by_rule": by_rule, "training": training_records(args.workdir),
        "note": "job times are the log's start-to-finish seconds (1 s resolution), wall the first to the last "
                "time stamp; training seconds and CPU seconds are the jobs' own records"})


if __name__ == "__main__":
    main()
