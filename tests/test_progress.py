"""The progress view: jobs done of planned, time left from the finished jobs, where the report will be."""

from datetime import datetime
from pathlib import Path

import pytest

from salbench.progress import latest_log, main, parse_log, summary

LOG = """\
Building DAG of jobs...
Job stats:
job            count
-----------  -------
train_model        2
score              4
report             1
all                1
total              8

Select jobs to execute...
[Mon Dec  7 04:00:00 2026]
localrule train_model:
    output: results/shapes/models/cnn.pt
    jobid: 1
[Mon Dec  7 04:00:00 2026]
localrule train_model:
    output: results/shapes/models/resnet.pt
    jobid: 2
[Mon Dec  7 04:01:40 2026]
Finished jobid: 1 (Rule: train_model)
1 of 8 steps (12%) done
[Mon Dec  7 04:01:40 2026]
localrule score:
    output: results/shapes/cnn/scores/gradient.parquet
    jobid: 3
[Mon Dec  7 04:01:50 2026]
Finished jobid: 3 (Rule: score)
2 of 8 steps (25%) done
[Mon Dec  7 04:01:50 2026]
localrule score:
    jobid: 4
"""


def _write(tmp_path: Path, text: str, name: str = "2026-12-07T040000.000000.snakemake.log") -> Path:
    folder = tmp_path / ".snakemake" / "log"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_counts_running_jobs_and_time_left(tmp_path):
    progress = parse_log(_write(tmp_path, LOG))
    assert progress.planned == {"train_model": 2, "score": 4, "report": 1, "all": 1}
    assert (progress.done, progress.total) == (2, 7)  # the rule `all` does no work: not counted
    assert progress.done_by_rule() == {"train_model": 1, "score": 1}
    assert progress.durations() == {"train_model": [100.0], "score": [10.0]}
    assert progress.running() == ["train_model", "score"]
    now = datetime(2026, 12, 7, 4, 1, 50)
    # left: 1 training (100 s) + 3 scores (10 s each) + the report (median of the finished jobs, 55 s) = 185 s of
    # work; 110 s of jobs ran in 110 s elapsed, so one at a time
    assert progress.seconds_left(now) == pytest.approx(185.0)
    assert not progress.complete


def test_summary_says_what_is_done_left_and_where_the_report_will_be(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("study: demo\n")
    text = summary(parse_log(_write(tmp_path, LOG)), tmp_path, now=datetime(2026, 12, 7, 4, 1, 50))
    assert text.splitlines()[0] == "jobs done: 2 of 7 (29 %), elapsed 0:01:50"
    assert "time left: about 0:03:05" in text
    assert "running: train_model, score" in text
    assert f"report (when done): {(tmp_path / 'reports/demo/index.html').resolve()}" in text


def test_a_finished_run_and_a_failed_one(tmp_path):
    done = LOG.replace("    jobid: 4\n", "    jobid: 4\n") + "".join(
        f"[Mon Dec  7 04:02:0{k} 2026]\nlocalrule {rule}:\n    output: {out}\n    jobid: {j}\n"
        f"[Mon Dec  7 04:02:0{k} 2026]\nFinished jobid: {j} (Rule: {rule})\n"
        for k, (j, rule, out) in enumerate([(5, "score", "x"), (6, "score", "y"), (7, "report", "reports/s/index.html"),
                                            (2, "train_model", "m")]))
    done = done.replace("    jobid: 4\n", "    jobid: 4\n[Mon Dec  7 04:01:59 2026]\nFinished jobid: 4 (Rule: score)\n")
    progress = parse_log(_write(tmp_path, done))
    assert progress.complete and progress.seconds_left() == 0.0 and progress.report == "reports/s/index.html"
    assert "finished" in summary(progress, tmp_path)
    failed = parse_log(_write(tmp_path, LOG + "Error in rule score:\n    jobid: 4\n", "z.snakemake.log"))
    assert failed.failed == ["score"] and "FAILED: score" in summary(failed, tmp_path)
    assert latest_log(tmp_path).name == "z.snakemake.log"  # the newest log by its time-stamped name


def test_command_without_a_run_says_how_to_start_one(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path)]) == 1
    assert "make demo" in capsys.readouterr().out
