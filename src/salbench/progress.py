"""How far a workflow run is: jobs done of planned, an estimate of the time left, where the report will be.

Reads the log Snakemake writes for every run (``.snakemake/log/<time>.snakemake.log``, the newest by default):
the planned job counts (its "Job stats" table), each job's start (``[time]`` then ``rule NAME:`` ... ``jobid: N``)
and finish (``Finished jobid: N``), and the report among the jobs' outputs (``reports/<study>/index.html``; before a job names it, from the run's
config file). Nothing here imports torch or Snakemake: ``python -m salbench.progress`` answers in a fraction of a
second, during a run (from another terminal; ``--watch 30`` repeats) or after it.

The estimate: each rule's remaining jobs times the mean duration of that rule's finished jobs (the median
of every finished job for a rule with none finished yet), divided by how many jobs ran side by side so far
(total job time over elapsed time). Jobs of the rule ``all`` (which does nothing) are not counted.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

#: a log line holding a time stamp, ``[Mon Dec  7 04:14:47 2026]``
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")
_STATS_ROW = re.compile(r"^(\S+)\s+(\d+)$")
_REPORT = re.compile(r"(reports/[^,\s]+/index\.html)")
_ERROR = re.compile(r"^Error in rule (\S+):")
#: rules that do no work of their own (the target rule)
IDLE_RULES = ("all",)


@dataclass
class Progress:
    """What one Snakemake log says about its run (times are the log's local times)."""

    log: Path
    planned: dict[str, int] = field(default_factory=dict)  # rule -> jobs planned
    started: dict[int, tuple[str, datetime]] = field(default_factory=dict)  # jobid -> (rule, start)
    finished: dict[int, datetime] = field(default_factory=dict)  # jobid -> finish
    failed: list[str] = field(default_factory=list)  # rules with an error
    first: datetime | None = None
    last: datetime | None = None
    report: str | None = None
    complete: bool = False

    @property
    def total(self) -> int:
        return sum(n for rule, n in self.planned.items() if rule not in IDLE_RULES)

    def done_by_rule(self) -> dict[str, int]:
        done: dict[str, int] = {}
        for jobid in self.finished:
            rule = self.started.get(jobid, ("?", None))[0]
            done[rule] = done.get(rule, 0) + 1
        return done

    @property
    def done(self) -> int:
        return sum(n for rule, n in self.done_by_rule().items() if rule not in IDLE_RULES)

    def durations(self) -> dict[str, list[float]]:
        """Seconds of each finished job, by rule."""
        out: dict[str, list[float]] = {}
        for jobid, end in self.finished.items():
            if jobid in self.started:
                rule, start = self.started[jobid]
                out.setdefault(rule, []).append((end - start).total_seconds())
        return out

    def running(self) -> list[str]:
        """Rules of the jobs started and not finished (in start order)."""
        return [rule for jobid, (rule, _) in sorted(self.started.items(), key=lambda kv: kv[1][1])
                if jobid not in self.finished and rule not in IDLE_RULES]

    def elapsed(self, now: datetime | None = None) -> float:
        if self.first is None:
            return 0.0
        end = self.last if self.complete or now is None else max(now, self.last or now)
        return max((end - self.first).total_seconds(), 0.0)

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Estimated wall seconds to the end of the run (None before any job finished; 0 when complete)."""
        if self.complete:
            return 0.0
        durations = self.durations()
        every = [s for rule, values in durations.items() if rule not in IDLE_RULES for s in values]
        if not every:
            return None
        overall = statistics.median(every)  # robust to the few long training jobs that finish first
        done = self.done_by_rule()
        work = sum(max(n - done.get(rule, 0), 0) * (sum(durations[rule]) / len(durations[rule])
                                                     if durations.get(rule) else overall)
                   for rule, n in self.planned.items() if rule not in IDLE_RULES)
        elapsed = self.elapsed(now)
        parallel = sum(every) / elapsed if elapsed > 0 else 1.0
        return work / max(parallel, 1.0)


def parse_log(path: Path) -> Progress:
    """The :class:`Progress` of one Snakemake log file."""
    progress = Progress(log=path)
    stamp: datetime | None = None
    rule: str | None = None
    in_stats = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("Job stats:") and not progress.planned:
            in_stats = True
            continue
        if in_stats:
            row = _STATS_ROW.match(line)
            if row and row.group(1) != "total":
                progress.planned[row.group(1)] = int(row.group(2))
            elif line.startswith("total") or (not line.strip() and progress.planned):
                in_stats = False
            continue
        if match := _STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
            progress.first = progress.first or stamp
            progress.last = stamp
        elif match := _RULE.match(line):
            rule = match.group(1)
        elif (match := _JOBID.match(line)) and rule is not None and stamp is not None:
            progress.started.setdefault(int(match.group(1)), (rule, stamp))
            rule = None
        elif (match := _FINISHED.match(line)) and stamp is not None:
            progress.finished[int(match.group(1))] = stamp
        elif match := _ERROR.match(line):
            progress.failed.append(match.group(1))
        elif line.startswith("Nothing to be done"):
            progress.complete = True
        if progress.report is None and "index.html" in line and (match := _REPORT.search(line)):
            progress.report = match.group(1)
    if progress.planned and progress.done >= progress.total:
        progress.complete = True
    return progress


def latest_log(workdir: Path = Path(".")) -> Path:
    """The newest Snakemake log of a work folder; a FileNotFoundError saying how to start a run when none."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise FileNotFoundError(f"no Snakemake run in {workdir.resolve()} yet (no .snakemake/log/*.snakemake.log): "
                                "start one with `make demo` or `snakemake`")
    return logs[-1]


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def report_path(progress: Progress, config: Path) -> str | None:
    """The report's path: from the log once a job names it, else from the ``study`` of the run's config file."""
    if progress.report or not config.is_file():
        return progress.report
    import yaml

    study = (yaml.safe_load(config.read_text()) or {}).get("study")
    return f"reports/{study}/index.html" if study else None


def summary(progress: Progress, workdir: Path = Path("."), now: datetime | None = None,
            config: Path | None = None) -> str:
    """The lines ``salbench progress`` prints (``config``: the run's config file, for the report's path)."""
    now = now or datetime.now()
    total, done = progress.total, progress.done
    share = f" ({100 * done / total:.0f} %)" if total else ""
    lines = [f"jobs done: {done} of {total}{share}, elapsed {_clock(progress.elapsed(now))}"]
    if progress.failed:
        lines.append(f"FAILED: {', '.join(sorted(set(progress.failed)))} (see {progress.log})")
    elif progress.complete:
        lines.append("finished" if total else "nothing to do: every output is up to date")
    else:
        left = progress.seconds_left(now)
        lines.append("time left: " + ("unknown until the first job finishes" if left is None else
                                      f"about {_clock(left)} (from the jobs finished so far)"))
        running = progress.running()
        if running:
            counts = {r: running.count(r) for r in dict.fromkeys(running)}
            lines.append("running: " + ", ".join(f"{r} x{n}" if n > 1 else r for r, n in counts.items()))
    done_by_rule = progress.done_by_rule()
    width = max((len(r) for r in progress.planned), default=0)
    for rule, n in progress.planned.items():
        if rule not in IDLE_RULES:
            lines.append(f"  {rule:<{width}}  {done_by_rule.get(rule, 0):>5} / {n}")
    report = report_path(progress, config or workdir / "config" / "config.yaml")
    if report:
        where = (workdir / report).resolve()
        state = "ready" if where.is_file() and (progress.complete or done_by_rule.get("report")) else "when done"
        lines.append(f"report ({state}): {where}")
    lines.append(f"log: {progress.log}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m salbench.progress [--workdir DIR] [--log FILE] [--watch SECONDS]``: print :func:`summary`."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="salbench progress", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."), help="the run's work folder (default: here)")
    parser.add_argument("--log", type=Path, help="a Snakemake log (default: the work folder's newest)")
    parser.add_argument("--config", type=Path, help="the run's config file, for the report's path before a job names "
                        "it (default: config/config.yaml in the work folder)")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until the run ends")
    args = parser.parse_args(argv)
    while True:
        try:
            progress = parse_log(args.log or latest_log(args.workdir))
        except FileNotFoundError as err:
            print(f"salbench progress: {err}")
            return 1
        print(summary(progress, args.workdir, config=args.config), flush=True)
        if not args.watch or progress.complete or progress.failed:
            return 0
        time.sleep(args.watch)
        print()


if __name__ == "__main__":
    raise SystemExit(main())
