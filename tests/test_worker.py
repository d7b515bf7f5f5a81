"""The warm worker and its client (salbench.worker, salbench.client): a command run in a forked child of the
worker sees the process a plain start would give it, ends the same way, and dies with its client.

The worker here runs the probe entry (tests/worker_probe.py) with torch and salbench.cli imported, as the real
one imports them before it forks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salbench import client, worker

pytestmark = pytest.mark.skipif(not worker.available(), reason="the warm worker needs Linux")

TESTS = Path(__file__).resolve().parent
PROBE = TESTS / "worker_probe.py"


@pytest.fixture(scope="module", autouse=True)
def interruptible():
    """Processes started here take SIGINT as a terminal's foreground process does, even when the test run was
    started in the background (a shell's ``&`` sets SIGINT to ignored, which every process started here would
    inherit: the signal tests would hang and the probes would report SIG_IGN)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a handler, not SIG_IGN: exec resets it
    yield
    signal.signal(signal.SIGINT, before)


def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "PYTEST"))}
    return {**env, "PYTHONPATH": str(TESTS), client.ENV_SWITCH: str(folder), **extra}


@pytest.fixture(scope="module")
def probe_worker(tmp_path_factory):
    """(socket folder, environment, worker log) of a probe worker that imported torch and salbench.cli."""
    folder = tmp_path_factory.mktemp("worker")
    env = _env(folder)
    log = folder / "worker.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "salbench.worker", "--dir", str(folder), "--entry", "worker_probe:main",
             "--modules", "salbench.cli", "torch", "numpy", "--idle-timeout", "120"],
            env=env, stdout=handle, stderr=handle, start_new_session=True)
    key = client.environment_key(env, "worker_probe:main")
    deadline = time.monotonic() + 120
    while "serving" not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    assert (folder / f"{key}.sock").exists()
    yield folder, env, log
    process.terminate()
    assert process.wait(30) == 0


def _probe(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROBE), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _served(log: Path, command: str) -> int:
    """Commands ``command`` the worker ran (the other tests' children may still be ending)."""
    return log.read_text().count(f" ({command}")


def _states(env: dict[str, str], cwd: Path, runs: int, **kwargs) -> list[dict]:
    """The probe's state from ``runs`` processes, each writing it to a file (its stdout)."""
    states = []
    for run in range(runs):
        out = cwd / f"state-{env[client.ENV_SWITCH] == 'off'}-{run}.txt"
        with open(out, "w") as handle:
            result = subprocess.run([sys.executable, str(PROBE), "state", "x y"], env=env, cwd=cwd, stdout=handle,
                                    timeout=120, **kwargs)
        assert result.returncode == 0
        states.append({**json.loads(out.read_text()), "out": str(out)})
    return states


@pytest.fixture(scope="module")
def states(probe_worker, tmp_path_factory):
    """The probe's state from two plain processes and two children of the worker (client umask 027, SIGUSR1
    blocked), all run in the same folder."""
    folder, env, log = probe_worker
    cwd = tmp_path_factory.mktemp("cwd")
    served = _served(log, "state")
    old = os.umask(0o027)  # the client's umask, not the worker's, reaches the child
    try:
        plain = _states({**env, client.ENV_SWITCH: "off"}, cwd, 2)
        warm = _states(env, cwd, 2, preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]))
    finally:
        os.umask(old)
    assert _served(log, "state") == served + 2  # the last two ran in the worker
    return plain, warm, str(folder), str(cwd)


def test_child_sees_the_process_a_plain_start_gives(states):
    plain, warm, folder, cwd = states
    a, b = plain[0], warm[0]
    assert b["stdout"] == b["out"] and a["stdout"] == a["out"]
    assert b["mask"] == [int(signal.SIGUSR1)] and a["mask"] == []
    assert a["env"].pop(client.ENV_SWITCH) == "off" and b["env"].pop(client.ENV_SWITCH) == folder
    assert b["env"]["OMP_WAIT_POLICY"] == "PASSIVE"  # what importing salbench.cli did in the worker
    for key in ("argv", "cwd", "umask", "env", "signals", "torch_threads", "stdout_line_buffering",
                "stderr_line_buffering"):
        assert a[key] == b[key], key
    assert b["pgrp_is_own"] and not a["pgrp_is_own"]  # the one difference: a kill reaches what the child starts
    assert b["umask"] == 0o027 and b["argv"] == ["state", "x y"] and b["cwd"] == cwd
    assert b["signals"]["SIGPIPE"] == "SIG_IGN" and b["signals"]["SIGINT"] == "default_int_handler"


def test_children_seed_from_the_os_as_fresh_processes_do(states):
    plain, warm, _, _ = states
    for key in ("torch_seed", "torch_draw", "numpy_draw", "python_draw"):
        assert plain[0][key] != plain[1][key], key  # what a fresh process does ...
        assert warm[0][key] != warm[1][key], key  # ... and each child (not the worker's state, shared)


