"""Both Slurm scripts on a real one-node Slurm (make test-slurm): a USR1 stop saves a checkpoint,
the job requeues itself (same id, restart 1), resumes at the checkpoint step and finishes, with
every step logged once."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from tests.slurm.helpers import (
    SBATCH_MULTI,
    SBATCH_ONE,
    STEPS,
    STOP,
    environment,
    ignores_usr1,
    job_info,
    metric_steps,
    rank_pids,
    shell,
    submit,
    wait_for_end,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def check_requeued_run(job: str, run_dir, stopped_at: int | None = None) -> int:
    """The whole story in the job log and RUN_DIR; returns the step the first run stopped at."""
    info = wait_for_end(job)
    log = run_dir.with_name(run_dir.name + ".log").read_text()
    assert (info["JobState"], info["Restarts"], info["ExitCode"]) == ("COMPLETED", "1", "0:0"), log[-3000:]
    assert f"job {job} (restart 0)" in log and f"job {job} (restart 1)" in log, log[-3000:]
    assert log.count("stopped with a checkpoint") == 1 and "training complete" in log
    # A job log is not a terminal: plain progress lines, no bar redrawn with carriage returns.
    assert "\r" not in log and re.search(r"^flamingo: \d+/\d+ step", log, re.M), log[-3000:]
    step = int(re.search(r"Stopped by SIGUSR1 after step (\d+)/", log).group(1))
    if stopped_at is not None:
        assert step == stopped_at
    # The requeued run started from that checkpoint and went on to the end.
    resumed = json.loads((run_dir / "run.json").read_text())["resumed_from"]
    assert resumed.endswith(f"step-{step:08d}")
    assert json.loads((run_dir / "done.json").read_text()) == {"step": STEPS, "total": STEPS}
    assert metric_steps(run_dir) == list(range(1, STEPS + 1))  # no step twice, none missing
    stamps = re.findall(r"^(\S+) (?:stopped with a checkpoint|job \S+ \(restart 1\))", log, re.M)
    delay = (datetime.fromisoformat(stamps[1]) - datetime.fromisoformat(stamps[0])).total_seconds()
    print(f"job {job}: stopped at step {step}, restarted {delay:.0f} s later")
    return step


def test_train_sbatch_stopped_mid_run_requeues_and_resumes(shards, tmp_path):
    run_dir = tmp_path / "multi"
    env = environment(shards, run_dir)
    job = submit(SBATCH_MULTI, env)
    deadline = time.time() + 120
    while len(metric_steps(run_dir)) < 2:  # training runs
        assert job_info(job)["JobState"] in ("PENDING", "RUNNING") and time.time() < deadline
        time.sleep(0.05)
    assert shell([STOP], environment(shards, run_dir, job)).returncode == 0
    assert 2 <= check_requeued_run(job, run_dir) < STEPS


def test_train_one_node_stopped_at_start_up_requeues_and_resumes(shards, tmp_path):
    """The USR1 lands while the rank is still starting, with USR1 ignored: not lost."""
    run_dir = tmp_path / "one"
    env = environment(shards, run_dir)
    job = submit(SBATCH_ONE, env)
    deadline = time.time() + 120
    while not (ranks := rank_pids(str(run_dir), "RUN_DIR")):
        assert job_info(job)["JobState"] in ("PENDING", "RUNNING") and time.time() < deadline
        time.sleep(0.02)
    assert ignores_usr1(ranks[0])
    assert shell([STOP], environment(shards, run_dir, job)).returncode == 0
    check_requeued_run(job, run_dir, stopped_at=1)
