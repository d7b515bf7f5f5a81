"""The warm worker: one local process that imports torch and salbench once and runs each ``salbench`` command of
a run in a fresh forked child, so that a job costs its compute, not 3 s of start-up (issue 30).

Why a fork and not a thread or a reused process: a forked child starts from the worker's memory (modules
imported, no torch op ever run, no thread pool started) and then takes, from the client (:mod:`salbench.client`),
everything a process started by the job's shell would have: arguments, environment, working folder, umask,
signal dispositions and mask, standard streams (the job's log) and a fresh numpy seed; it runs
:func:`salbench.cli.main` and ends as the interpreter ends (threads joined, ``atexit`` handlers run). Globals,
seeds and thread counts are therefore those of a plain process, and its outputs are the same bytes
(``tests/workflow/test_worker_identity.py``). The worker serves only commands whose environment matches the one
it imported under (:func:`salbench.client.environment_key`): another interpreter, other thread variables or
another locale run in their own process. The parent never runs a torch op (fork-safe torch: no OpenMP pool, no
CUDA context), and never configures logging (the child's ``logging.basicConfig`` must bind the job's stderr).

Lifetime: the Snakefile's ``onstart`` starts it for a local run (never under ``--executor slurm``: a cluster job
finds no socket and runs in its own process), ``onsuccess``/``onerror`` stop it; it also stops when the
Snakemake process that started it is gone or after ``--idle-timeout`` seconds without a command. Stopping lets
running children finish (their clients forward any kill). Linux only (``os.pidfd_open``, ``prctl``); elsewhere
no worker starts. ``SALBENCH_WORKER=off`` turns it off.

    python -m salbench.worker [--dir .snakemake/salbench-worker] [--owner PID] [--idle-timeout 900]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .client import DEFAULT_DIR, ENTRY, ENV_SWITCH, MAX_MESSAGE, OFF, environment_key, interpreter, load_entry

#: what Snakemake's shell sets in every job's environment, to the job's threads (snakemake/shell.py); the worker
#: imports under the value of a one-thread job, so the jobs with more threads (training) run in their own process
SNAKEMAKE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: modules every job command imports (cli, jobs and what they import on first use): imported once, in the worker
WARM_MODULES = ("salbench.cli", "salbench.jobs", "salbench.data", "salbench.models", "salbench.methods",
                "salbench.metrics", "salbench.sanity", "salbench.train", "salbench.grid", "salbench.meta_jobs",
                "salbench.layerwise.run", "salbench.allocator")
IDLE_TIMEOUT_S = 900.0
PR_SET_PDEATHSIG = 1
LOG_NAME = "worker.log"


def available() -> bool:
    """Whether this platform can run the worker (Linux: pidfds and the parent-death signal)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


# ---- the child: become the process the job's shell would have started ------------------------------------------

@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    umask: int
    python: str
    ignored: list[int]
    sigint_raises: bool
    mask: list[int]

    @classmethod
    def parse(cls, data: bytes) -> Request:
        fields = json.loads(data)
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})


def _become(request: Request, fds: list[int], import_effects: Mapping[str, str | None]) -> None:
    """Take the client's process state: streams, folder, umask, environment, signals; fresh random seeds."""
    import random
    import tempfile

    import numpy as np

    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if signum in request.ignored:
            signal.signal(signum, signal.SIG_IGN)
        elif signum == signal.SIGINT and request.sigint_raises:
            signal.signal(signum, signal.default_int_handler)
        else:
            signal.signal(signum, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # as the interpreter sets it up for a terminal or a file
    os.chdir(request.cwd)
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    for name, value in import_effects.items():  # what importing salbench did to the environment (OMP_WAIT_POLICY)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None  # read TMPDIR again, from the job's environment
    sys.argv = list(request.argv)
    random.seed()  # a fresh process seeds these from the OS (Python reseeds at fork too; numpy and torch do not)
    np.random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].default_generator.seed()  # the CPU generator; CUDA's start on first use, as fresh


def _run_command(mask: list[int], entry: str) -> int:
    """``sys.exit(main())`` of the ``entry`` function and the interpreter's exit, as the console script runs it;
    signals that came while the child set itself up (blocked since the fork) arrive here, as the client takes them."""
    import atexit
    import threading
    import traceback

    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        code: Any = load_entry(entry)()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # the interpreter prints it, then dies of SIGINT
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at interpreter exit
    atexit._run_exitfuncs()
    return code if _finish() else 120


def _finish() -> bool:
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            ok = False
    return ok


