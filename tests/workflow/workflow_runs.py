"""Running the real Snakefile from the workflow tests: the command, a dry run's planned jobs, output comparison."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.store import CHECKSUM_ATTR, open_store

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TINY = Path(__file__).with_name("config_tiny.yaml")


def snakemake(workdir: Path, config: Path, *args: str, timeout: int = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The project's Snakefile run in ``workdir`` on ``config`` with 2 cores, plus ``args``."""
    cmd = [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table (empty when nothing is to be done)."""
    counts = {}
    in_table = False
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


# Attributes that say how and where a job ran, not what it computed: timings (`seconds`, `*_s`, `*_seconds`),
# provenance, and a gathered store's shards (their ranges, timings and provenance). A checkpoint keeps no
# timing (that is in its .train.json), so its file and its sha256 are the same in every run.
RUN_ATTRS = {"provenance", "shards"}


def _computed(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items()
            if k not in RUN_ATTRS and k != "seconds" and not k.endswith(("_s", "_seconds"))}


def assert_same_results(expected: Path, actual: Path, relative: list[str]) -> None:
    """Each path (relative to the two work folders) holds the same results: zarr stores with equal content
    checksums, bitwise-equal variables and equal attrs (run times and provenance aside), parquet tables
    equal exactly, CSV tables equal as text, checkpoints equal byte for byte, JSON records equal (run times and
    provenance aside)."""
    for rel in relative:
        a, b = expected / rel, actual / rel
        assert b.exists(), f"{rel} missing"
        if rel.endswith(".zarr"):
            left, right = open_store(a), open_store(b)
            assert left.attrs[CHECKSUM_ATTR] == right.attrs[CHECKSUM_ATTR], rel
            for name in left.variables:
                assert left[name].values.tobytes() == right[name].values.tobytes() or (
                    left[name].dtype.kind == "O" and list(left[name].values) == list(right[name].values)), (rel, name)
            assert _computed(left.attrs) == _computed(right.attrs), rel
        elif rel.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True, obj=rel)
        elif rel.endswith(".pt"):
            assert a.read_bytes() == b.read_bytes(), rel
        elif rel.endswith(".csv"):
            assert a.read_text() == b.read_text(), rel
        elif rel.endswith(".json"):
            assert _computed(json.loads(a.read_text())) == _computed(json.loads(b.read_text())), rel
        else:
            raise ValueError(f"no comparison for {rel}")


def result_paths(workdir: Path) -> list[str]:
    """Every result under ``workdir/results`` (zarr stores, parquet and CSV tables, checkpoints, JSON records)."""
    found = []
    for path in sorted((workdir / "results").rglob("*")):
        if ".zarr" in path.relative_to(workdir).parent.as_posix():
            continue  # inside a store
        if path.suffix == ".zarr" or (path.is_file() and path.suffix in (".parquet", ".pt", ".json", ".csv")):
            found.append(path.relative_to(workdir).as_posix())
    return found
