"""Planning stays cheap for sharded studies: the shard ranges of a data set are read from its store once per
planning run, not once per shard job (a 20,000-job study asked 7,000 times; benchmarks/dag.py)."""

from __future__ import annotations

import collections
import json
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from workflow_runs import ROOT, TINY

pytestmark = [pytest.mark.workflow, pytest.mark.timeout(600)]

ITEMS = 256  # shards of 16 (the tiny config's batch size): 16 shards per (model, method)

#: a dry run in this process with salbench.shards.store_size counted (common.smk imports it while parsing)
DRIVER = """
import json, sys
import salbench.shards as shards
calls = []
original = shards.store_size
shards.store_size = lambda path: calls.append(str(path)) or original(path)
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("STORE_SIZE_CALLS " + json.dumps(calls))
sys.exit(code)
"""


@pytest.fixture
def sharded_study(tmp_path):
    """A work folder of the tiny config with ``shapes`` in shards of one batch, two methods, and a prepared data
    store of ITEMS items (all that planning reads of it)."""
    settings = yaml.safe_load(TINY.read_text())
    settings["datasets"] = {"shapes": {**settings["datasets"]["shapes"], "shard_size": settings["batch_size"]}}
    settings["methods"] = {m: settings["methods"][m] for m in ("gradient", "random")}
    for key in ("grid", "layerwise", "meta_evaluation"):
        settings.pop(key, None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "resources" / "datasets" / "shapes").mkdir(parents=True)
    meta = tmp_path / "results" / "shapes" / "data.zarr" / "item" / "zarr.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"shape": [ITEMS], "zarr_format": 3, "node_type": "array"}))
    return tmp_path, settings


def _dry_run(workdir, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(workdir / "config.yaml"), "--cores", "1", "--workflow-profile", "none", "-n", *args],
        capture_output=True, text=True, timeout=500, env={"SALBENCH_WORKER": "off", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_shard_ranges_are_read_once_per_data_set(sharded_study):
    workdir, settings = sharded_study
    result = _dry_run(workdir, "--quiet", "rules")
    shard_jobs = [line for line in result.stdout.splitlines() if line.startswith("saliency_shard")]
    assert shard_jobs and int(shard_jobs[0].split()[-1]) == 2 * ITEMS // settings["batch_size"]  # 2 methods
    calls = json.loads(result.stdout.split("STORE_SIZE_CALLS ", 1)[1].splitlines()[0])
    assert len(calls) == 1 and calls[0].endswith("results/shapes/data.zarr"), calls


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_method_jobs_get_their_options_as_the_config_says(sharded_study):
    """Each (data set, model, method) job's options reach its command as one pre-quoted params value (cheaper to
    plan than nine fields): they must still split into exactly the config's values, and the shards cover the
    items once."""
    workdir, settings = sharded_study
    # a method whose params need quoting in a shell (JSON's double quotes)
    settings["methods"]["noisy_gradient"] = {"method": "noisy", "params": {"base": "gradient", "sigma": 0.5}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
    commands = [shlex.split(line.split("salbench ", 1)[1].split(" > ", 1)[0])
                for line in (_dry_run(workdir, "-p").stdout).splitlines()
                if re.search(r"salbench (saliency|score|sanity|grid-score) ", line)]
    assert {c[0] for c in commands} == {"saliency", "score", "sanity"}
    shards = collections.defaultdict(list)
    for args in commands:
        method = _option(args, "--method-id")
        assert json.loads(_option(args, "--params")) == settings["methods"][method].get("params", {})
        assert _option(args, "--method") == settings["methods"][method].get("method", method)
        assert (_option(args, "--seed"), _option(args, "--batch-size"), _option(args, "--device")) == (
            str(settings["seed"]), str(settings["batch_size"]), settings["device"])
        if args[0] in ("saliency", "score"):
            start, stop = map(int, _option(args, "--items").split(":"))
            shards[args[0], _option(args, "--model"), method].append(range(start, stop))
    assert len(shards) == 2 * len(settings["models"]) * 3  # saliency and score, every model, three methods
    for ranges in shards.values():
        assert sorted(i for r in ranges for i in r) == list(range(ITEMS))
