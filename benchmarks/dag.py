"""How long Snakemake takes to plan a large study: ``snakemake -n`` on generated configs, and the no-op rerun
once every output exists.

Two kinds of study, each a real config of the real Snakefile:

- ``--sharded 1000 5000 20000`` (the default): an ImageNet-sized evaluation set (``--items``, 50,000) split into
  shards, every method of the embedded default on four models (its three plus a second CNN), every method's
  ``models`` list dropped. Each size sets the shard size so the study has about that many jobs. The data set's
  store is faked by its item count alone (``results/<d>/data.zarr/item/zarr.json``, all the planning reads), so
  the checkpoint that counts the shards is done and the dry run plans every shard.
- ``--copies``: the embedded default with its data sets and methods repeated (``gradcam_2: {method: gradcam}``),
  the earlier benchmark (about 1,150 jobs with ``--method-copies 4``).

The planning run starts from a work folder holding the data only. Then every output the dry run listed is created
empty (folders for stores) with one common modification time, and the no-op run must plan nothing. Outputs made
this way carry no Snakemake metadata, so the no-op run skips the params/code comparisons it would read from a
real run's metadata. Each timing is the median (and the minimum, the least disturbed by other load) of
``--repeats`` runs, in wall seconds including Python start-up and the Snakefile's parse, with the CPU seconds
(user + system) of the snakemake process beside it: on a shared machine the CPU seconds are the stable figure.

    .venv/bin/python benchmarks/dag.py [--sharded 1000 5000 20000] [--repeats 3]
    .venv/bin/python benchmarks/dag.py --copies [--dataset-copies 1] [--method-copies 4]
    git worktree add /tmp/before HEAD~1 && .venv/bin/python benchmarks/dag.py --sharded 20000 --against /tmp/before

``--against`` times each plan beside another checkout's, both at once (one per core), and reports the ratio:
on a shared VM one plan's time varies by 10-20 % from one minute to the next, a pair's ratio by under 10 %.

Writes ``benchmarks/results/dag.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import IO

import yaml

from methods import write_results  # the benchmarks' shared results writer

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
#: the sharded study's evaluation set: ImageNet's validation split
IMAGENET_VAL = 50_000


def _default() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def copies_config(dataset_copies: int, method_copies: int) -> dict:
    """The embedded default with its data sets and methods repeated ``*_copies`` times under new names."""
    base = _default()
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


def sharded_config(shard_size: int, items: int) -> dict:
    """One ``items``-item evaluation set in shards of ``shard_size``, every default method on four models."""
    base = _default()
    dataset = {**base["datasets"]["shapes"], "shard_size": shard_size}
    # 32 px images: the planning check refuses a study larger than the whole disk, and 50,000 maps of 64 px for
    # 150 (model, method) pairs would be; planning does not depend on the image size
    dataset["params"] = {**dataset["params"], "n_eval": items, "image_size": 32}
    from salbench.catalog import study_catalog  # the registry snapshot: a config may be ahead of it

    known = set(study_catalog({})["methods"])
    methods = {name: {k: v for k, v in (spec or {}).items() if k != "models"} for name, spec in base["methods"].items()
               if (spec or {}).get("method", name) in known}
    models = {**base["models"], "cnn_2": base["models"]["cnn"]}
    config = {**base, "study": "dag_benchmark", "datasets": {"shapes": dataset}, "models": models, "methods": methods}
    config.pop("layerwise", None)  # its label files name the default's models only
    config["meta_evaluation"] = {**base["meta_evaluation"], "models": ["cnn"]}
    return config


def shard_size_for(jobs: int, items: int, pairs: int, per_pair: int, fixed: int, batch_size: int) -> int:
    """The shard size (a multiple of ``batch_size``) giving about ``jobs`` jobs: a (model, method) pair has a
    saliency and a score job per shard plus ``per_pair`` others; ``fixed`` jobs do not depend on the pairs."""
    shards = max(1, round((jobs - fixed - pairs * per_pair) / (2 * pairs)))
    return max(batch_size, -(-items // shards // batch_size) * batch_size)


@dataclass
class Started:
    """A snakemake call under way: its process, where its output goes, when it started."""

    command: list[str]
    process: subprocess.Popen
    output: IO[str]
    start: float


def start(workdir: Path, config: Path, *args: str, quiet: bool = True, root: Path = ROOT) -> Started:
    """One snakemake call (local, no profile) of ``root``'s Snakefile, with ``root``'s ``src`` on the path."""
    cmd = [str(SNAKEMAKE), "-s", str(root / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           "--cores", "1", "--workflow-profile", "none", *(["--quiet", "rules"] if quiet else []), *args]
    env = {**os.environ, "SALBENCH_WORKER": "off", **({"PYTHONPATH": str(root / "src")} if root != ROOT else {})}
    output = tempfile.TemporaryFile("w+")  # a file, not a pipe: a listing of 20,000 jobs would fill a pipe
    return Started(cmd, subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True, env=env),
                   output, time.perf_counter())


def finish(started: Started) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of that process and its children) and output of a call that must
    succeed."""
    _, status, usage = os.wait4(started.process.pid, 0)
    seconds = time.perf_counter() - started.start
    started.process.returncode = os.waitstatus_to_exitcode(status)
    started.output.seek(0)
    text = started.output.read()
    started.output.close()
    if started.process.returncode != 0:
        raise RuntimeError(f"{' '.join(started.command)} failed:\n{text[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, text


def run(workdir: Path, config: Path, *args: str, quiet: bool = True) -> tuple[float, float, str]:
    """One snakemake call of this checkout's Snakefile: see ``finish``."""
    return finish(start(workdir, config, *args, quiet=quiet))


def planned_total(output: str) -> int:
    """The `total` row of a dry run's job table (0 when nothing is to be done)."""
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def planned_counts(output: str) -> dict[str, int]:
    """The dry run's job table: rule -> jobs."""
    table = output.split("Job stats:", 1)[-1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def _make(path: Path, folder: bool, stamp: int) -> None:
    if folder:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    os.utime(path, (stamp, stamp))


def fake_data(workdir: Path, dataset: str, items: int) -> None:
    """A fetched data set and a data store that says it holds ``items`` items (what planning reads of it)."""
    stamp = int(time.time())
    _make(workdir / "resources" / "datasets" / dataset, folder=True, stamp=stamp)
    meta = workdir / "results" / dataset / "data.zarr" / "item" / "zarr.json"
    _make(meta, folder=False, stamp=stamp)
    meta.write_text(json.dumps({"shape": [items], "zarr_format": 3, "node_type": "array"}))
    for path in (meta, meta.parent, meta.parent.parent):
        os.utime(path, (stamp, stamp))


def make_outputs(workdir: Path, plan: str) -> int:
    """Create every output a (non-quiet) dry run listed, empty, all with the current time as their modification time
    (no output is older than its inputs, the workflow's own files such as docs/fidelity.md included); returns how
    many."""
    stamp = int(time.time())
    outputs: set[str] = set()
    for line in plan.splitlines():
        field = line.strip()  # a group job's members are listed one level deeper (the report's sections)
        if field.startswith("output: "):
            outputs.update(p.strip() for p in field[len("output: "):].split(","))
    for rel in sorted(outputs):
        path = workdir / rel
        if not path.exists():
            _make(path, folder=path.suffix in ("", ".zarr"), stamp=stamp)  # directory() outputs: stores, folders
    for rel in sorted(outputs, key=lambda p: -p.count("/")):  # parents after children: creating one bumps it
        os.utime(workdir / rel, (stamp, stamp))
    return len(outputs)


def _stats(values: list[float]) -> dict[str, float | list[float]]:
    return {"median": statistics.median(values), "min": min(values), "runs": values}


def measure(config: dict, repeats: int, prepare=None, against: Path | None = None) -> dict:
    """Plan and no-op rerun timings of one generated study; with ``against`` (another checkout), each plan also
    runs that checkout's Snakefile at the same time on a copy of the work folder, one process per core, so both
    see the same load (on a shared VM the same plan varies by 10-20 % from one minute to the next)."""
    with tempfile.TemporaryDirectory(prefix="salbench-dag-") as tmp:
        workdir = Path(tmp) / "ours"
        workdir.mkdir()
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        if prepare is not None:
            prepare(workdir)
        theirs = Path(tmp) / "theirs"
        if against is not None:
            shutil.copytree(workdir, theirs)
        plans, their_plans = [], []
        for _ in range(repeats):
            calls = [start(workdir, config_path, "-n")]
            if against is not None:
                calls.append(start(theirs, theirs / "config.yaml", "-n", root=against))
            plans.append(finish(calls[0]))
            their_plans.extend(finish(call) for call in calls[1:])
        counts = planned_counts(plans[0][2])
        _, _, listing = run(workdir, config_path, "-n", quiet=False)
        outputs = make_outputs(workdir, listing)
        noops = [run(workdir, config_path, "-n") for _ in range(repeats)]
        leftover = planned_counts(noops[0][2])
        if leftover:  # a workflow file edited meanwhile (docs/fidelity.md reruns the report): recorded, not hidden
            print(f"warning: the no-op rerun planned {leftover}", file=sys.stderr)
    row = {"jobs": sum(counts.values()), "jobs_by_rule": counts, "outputs": outputs, "noop_planned": leftover,
           "plan_s": _stats([s for s, _, _ in plans]), "plan_cpu_s": _stats([c for _, c, _ in plans]),
           "noop_rerun_s": _stats([s for s, _, _ in noops]), "noop_rerun_cpu_s": _stats([c for _, c, _ in noops])}
    if against is not None:
        if planned_counts(their_plans[0][2]) != counts:
            print(f"warning: {against} plans other jobs", file=sys.stderr)
        row["against"] = {"checkout": str(against), "plan_s": _stats([s for s, _, _ in their_plans]),
                          "plan_cpu_s": _stats([c for _, c, _ in their_plans]),
                          "ratio_plan_s": _stats([o[0] / t[0] for o, t in zip(plans, their_plans)])}
    return row


def one_shard_plan(items: int) -> str:
    """The dry run of the sharded study in a single shard."""
    config = sharded_config(-(-items // _default()["batch_size"]) * _default()["batch_size"], items)
    with tempfile.TemporaryDirectory(prefix="salbench-dag-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        fake_data(workdir, "shapes", items)
        return run(workdir, workdir / "config.yaml", "-n")[2]


def growth(rows: list[dict], key: str) -> float | None:
    """The exponent b of ``seconds ~ jobs ** b`` between the smallest and the largest study."""
    import math

    if len(rows) < 2:
        return None
    small, large = rows[0], rows[-1]
    return math.log(large[key]["median"] / small[key]["median"]) / math.log(large["jobs"] / small["jobs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sharded", type=int, nargs="+", default=[1000, 5000, 20000],
                        help="approximate job counts of the sharded studies")
    parser.add_argument("--items", type=int, default=IMAGENET_VAL, help="items of the sharded evaluation set")
    parser.add_argument("--copies", action="store_true", help="the copied-default study instead")
    parser.add_argument("--dataset-copies", type=int, default=1, help="copies of the default's data sets")
    parser.add_argument("--method-copies", type=int, default=4, help="copies of the default's methods")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each kind (median reported)")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="time each plan side by side with this checkout's Snakefile (e.g. a `git worktree` of "
                             "the previous commit) and report the ratio of the two (sharded studies)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    load = os.getloadavg()
    payload = {"snakemake": version("snakemake"), "repeats": args.repeats, "cores": os.cpu_count(),
               "load_average_at_start": load}
    if args.copies:
        config = copies_config(args.dataset_copies, args.method_copies)
        row = measure(config, args.repeats)
        payload.update(kind="copies", datasets=len(config["datasets"]), models=len(config["models"]),
                       methods=len(config["methods"]), **row)
        print(f"{row['jobs']} jobs: plan {row['plan_s']['median']:.1f} s, no-op {row['noop_rerun_s']['median']:.1f} s")
        write_results(args.out, "dag", payload)
        return
    rows = []
    one = planned_counts(one_shard_plan(args.items))  # the jobs that do not scale with the shards
    pairs = one["saliency_shard"]
    per_pair = sum(n for rule, n in one.items() if rule not in ("saliency_shard", "score_shard")) // pairs
    fixed = sum(one.values()) - 2 * pairs - per_pair * pairs
    for target in args.sharded:
        size = shard_size_for(target, args.items, pairs, per_pair, fixed, _default()["batch_size"])
        row = measure(sharded_config(size, args.items), args.repeats, lambda w: fake_data(w, "shapes", args.items),
                      against=args.against)
        row.update(target_jobs=target, shard_size=size, shards=-(-args.items // size), pairs=pairs,
                   load_average_after=os.getloadavg())
        rows.append(row)
        print(f"{row['jobs']} jobs ({row['shards']} shards of {size} x {pairs} (model, method) pairs): "
              f"plan {row['plan_s']['median']:.1f} s wall / {row['plan_cpu_s']['median']:.1f} s CPU, no-op rerun "
              f"{row['noop_rerun_s']['median']:.1f} s wall / {row['noop_rerun_cpu_s']['median']:.1f} s CPU", flush=True)
        if args.against is not None:
            print(f"  beside {args.against}: plan {row['against']['plan_s']['median']:.1f} s wall, ratio "
                  f"{row['against']['ratio_plan_s']['median']:.3f} (median of {args.repeats} pairs)", flush=True)
    payload.update(kind="sharded", items=args.items, studies=rows,
                   growth_exponent={key: growth(rows, key) for key in ("plan_s", "noop_rerun_s", "plan_cpu_s")},
                   note="wall and CPU seconds of `snakemake -n` on a work folder with the data only (plan) and after "
                        "every output was created empty at one modification time (no-op rerun; no metadata, so "
                        "params/code comparisons are skipped); each includes Python start-up and the Snakefile's "
                        "parse; growth_exponent b: seconds ~ jobs ** b from the smallest to the largest study")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dag.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), **payload}, indent=1))
    print(f"wrote {args.out / 'dag.json'}")


if __name__ == "__main__":
    main()
