"""The warm worker changes no number: the tiny study run through it (the shared ``finished_run``, a local run, so
its one-thread jobs run in the worker's children) and run with every job in its own process
(``SALBENCH_WORKER=off``) write the same results, byte for byte.

What may differ, and is ignored: how long things took (attrs, JSON keys and table columns named ``*_s`` or
``*seconds*``: ``runtime_s``, ``compute_s``, the overview table's ``runtime_s``, ``seconds_per_item``; text
quoting them: the method cards' "N s per item ...: Nx the study's median method") and, inside ``provenance``, the
git revision (a commit may land between the two runs). Everything else is compared: every zarr variable's dtype,
shape and bytes (coordinates included), the content checksum, every other attribute and the rest of the provenance
(versions, host, platform, device, torch threads, determinism settings), parquet and CSV tables exactly,
checkpoints byte for byte, JSON records, and which jobs wrote a log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from salbench.client import DEFAULT_DIR, ENV_SWITCH
from salbench.worker import LOG_NAME, available
from workflow_runs import assert_same_results, result_paths, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="the warm worker needs Linux")]

#: a worker log line of a command that succeeded: `... child PID (COMMAND --out PATH): exit 0 after S s`
SERVED = re.compile(r" child \d+ \(\S+ --out (.+)\): exit 0 after ")


def served_outputs(workdir: Path) -> set[str]:
    """The ``--out`` of each command the run's worker ran in a child that exited 0 (from its log)."""
    log = (workdir / DEFAULT_DIR / LOG_NAME).read_text()
    return {match.group(1) for match in map(SERVED.search, log.splitlines()) if match}


@pytest.fixture(scope="module")
def plain_run(finished_run, tmp_path_factory) -> Path:
    """The same study with every job in its own process."""
    _, config = finished_run
    workdir = tmp_path_factory.mktemp("plain")
    result = snakemake(workdir, config, env={**os.environ, ENV_SWITCH: "off"})
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.timeout(1800)
def test_worker_ran_the_jobs_of_the_local_run(finished_run, plain_run):
    fast, _ = finished_run
    served = served_outputs(fast)
    jobs = [p for p in result_paths(fast) if "/saliency/" in p or ("/scores/" in p and "curves" not in p)]
    assert jobs and set(jobs) <= served  # every saliency and score job ran in a child of the worker
    assert "stopped after" in (fast / DEFAULT_DIR / LOG_NAME).read_text()  # onsuccess stopped it
    assert not list((fast / DEFAULT_DIR).glob("*.sock"))
    assert not (plain_run / DEFAULT_DIR).exists()  # the plain run started none


@pytest.mark.timeout(1800)
def test_fast_path_and_plain_processes_write_identical_results(finished_run, plain_run):
    fast, _ = finished_run
    paths = result_paths(fast)
    assert result_paths(plain_run) == paths
    assert_same_results(plain_run, fast, paths, ignored=frozenset({"git_revision"}))  # provenance compared too
    logs = sorted(p.relative_to(fast / "logs").as_posix() for p in (fast / "logs").rglob("*.log"))
    assert logs == sorted(p.relative_to(plain_run / "logs").as_posix() for p in (plain_run / "logs").rglob("*.log"))
