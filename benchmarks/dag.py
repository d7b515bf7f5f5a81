"""How long Snakemake takes to plan a large study: ``snakemake -n`` on a generated config of about 1,000 jobs,
and the no-op rerun once every output exists.

The config is the embedded default (``config/config.yaml``) with its data sets repeated under new seeds
(each copy trains its own models) and its methods repeated under new names (``gradcam_2: {method: gradcam}``),
so every (data set, model, method) item is a real job of the real Snakefile. The planning run starts from an
empty work folder; then every output is created empty, ``snakemake --touch`` marks them as made (without
computing them) and the no-op run must plan nothing. Outputs made this way carry no Snakemake metadata, so
the no-op run skips the params/code comparisons it would read from a real run's metadata (one small record
per output). Each timing is the median (and the minimum, the least disturbed by other load) of ``--repeats``
runs, in wall seconds including Python start-up and the Snakefile's parse.

    .venv/bin/python benchmarks/dag.py [--dataset-copies 1] [--method-copies 4] [--repeats 3]

Writes ``benchmarks/results/<hostname>-<YYYY-MM-DD>-dag.json``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import yaml

from methods import write_results  # the benchmarks' shared results writer

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def generated_config(dataset_copies: int, method_copies: int) -> dict:
    """The embedded default with its data sets and methods repeated ``*_copies`` times under new names."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config = {**base, "study": "dag_benchmark", "datasets": {}, "methods": {}}
    for copy in range(1, dataset_copies + 1):
        suffix = "" if copy == 1 else f"_{copy}"
        for name, spec in base["datasets"].items():
            spec = yaml.safe_load(yaml.safe_dump(spec))  # deep copy
            spec.setdefault("params", {})["seed"] = spec["params"].get("seed", 0) + 100 * (copy - 1)
            if "models_from" in spec:
                spec["models_from"] += suffix
            config["datasets"][name + suffix] = spec
    for copy in range(1, method_copies + 1):
        for name, spec in base["methods"].items():
            spec = dict(spec or {})
            spec.setdefault("method", name)
            config["methods"][name if copy == 1 else f"{name}_{copy}"] = spec
    return config


def run(workdir: Path, config: Path, *args: str) -> tuple[float, str]:
    """Wall seconds and output of one snakemake call (local, no profile) that must succeed."""
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           "--cores", "1", "--workflow-profile", "none", "--quiet", "rules", *args]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def make_outputs(workdir: Path, config: Path) -> int:
    """Create every output the study would make, empty (folders for stores and data sets, files otherwise),
    so that ``--touch`` can mark them as made; returns how many."""
    _, summary = run(workdir, config, "--summary")
    paths = [line.split("\t")[0] for line in summary.splitlines()[1:] if "\t" in line]
    for rel in paths:
        path = workdir / rel
        if path.suffix in ("", ".zarr"):  # directory() outputs: zarr stores and resources/datasets/<name>
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return len(paths)


def planned_total(output: str) -> int:
    """The `total` row of a dry run's job table (0 when nothing is to be done)."""
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-copies", type=int, default=1, help="copies of the default's data sets")
    parser.add_argument("--method-copies", type=int, default=4,
                        help="copies of the default's methods (4: about 1,150 jobs with the default config)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each kind (median reported)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    config = generated_config(args.dataset_copies, args.method_copies)
    with tempfile.TemporaryDirectory(prefix="salbench-dag-") as tmp:
        workdir = Path(tmp)
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        plans = [run(workdir, config_path, "-n") for _ in range(args.repeats)]
        jobs = planned_total(plans[0][1])
        make_outputs(workdir, config_path)
        touch_s, _ = run(workdir, config_path, "--touch")
        noops = [run(workdir, config_path, "-n") for _ in range(args.repeats)]
        leftover = planned_total(noops[0][1])
        if leftover:
            raise RuntimeError(f"the rerun after --touch still plans {leftover} jobs")
    plan_s = statistics.median(s for s, _ in plans)
    noop_s = statistics.median(s for s, _ in noops)
    print(f"{jobs} jobs ({len(config['datasets'])} data sets, {len(config['models'])} models, "
          f"{len(config['methods'])} methods): plan {plan_s:.1f} s (min {min(s for s, _ in plans):.1f}), "
          f"no-op rerun {noop_s:.1f} s (min {min(s for s, _ in noops):.1f}), touch {touch_s:.1f} s")
    payload = {
        "snakemake": version("snakemake"), "repeats": args.repeats,
        "datasets": len(config["datasets"]), "models": len(config["models"]), "methods": len(config["methods"]),
        "jobs": jobs, "plan_s": plan_s, "noop_rerun_s": noop_s, "touch_s": touch_s,
        "plan_min_s": min(s for s, _ in plans), "noop_rerun_min_s": min(s for s, _ in noops),
        "plan_runs_s": [s for s, _ in plans], "noop_runs_s": [s for s, _ in noops],
        "note": "wall seconds of `snakemake -n` on an empty work folder (plan) and after every output was "
                "created empty and marked as made by `--touch` (no-op rerun; no metadata, so params/code "
                "comparisons are skipped); each includes Python start-up and the Snakefile's parse",
    }
    write_results(args.out, "dag", payload)


if __name__ == "__main__":
    main()
