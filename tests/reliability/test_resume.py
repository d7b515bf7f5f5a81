"""Resume after a kill of the whole run: the lock Snakemake left is released when no run of the folder is alive
(never while one is), and the jobs the killed run left incomplete are redone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salbench.resume import LOCKS_DIR, RUNS_DIR, release_stale_locks
from salbench.store import open_store

from .mini_study import command, run_snakemake, write_config

HOST = socket.gethostname()


def stale_state(tmp_path: Path, *records: str) -> Path:
    """A ``.snakemake`` folder with a run's two lock files and the given run records."""
    state = tmp_path / ".snakemake"
    (state / LOCKS_DIR).mkdir(parents=True)
    for kind in ("input", "output"):
        (state / LOCKS_DIR / f"0.{kind}.lock").write_text("results/shapes/data.zarr\n")
    (state / RUNS_DIR).mkdir()
    for record in records:
        (state / RUNS_DIR / record).touch()
    return state


def ended_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def locks(state: Path) -> list[str]:
    return sorted(p.name for p in (state / LOCKS_DIR).glob("*.lock"))


def test_the_lock_of_a_run_whose_process_is_gone_is_removed(tmp_path):
    state = stale_state(tmp_path, f"{HOST}-{ended_pid()}")
    lines = release_stale_locks(state)
    assert locks(state) == [] and len(lines) == 1 and "removed the lock" in lines[0]
    assert [p.name for p in (state / RUNS_DIR).iterdir()] == [f"{HOST}-{os.getpid()}"]  # this run's own record


def sleeper(*argv: str) -> subprocess.Popen:
    """A live process with ``argv`` in its command line, once it runs (its record is written by the run itself)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(60)", *argv],
                             stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    return child


def test_the_lock_of_a_live_run_is_kept(tmp_path):
    run = sleeper("snakemake")
    try:
        state = stale_state(tmp_path, f"{HOST}-{run.pid}")
        assert release_stale_locks(state) == []
        assert locks(state) == ["0.input.lock", "0.output.lock"]
    finally:
        run.kill()
        run.wait()


def test_a_reused_pid_of_another_program_does_not_hold_the_lock(tmp_path):
    other = sleeper()
    try:
        state = stale_state(tmp_path, f"{HOST}-{other.pid}")
        release_stale_locks(state)
        assert locks(state) == [] or not Path("/proc").is_dir()  # without /proc, a live pid is taken as the run
    finally:
        other.kill()
        other.wait()


def test_the_lock_of_a_run_on_another_host_is_kept_and_the_message_says_what_to_run(tmp_path):
    state = stale_state(tmp_path, "login2.cluster-4242")
    lines = release_stale_locks(state)
    assert locks(state) == ["0.input.lock", "0.output.lock"]
    assert "login2.cluster-4242" in lines[0] and "snakemake --unlock" in lines[0]


def test_a_run_removes_its_record_at_exit(tmp_path):
    state = tmp_path / ".snakemake"
    code = f"from pathlib import Path; from salbench.resume import record_run; print(record_run(Path({str(state)!r})))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    record = Path(child.stdout.strip())
    assert record.parent == state / RUNS_DIR and not record.exists()


def start(workdir: Path, config: Path, *args: str) -> subprocess.Popen:
    """A snakemake run in its own process group (so that the whole run can be killed at once)."""
    return subprocess.Popen(command(workdir, config, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def kill_once_a_job_runs(run: subprocess.Popen, workdir: Path, timeout: float = 300) -> None:
    """SIGKILL every process of ``run`` once a job of it has started (Snakemake marked its outputs incomplete)."""
    incomplete = workdir / ".snakemake" / "incomplete"
    deadline = time.monotonic() + timeout
    try:
        while not (incomplete.is_dir() and any(p.is_file() for p in incomplete.rglob("*"))):
            assert run.poll() is None, f"the run ended before it was killed: {run.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


@pytest.mark.slow
@pytest.mark.workflow
def test_after_a_kill_of_the_whole_run_the_same_command_resumes_and_redoes_the_killed_job(tmp_path):
    workdir, config = tmp_path / "work", write_config(tmp_path)
    target = "results/shapes/data.zarr"
    kill_once_a_job_runs(start(workdir, config, target), workdir)
    assert list((workdir / ".snakemake" / LOCKS_DIR).glob("*.lock"))  # what a killed run leaves

    resumed = run_snakemake(workdir, config, target)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-4000:]
    assert "cannot be locked" not in output and "removed the lock that a killed run left" in output
    assert "rule get_dataset" in output  # the killed job, redone (Snakemake removed its outputs before it ran)
    assert not any(p.is_file() for p in (workdir / ".snakemake" / "incomplete").rglob("*"))
    assert not list((workdir / ".snakemake" / LOCKS_DIR).glob("*.lock"))
    open_store(workdir / target)