@pytest.mark.parametrize("args, status", [(("exit", "3"), 3), (("exit", "0"), 0), (("raise",), 1),
                                          (("sysexit", "bad input"), 1), (("killself", str(int(signal.SIGTERM))),
                                                                           -signal.SIGTERM)])
def test_streams_and_exit_status_as_in_a_plain_process(probe_worker, tmp_path, args, status):
    folder, env, log = probe_worker
    served = _served(log, args[0])
    plain = _probe({**env, client.ENV_SWITCH: "off"}, *args, cwd=tmp_path)
    warm = _probe(env, *args, cwd=tmp_path)
    assert _served(log, args[0]) == served + 1
    assert plain.returncode == warm.returncode == status
    assert plain.stdout == warm.stdout
    assert plain.stderr.splitlines()[-1:] == warm.stderr.splitlines()[-1:]
    if args[0] == "raise":
        assert "Traceback" in warm.stderr and "RuntimeError: probe failure" in warm.stderr


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sleeping_child(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(PROBE), "sleep", "60"], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            text=True)
    child = int(proc.stdout.readline())
    assert child != proc.pid and _alive(child)  # it runs in the worker's child, not in the client
    return proc, child


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_client_reaches_the_child(probe_worker, tmp_path, signum):
    _, env, _ = probe_worker
    proc, child = _sleeping_child(env, tmp_path)
    proc.send_signal(signum)
    assert proc.wait(30) == -signum  # the client ends as the child did: killed by the same signal
    assert not _alive(child)


def test_a_client_killed_outright_takes_its_child(probe_worker, tmp_path):
    _, env, _ = probe_worker
    proc, child = _sleeping_child(env, tmp_path)
    proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_another_environment_runs_in_its_own_process(probe_worker, tmp_path):
    folder, env, log = probe_worker
    served = _served(log, "state")
    result = _probe({**env, "OMP_NUM_THREADS": "1"}, "state", cwd=tmp_path)  # another thread count at import
    assert result.returncode == 0 and json.loads(result.stdout)["torch_threads"] == 1
    assert _served(log, "state") == served
    assert client.socket_path({**env, "OMP_NUM_THREADS": "1"}, "worker_probe:main") != \
        client.socket_path(env, "worker_probe:main")
    assert client.socket_path({**env, "PWD": "/elsewhere", "TMPDIR": "/scratch"}) == \
        client.socket_path(env)  # per-job variables (the shell's, Snakemake's tmpdir) do not count


def test_the_worker_refuses_a_request_from_another_environment(probe_worker, tmp_path):
    folder, env, log = probe_worker
    path = client.socket_path(env, "worker_probe:main")
    code = f"import sys; from salbench.client import run_in_worker; print(run_in_worker({path!r}))"
    result = subprocess.run([sys.executable, "-c", code, "exit", "0"], env={**env, "LC_ALL": "C"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "None"  # told to run in its own process
    assert "environment differs" in log.read_text()


def test_off_switch_and_cluster_runs_start_no_worker(tmp_path, monkeypatch):
    assert client.socket_path({client.ENV_SWITCH: "off"}) is None
    assert client.socket_path({}).startswith(client.DEFAULT_DIR)
    monkeypatch.chdir(tmp_path)
    assert worker.start_worker(local=False) is None
    monkeypatch.setenv(client.ENV_SWITCH, "off")
    assert worker.start_worker(local=True) is None
    assert not (tmp_path / client.DEFAULT_DIR).exists()


def test_jobs_reach_the_worker_when_the_environment_exports_what_their_shell_drops(tmp_path, monkeypatch):
    """A venv's ``activate`` exports PS1; bash drops it in a job's non-interactive shell. The worker starts
    through the jobs' shell, so it imports under their environment and serves them (a worker started beside the
    shell kept PS1 in its key, and every job ran in its own process)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PS1", "(.venv) $ ")
    monkeypatch.delenv(client.ENV_SWITCH, raising=False)
    bash = shutil.which("bash")
    process = worker.start_worker(local=True, shell=bash)
    try:
        job = subprocess.run([bash, "-c", f"{Path(sys.executable).parent / 'salbench'} --help > help.txt"],
                             env=worker.job_environment(), timeout=120)  # as Snakemake's shell runs a job
        assert job.returncode == 0 and "usage: salbench" in (tmp_path / "help.txt").read_text()
    finally:
        worker.stop_worker()
    assert process.wait(30) == 0
    assert "stopped after 1 commands" in (tmp_path / client.DEFAULT_DIR / worker.LOG_NAME).read_text()


def test_worker_stops_when_idle_and_removes_its_socket(tmp_path):
    env = _env(tmp_path)
    result = subprocess.run([sys.executable, "-m", "salbench.worker", "--dir", str(tmp_path), "--modules",
                             "--idle-timeout", "0.2"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stopped after 0 commands" in result.stderr
    assert not list(tmp_path.glob("*.sock"))
