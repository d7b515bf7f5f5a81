"""Running the real Snakefile from the workflow tests: the command, a dry run's planned jobs, output comparison."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from salbench.store import CHECKSUM_ATTR, open_store

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TINY = Path(__file__).with_name("config_tiny.yaml")


def command(workdir: Path, config: Path, *args: str) -> list[str]:
    """The command line that runs the project's Snakefile in ``workdir`` on ``config`` with 2 cores, plus ``args``
    (for a run not waited for)."""
    return [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
            "--cores", "2", *args]


def snakemake(workdir: Path, config: Path, *args: str, timeout: int = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The project's Snakefile run in ``workdir`` on ``config`` with 2 cores, plus ``args``."""
    return subprocess.run(command(workdir, config, *args), capture_output=True, text=True, timeout=timeout, env=env)


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


def without_sections(jobs: dict[str, int]) -> dict[str, int]:
    """Planned jobs without the report sections' rules (``section_<name>``; their rerun scope is tested in
    tests/workflow/test_report_sections.py)."""
    return {rule: n for rule, n in jobs.items() if not rule.startswith("section_")}


# Attributes that say where a job ran, not what it computed: the provenance, a gathered store's shards (their
# ranges, timings and provenance) and the git revision the report's overview quotes per run. A checkpoint keeps no timing (that is in its .train.json), so its file and its
# sha256 are the same in every run. Timings are never compared (:func:`is_timing`).
RUN_ATTRS = frozenset({"provenance", "shards", "git_revision"})
#: text quoting timings: the method cards' speed line ("0.0043 s per item on ...: 1.4x the study's median method")
TIMING_TEXT = re.compile(r"\d[\d.e+-]* s per item|\d[\d.]*x the study's median method")


def is_timing(name: object) -> bool:
    """A key or column that says how long something took (``seconds``, ``*_s``, ``*_seconds``, ``seconds_per_item``)."""
    return isinstance(name, str) and (name.endswith("_s") or "seconds" in name)


def computed(value: Any, ignored: frozenset[str] = RUN_ATTRS) -> Any:
    """``value`` (attrs, a JSON record, a table cell) without timings and without the keys ``ignored`` (any depth)."""
    if isinstance(value, dict):
        return {k: computed(v, ignored) for k, v in value.items() if not is_timing(k) and k not in ignored}
    if isinstance(value, list):
        return [computed(v, ignored) for v in value]
    return TIMING_TEXT.sub("<timing>", value) if isinstance(value, str) else value


def _table(path: Path) -> pd.DataFrame:
    """A parquet or CSV table without its timing columns and with timing text masked."""
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    table = table.drop(columns=[c for c in table.columns if is_timing(c)])
    return table.apply(lambda column: column.map(computed) if column.dtype == object
                       or pd.api.types.is_string_dtype(column) else column)


def assert_same_results(expected: Path, actual: Path, relative: list[str],
                        ignored: frozenset[str] = RUN_ATTRS) -> None:
    """Each path (relative to the two work folders) holds the same result: zarr variables byte for byte (dtype,
    shape, coordinates too) with equal content checksums and attrs, parquet and CSV tables exactly, checkpoints
    byte for byte, JSON records equal; timings and the keys ``ignored`` aside."""
    for rel in relative:
        a, b = expected / rel, actual / rel
        assert b.exists(), f"{rel} missing"
        if rel.endswith(".zarr"):
            left, right = open_store(a), open_store(b)
            assert left.attrs[CHECKSUM_ATTR] == right.attrs[CHECKSUM_ATTR], rel
            assert sorted(left.variables) == sorted(right.variables), rel
            for name in left.variables:
                x, y = left[name].values, right[name].values
                assert x.dtype == y.dtype and x.shape == y.shape, (rel, name)
                same = list(x.ravel()) == list(y.ravel()) if x.dtype.kind == "O" else x.tobytes() == y.tobytes()
                assert same, (rel, name)
            assert computed(dict(left.attrs), ignored) == computed(dict(right.attrs), ignored), rel
        elif rel.endswith((".parquet", ".csv")):
            pd.testing.assert_frame_equal(_table(a), _table(b), check_exact=True, obj=rel)
        elif rel.endswith(".pt"):
            assert a.read_bytes() == b.read_bytes(), rel
        elif rel.endswith(".json"):
            assert computed(json.loads(a.read_text()), ignored) == computed(json.loads(b.read_text()), ignored), rel
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