def _child(request: Request, fds: list[int], go: int, worker: int, inherited: list[int],
           import_effects: Mapping[str, str | None], entry: str) -> None:
    """The forked child: never returns into the worker's loop."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker gone: so is its child
        if os.getppid() != worker:
            os._exit(1)
        for fd in inherited:
            os.close(fd)
        os.setpgid(0, 0)  # its own process group: the client's kill reaches what the command starts too
        if os.read(go, 1) != b"g":  # the client knows the child's pid (or the worker gave up): only then run
            os._exit(1)
        os.close(go)
        _become(request, fds, import_effects)
        code = _run_command(request.mask, entry)
    finally:
        os._exit(code)


# ---- the worker ------------------------------------------------------------------------------------------------

@dataclass
class Job:
    pid: int
    pidfd: int
    conn: socket.socket
    argv: list[str]
    started: float = field(default_factory=time.monotonic)
    client_gone: bool = False


class Worker:
    """The serve loop: one thread, a selector over the listener, the clients and the children's pidfds."""

    def __init__(self, listener: socket.socket, path: Path, owner: int | None, idle_timeout: float,
                 entry: str) -> None:
        self.listener, self.path, self.owner, self.idle_timeout, self.entry = listener, path, owner, idle_timeout, entry
        self.import_effects: Mapping[str, str | None] = {}
        self.key = path.stem
        self.inode = os.stat(path).st_ino
        self.jobs: dict[int, Job] = {}  # by pid
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.draining = False
        self.served = 0

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} worker {os.getpid()}: {message}", file=sys.stderr, flush=True)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda s, f: setattr(self, "draining", True))
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        last = time.monotonic()
        while True:
            if self.draining or (self.owner is not None and os.getppid() != self.owner) or (
                    not self.jobs and time.monotonic() - last > self.idle_timeout):
                self.stop_listening()
                if not self.jobs:
                    break
            for key, _ in self.selector.select(timeout=1.0):
                if key.data == "accept":
                    self.accept()
                elif key.data == "wake":
                    os.read(self.wake_r, 512)
                elif key.data[0] == "exit":
                    self.reap(key.data[1])
                else:
                    self.message(key.data[1])
            if self.jobs:
                last = time.monotonic()
        self.log(f"stopped after {self.served} commands")

    def stop_listening(self) -> None:
        if self.listener.fileno() < 0:
            return
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.path).st_ino == self.inode:  # still ours, not a later run's worker
                self.path.unlink()
        except OSError:
            pass
        self.listener.close()

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.settimeout(10.0)  # a client sends its request as it connects
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
        except OSError:
            conn.close()
            return
        try:
            request = Request.parse(data)
            refusal = self.refusal(request, fds)
        except (ValueError, TypeError, KeyError) as err:
            refusal = f"unreadable request ({err})"
        if refusal:
            self.log(f"runs in its own process: {refusal}")
            for fd in fds:
                os.close(fd)
            _send(conn, f"plain {refusal}")
            conn.close()
            return
        self.start(conn, request, fds)

    def refusal(self, request: Request, fds: list[int]) -> str:
        if len(fds) != 3:
            return "standard streams not received"
        if request.python != interpreter():
            return "another interpreter"
        if environment_key(request.env, self.entry, request.python) != self.key:
            return "environment differs from the worker's"
        return ""

    def start(self, conn: socket.socket, request: Request, fds: list[int]) -> None:
        go_r, go_w = os.pipe()
        inherited = [self.wake_r, self.wake_w, self.selector.fileno(), go_w, conn.fileno(),
                     *([self.listener.fileno()] if self.listener.fileno() >= 0 else []),
                     *(fd for job in self.jobs.values() for fd in (job.pidfd, job.conn.fileno()))]
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # the child unblocks them
        pid = os.fork()
        if pid == 0:
            _child(request, fds, go_r, os.getppid(), inherited, self.import_effects, self.entry)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(go_r)
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        job = Job(pid, os.pidfd_open(pid), conn, request.argv)
        self.jobs[pid] = job
        self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", pid))
        if _send(conn, f"run {pid}"):
            os.write(go_w, b"g")
            conn.settimeout(None)
            self.selector.register(conn, selectors.EVENT_READ, ("message", pid))
        else:  # the client is gone: the child never runs the command
            job.client_gone = True
        os.close(go_w)
        self.served += 1

    def message(self, pid: int) -> None:
        job = self.jobs[pid]
        try:
            data = job.conn.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:  # the client died (killed outright): so does its child
            self.selector.unregister(job.conn)
            job.client_gone = True
            _kill(pid, signal.SIGKILL)
            return
        kind, _, value = data.decode().partition(" ")
        if kind == "kill":
            _kill(pid, int(value))

    def reap(self, pid: int) -> None:
        job = self.jobs.pop(pid)
        _, status, usage = os.wait4(pid, 0)
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        if os.WIFSIGNALED(status):
            ending = f"signal {os.WTERMSIG(status)}"
        else:
            ending = f"exit {os.waitstatus_to_exitcode(status)}"
        # logged before the client hears the ending, so whoever saw a command end finds it in the log
        self.log(f"child {pid} ({_describe(job.argv)}): {ending} after {time.monotonic() - job.started:.2f} s, "
                 f"cpu {usage.ru_utime + usage.ru_stime:.2f} s")
        if not job.client_gone:
            self.selector.unregister(job.conn)
            _send(job.conn, ending)
        job.conn.close()


def _describe(argv: list[str]) -> str:
    """A command in the worker's log: its subcommand and output."""
    out = argv[argv.index("--out") + 1] if "--out" in argv[:-1] else ""
    return " ".join([*argv[1:2], *(["--out", out] if out else [])])


