"""The ``salbench`` command: run this command in the warm worker when one serves this folder, else here.

A job's fixed cost is mostly starting Python and importing torch and salbench (about 3 s on a 2-core VM). The
warm worker (:mod:`salbench.worker`, started by the Snakefile for local runs) has imported them once and runs
each command in a fresh forked child that takes this process's arguments, environment, working folder, umask,
signal dispositions and standard streams, so a job writes the same outputs and the same log as in its own
process. This module is the console entry: it imports only the standard library, looks for the worker's socket,
and otherwise runs :func:`salbench.cli.main` in this process as before. ``SALBENCH_WORKER=off`` turns it off.

Protocol (one ``SOCK_SEQPACKET`` connection per command): the client sends its request (JSON) with its
descriptors 0, 1 and 2; the worker answers ``plain <reason>`` (run here instead) or ``run <pid>``; from then on
the client forwards the signals it receives (``kill <n>``) and ends as the child ended (``exit <code>`` or
``signal <n>``). A client that dies takes its child with it: the worker kills the child when the connection
closes.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

#: the switch and folder: unset -> the worker of this folder (DEFAULT_DIR), "off" -> none, else its folder
ENV_SWITCH = "SALBENCH_WORKER"
OFF = frozenset({"0", "off", "no", "false"})
DEFAULT_DIR = os.path.join(".snakemake", "salbench-worker")
#: variables the shell or Snakemake set per job and that no import reads: they may differ from the worker's
PER_JOB_VARIABLES = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "TMP", "TEMP", "TEMPDIR", ENV_SWITCH})
#: signals a job may be sent (stop, interrupt, hang-up, job control): forwarded to the child
FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
                                                     "SIGTSTP", "SIGCONT") if hasattr(signal, name))
MAX_MESSAGE = 1 << 20
#: the function a worker runs in each child: this command's (a worker may run another, e.g. in the tests)
ENTRY = "salbench.cli:main"


def interpreter() -> str:
    """This interpreter: its installation (``sys.prefix``: the venv) and its binary, links resolved."""
    return f"{sys.prefix}:{os.path.realpath(sys.executable)}"


def environment_key(env: Mapping[str, str], entry: str = ENTRY, python: str | None = None) -> str:
    """Which worker may run a command: a hash of the interpreter (``python``, default this one), the entry and
    every variable an import may read.

    A worker imported torch under its own environment (thread counts, library paths, locale), so only a command
    with the same environment, per-job variables aside, runs in it; any other finds no socket and runs here.
    """
    shared = sorted((k, v) for k, v in env.items() if k not in PER_JOB_VARIABLES)
    return hashlib.sha256(json.dumps([python or interpreter(), entry, shared]).encode()).hexdigest()[:20]


def socket_path(env: Mapping[str, str], entry: str = ENTRY) -> str | None:
    """The worker socket a command with ``env`` would use (relative to the working folder), or None when off."""
    folder = env.get(ENV_SWITCH, "")
    if folder.strip().lower() in OFF:
        return None
    return os.path.join(folder or DEFAULT_DIR, f"{environment_key(env, entry)}.sock")


def _dispositions() -> dict[str, object]:
    """This fresh process's signal state, which the child takes: ignored signals, SIGINT's handler, the mask."""
    ignored = [int(s) for s in signal.valid_signals()
               if s not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(s) == signal.SIG_IGN]
    return {"ignored": ignored, "sigint_raises": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))}


def _request() -> bytes:
    umask = os.umask(0o22)
    os.umask(umask)
    return json.dumps({"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask,
                       "python": interpreter(), **_dispositions()}).encode()


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError:  # no worker here (absent, stopped, a stale socket of a killed run)
        sock.close()
        return None
    return sock


def _end_like(message: str) -> int:
    """Exit status of the client for the child's ``exit <code>`` or ``signal <n>``: die of the same signal."""
    kind, _, value = message.partition(" ")
    if kind == "exit":
        return int(value)
    signum = int(value)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))  # the child's core
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal whose default is not to terminate


def run_in_worker(path: str) -> int | None:
    """Run this command in the worker at ``path``: its exit status, or None when it must run in this process."""
    if any(not _is_open(fd) for fd in (0, 1, 2)):
        return None
    sock = _connect(path)
    if sock is None:
        return None
    with sock:
        try:
            socket.send_fds(sock, [_request()], [0, 1, 2])
            reply = sock.recv(MAX_MESSAGE).decode()
        except OSError:
            return None
        kind, _, value = reply.partition(" ")
        if kind != "run":  # "plain <reason>", or the worker stopped before taking the command
            return None
        forward = _forwarder(sock)
        for signum in FORWARDED:
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, forward)
        try:
            status = sock.recv(MAX_MESSAGE).decode()
        except OSError:
            status = ""
    if not status:
        print(f"salbench: the warm worker stopped while running this command (child {value}); run it again, or "
              f"set {ENV_SWITCH}=off to run each command in its own process", file=sys.stderr)
        return 1
    return _end_like(status)


def _forwarder(sock: socket.socket):
    def forward(signum: int, frame: object) -> None:
        try:
            sock.send(f"kill {signum}".encode())
        except OSError:
            pass
    return forward


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def load_entry(entry: str) -> Callable[[], Any]:
    """The function ``module:function`` names."""
    import importlib

    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)


def run(entry: str) -> int:
    """Run the console entry ``entry`` (``module:function``) in its warm worker if there is one, else here."""
    path = socket_path(os.environ, entry)
    if path is not None and os.path.exists(path):
        status = run_in_worker(path)
        if status is not None:
            return status
    return load_entry(entry)()


def main() -> int:
    """The ``salbench`` console entry."""
    return run(ENTRY)
