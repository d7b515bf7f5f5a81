"""Resume after a killed run: release the Snakemake locks that a run killed outright left behind.

Snakemake locks a run's inputs and outputs with files in ``.snakemake/locks`` and removes them when the run
ends, also on an error or Ctrl-C; a run killed with SIGKILL (an out-of-memory killer, a closed laptop lid that
never came back, a power loss) leaves them, and the next run then refuses to start until ``snakemake --unlock``.
Snakemake does not record who holds a lock, so the main process of every run records itself
(``.snakemake/salbench_runs/<host>-<pid>``) when the Snakefile is parsed, before Snakemake takes its locks,
and removes that record at exit. A later run removes the lock files only when every recorded run is gone:
a record of this host whose process has ended. A record of another host (a shared folder on a cluster)
cannot be checked from here, so its locks stay and the message says what to run once that run is gone.

Called from ``workflow/rules/common.smk`` in Snakemake's main process only: job processes (``--mode
subprocess``, cluster jobs) re-parse the Snakefile while their main process holds the locks.
Only the standard library is imported here: every cluster job re-parses the Snakefile.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
from pathlib import Path

#: folder of the run records, inside Snakemake's ``.snakemake`` folder
RUNS_DIR = "salbench_runs"
LOCKS_DIR = "locks"


def record_run(state_dir: Path) -> Path:
    """Record this process as a running main Snakemake process of the folder; the record goes at exit."""
    record = state_dir / RUNS_DIR / f"{socket.gethostname()}-{os.getpid()}"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.touch()
    atexit.register(_remove, record)
    return record


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process that runs Snakemake (a reused pid of another program is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: assume it is the run
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS) or a process that just ended: the pid alone decides
        return True
    return b"snakemake" in command


def release_stale_locks(state_dir: Path = Path(".snakemake")) -> list[str]:
    """Record this run, then remove the lock files of runs that are gone; returns lines for the user.

    Lock files are listed before the records are read, and only those listed are removed, so the locks of
    a run that starts meanwhile (its record is written before its locks) are never touched.
    """
    own = record_run(state_dir)
    locks = sorted((state_dir / LOCKS_DIR).glob("*.lock"))
    if not locks:
        return []
    host = socket.gethostname()
    dead, unknown = [], []
    for record in sorted((state_dir / RUNS_DIR).iterdir()):
        if record == own:
            continue
        owner, _, pid = record.name.rpartition("-")
        if owner != host or not pid.isdigit():
            unknown.append(record.name)
        elif _alive(int(pid)):
            return []  # a run of this folder is alive on this host: its locks are real
        else:
            dead.append(record)
    if unknown:
        return [f"Snakemake's lock in {state_dir / LOCKS_DIR} may belong to a run on another host "
                f"({', '.join(unknown)}: host-pid); once no Snakemake runs in this folder there, run "
                f"`snakemake --unlock` (with this run's options) and then this command again"]
    for path in [*locks, *dead]:
        _remove(path)
    return [f"removed the lock that a killed run left in {state_dir / LOCKS_DIR} (no Snakemake process of this "
            "folder is alive); jobs it left incomplete are redone"]
