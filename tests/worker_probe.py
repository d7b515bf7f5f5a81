"""A console entry for the worker tests: what a process sees of itself, and ways to end (tests/test_worker.py).

``python worker_probe.py COMMAND ...`` runs :func:`main` through :func:`salbench.client.run`: in the probe's warm
worker when one serves the folder named by ``SALBENCH_WORKER``, else in this process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

ENTRY = "worker_probe:main"
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGXFSZ", "SIGUSR1", "SIGCHLD")


def state() -> dict:
    """The process state a job could depend on, after the imports a salbench job does."""
    import random

    import numpy as np
    import torch

    import salbench.cli  # noqa: F401  (its import sets OMP_WAIT_POLICY)

    umask = os.umask(0)
    os.umask(umask)
    handlers = {}
    for name in SIGNALS:
        handler = signal.getsignal(getattr(signal, name))
        handlers[name] = handler.name if isinstance(handler, signal.Handlers) else getattr(handler, "__name__", "?")
    return {
        "argv": sys.argv[1:], "cwd": os.getcwd(), "umask": umask, "env": dict(os.environ), "signals": handlers,
        "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "torch_threads": torch.get_num_threads(), "torch_seed": torch.initial_seed(),
        "torch_draw": torch.rand(2).tolist(), "stdout": os.readlink("/proc/self/fd/1"),
        "stdout_line_buffering": sys.stdout.line_buffering, "stderr_line_buffering": sys.stderr.line_buffering,
        "numpy_draw": float(np.random.random()), "python_draw": random.random(),
        "pgrp_is_own": os.getpgrp() == os.getpid(),
    }


def main() -> int:
    command, *args = sys.argv[1:]
    if command == "state":
        print(json.dumps(state()))
        return 0
    if command == "exit":  # both streams, then a status
        print("to stdout")
        print("to stderr", file=sys.stderr)
        return int(args[0])
    if command == "raise":
        raise RuntimeError("probe failure")
    if command == "sysexit":
        sys.exit(args[0])
    if command == "sleep":  # say the pid, then wait to be killed
        print(os.getpid(), flush=True)
        time.sleep(float(args[0]))
        return 0
    if command == "killself":
        os.kill(os.getpid(), int(args[0]))
        time.sleep(5)
    raise SystemExit(f"unknown probe command {command!r}")


if __name__ == "__main__":
    from salbench.client import run

    sys.exit(run(ENTRY))