def _send(conn: socket.socket, message: str) -> bool:
    try:
        conn.send(message.encode())
    except OSError:
        return False
    return True


def _kill(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def warm_up(modules: tuple[str, ...] = WARM_MODULES) -> dict[str, str | None]:
    """Import what the commands use (never run a torch op here); what the imports changed in the environment."""
    import importlib

    before = dict(os.environ)
    for name in modules:
        importlib.import_module(name)
    after = dict(os.environ)
    gc.collect()
    gc.freeze()  # the children do not scan (and copy) the imported objects in every collection
    return {name: after.get(name) for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def serve(folder: Path, owner: int | None = None, idle_timeout: float = IDLE_TIMEOUT_S, entry: str = ENTRY,
          modules: tuple[str, ...] = WARM_MODULES, notify_fd: int | None = None) -> None:
    """Listen on ``folder/<environment key>.sock`` (relative to the working folder), import ``modules``, serve
    commands: each runs ``entry`` in a forked child. ``notify_fd``: a pipe that gets the socket's path, then is
    closed, once clients can connect."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{environment_key(os.environ, entry)}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    staging = folder / f".{os.getpid()}.sock"
    staging.unlink(missing_ok=True)
    listener.bind(str(staging))
    listener.listen(64)
    os.replace(staging, path)  # clients queue from here on, while the imports below run
    if notify_fd is not None:
        with os.fdopen(notify_fd, "w") as notify:
            notify.write(str(path))
    worker = Worker(listener, path, owner, idle_timeout, entry)
    start = time.perf_counter()
    worker.import_effects = warm_up(modules)
    threads = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # a child could not use the GPU: serve nothing
        worker.log("an import initialised CUDA; stopping, every job runs in its own process")
        worker.stop_listening()
        return
    worker.log(f"serving {path} in {os.getcwd()}: imports {time.perf_counter() - start:.2f} s, "
               f"{len(threads)} OS threads, environment changes by imports {sorted(worker.import_effects)}")
    worker.serve()


# ---- started and stopped by the Snakefile -----------------------------------------------------------------------

def job_environment(threads: int = 1) -> dict[str, str]:
    """This process's environment as Snakemake's shell passes it to a job with ``threads`` threads."""
    return {**os.environ, **{name: str(threads) for name in SNAKEMAKE_THREAD_VARIABLES}}


_STARTED: list[subprocess.Popen] = []


def start_worker(local: bool, folder: Path | None = None, wait_s: float = 10.0,
                 shell: str | None = None) -> subprocess.Popen | None:
    """Start the worker for this Snakemake run (``local``: not a cluster executor) in the working folder; None
    when it is off (``SALBENCH_WORKER=off``), not local or not available here.

    ``shell``: the executable Snakemake runs each job's command with (``shell.get_executable()``). The worker
    starts through it, so that it imports under the environment a job's shell has: bash, for one, drops an
    exported ``PS1`` (which a venv's ``activate`` exports) and sources ``BASH_ENV``. Started beside the shell
    instead, such a worker's key matched no job, and every job ran in its own process."""
    switch = os.environ.get(ENV_SWITCH, "")
    if not local or switch.strip().lower() in OFF or not available():
        return None
    folder = Path(folder or switch or DEFAULT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    ready, notify = os.pipe()
    command = [sys.executable, "-m", "salbench.worker", "--dir", str(folder), "--owner", str(os.getpid()),
               "--notify-fd", str(notify)]
    if shell:
        command = [shell, "-c", 'exec "$@"', shell, *command]  # $0 = the shell, "$@" = the worker's command
    log = open(folder / LOG_NAME, "w")
    with log:
        process = subprocess.Popen(command, env=job_environment(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, pass_fds=(notify,))
    os.close(notify)
    with os.fdopen(ready) as announced, selectors.DefaultSelector() as selector:
        selector.register(announced, selectors.EVENT_READ)
        selector.select(wait_s)  # the socket's path (clients can connect), or end of file (the worker did not start)
    _STARTED.append(process)
    return process


def stop_worker(timeout_s: float = 30.0) -> None:
    """Stop the workers this process started; they finish running children first (none at the run's end)."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m salbench.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(DEFAULT_DIR), help=f"socket folder (default {DEFAULT_DIR})")
    parser.add_argument("--owner", type=int, help="stop when this process (the Snakemake run) is gone")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S,
                        help=f"stop after this many seconds without a command (default {IDLE_TIMEOUT_S:g})")
    parser.add_argument("--entry", default=ENTRY, help=f"MODULE:FUNCTION each child runs (default {ENTRY})")
    parser.add_argument("--modules", nargs="*", default=list(WARM_MODULES),
                        help="modules to import once (default: the ones every salbench job imports)")
    parser.add_argument("--notify-fd", type=int,
                        help="write the socket's path to this inherited pipe once clients can connect, then close it")
    args = parser.parse_args(argv)
    if not available():
        raise SystemExit("salbench.worker: needs Linux (os.pidfd_open, SCM_RIGHTS)")
    serve(args.dir, args.owner, args.idle_timeout, args.entry, tuple(args.modules), args.notify_fd)


if __name__ == "__main__":
    main()
