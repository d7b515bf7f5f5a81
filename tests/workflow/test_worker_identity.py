"""The warm worker changes no number: the tiny study run through it (the shared ``finished_run``, a local run, so
its one-thread jobs run in the worker's children) and run with every job in its own process
(``SALBENCH_WORKER=off``; the shared ``plain_run``: on the local SLURM cluster when it can be started, whose group
jobs run each job in its own process, else locally) write the same results, byte for byte.

What may differ, and is ignored: how long things took (attrs, JSON keys and table columns named ``*_s`` or
``*seconds*``: ``runtime_s``, ``compute_s``, the overview table's ``runtime_s``, ``seconds_per_item``; text
quoting them: the method cards' "N s per item ...: Nx the study's median method") and, inside ``provenance``, the
git revision (a commit may land between the two runs). Everything else is compared: every zarr variable's dtype,
shape and bytes (coordinates included), the content checksum, every other attribute and the rest of the provenance
(versions, host, platform, device, torch threads, determinism settings), parquet and CSV tables exactly,
checkpoints byte for byte, JSON records, and which jobs wrote a log.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from salbench.client import DEFAULT_DIR
from salbench.worker import LOG_NAME, available
from workflow_runs import assert_same_results, result_paths

pytestmark = [pytest.mark.workflow, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="the warm worker needs Linux")]

#: a worker log line of a command that succeeded: `... child PID (COMMAND --out PATH): exit 0 after S s`
SERVED = re.compile(r" child \d+ \(\S+ --out (.+)\): exit 0 after ")


def served_outputs(workdir: Path) -> set[str]:
    """The ``--out`` of each command the run's worker ran in a child that exited 0 (from its log)."""
    log = (workdir / DEFAULT_DIR / LOG_NAME).read_text()
    return {match.group(1) for match in map(SERVED.search, log.splitlines()) if match}


@pytest.mark.timeout(1800)
def test_worker_ran_the_jobs_of_the_local_run(finished_run, plain_run):
    fast, _ = finished_run
    served = served_outputs(fast)
    jobs = [p for p in result_paths(fast) if "/saliency/" in p or ("/scores/" in p and "curves" not in p)]
    assert jobs and set(jobs) <= served  # every saliency and score job ran in a child of the worker
    assert "stopped after" in (fast / DEFAULT_DIR / LOG_NAME).read_text()  # onsuccess stopped it
    assert not list((fast / DEFAULT_DIR).glob("*.sock"))
    assert not (plain_run.workdir / DEFAULT_DIR).exists()  # the plain run started none


@pytest.mark.timeout(1800)
def test_fast_path_and_plain_processes_write_identical_results(finished_run, plain_run):
    fast, _ = finished_run
    plain = plain_run.workdir
    paths = result_paths(fast)
    assert result_paths(plain) == paths
    assert_same_results(plain, fast, paths, ignored=frozenset({"git_revision"}))  # provenance compared too
    assert job_logs(fast) == job_logs(plain)


def job_logs(workdir: Path) -> list[str]:
    """The rules' logs under ``workdir/logs`` (sbatch's own, logs/slurm, aside)."""
    logs = workdir / "logs"
    paths = (p.relative_to(logs) for p in logs.rglob("*.log"))
    return sorted(p.as_posix() for p in paths if p.parts[0] != "slurm")
