"""Planning stays cheap for sharded studies: the shard ranges of a data set are read from its store once per
planning run, not once per shard job (a 20,000-job study asked 7,000 times; benchmarks/dag.py)."""

from __future__ import annotations

import json
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


def test_shard_ranges_are_read_once_per_data_set(tmp_path):
    settings = yaml.safe_load(TINY.read_text())
    settings["datasets"] = {"shapes": {**settings["datasets"]["shapes"], "shard_size": settings["batch_size"]}}
    settings["methods"] = {m: settings["methods"][m] for m in ("gradient", "random")}
    for key in ("grid", "layerwise", "meta_evaluation"):
        settings.pop(key, None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "resources" / "datasets" / "shapes").mkdir(parents=True)  # a prepared data store of ITEMS items
    meta = tmp_path / "results" / "shapes" / "data.zarr" / "item" / "zarr.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"shape": [ITEMS], "zarr_format": 3, "node_type": "array"}))
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(tmp_path / "config.yaml"), "--cores", "1", "--workflow-profile", "none", "--quiet", "rules", "-n"],
        capture_output=True, text=True, timeout=500, env={"SALBENCH_WORKER": "off", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    shard_jobs = [line for line in result.stdout.splitlines() if line.startswith("saliency_shard")]
    assert shard_jobs and int(shard_jobs[0].split()[-1]) == 2 * ITEMS // settings["batch_size"]  # 2 methods
    calls = json.loads(result.stdout.split("STORE_SIZE_CALLS ", 1)[1].splitlines()[0])
    assert len(calls) == 1 and calls[0].endswith("results/shapes/data.zarr"), calls
