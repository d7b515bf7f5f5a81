"""The planning benchmark fakes every output a dry run lists, group members included, so that its no-op rerun
plans nothing."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

LISTING = """\
[Mon Dec  7 20:05:22 2026]
rule score:
    input: results/shapes/data.zarr
    output: results/shapes/cnn/scores/gradient.parquet, results/shapes/cnn/scores/gradient.curves.parquet
    jobid: 3

[Mon Dec  7 20:05:22 2026] Group job report (jobs in lexicogr. order):

    [Mon Dec  7 20:05:22 2026]
    rule section_fidelity:
        output: results/tables/study/fidelity.parquet, results/sections/study/fidelity
        jobid: 879
"""


def test_outputs_of_plain_jobs_and_of_group_members_are_made(tmp_path, monkeypatch):
    # dag.py imports its neighbour methods.py; the test package tests/methods may hold that name already
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    saved = {name: sys.modules.pop(name) for name in ("dag", "methods") if name in sys.modules}
    try:
        dag = importlib.import_module("dag")
        assert dag.make_outputs(tmp_path, LISTING) == 4
    finally:
        for name in ("dag", "methods"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    assert (tmp_path / "results/shapes/cnn/scores/gradient.curves.parquet").is_file()
    assert (tmp_path / "results/tables/study/fidelity.parquet").is_file()
    assert (tmp_path / "results/sections/study/fidelity").is_dir()  # a directory() output
