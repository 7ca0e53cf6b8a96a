"""train_one_node.sh run directly, without Slurm: a USR1 or TERM to the script saves a checkpoint
and stops with exit 0, also when it arrives before the trainer has installed its handler."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.slurm.helpers import (
    ROOT,
    STEPS,
    TINY,
    WORKSTATION,
    environment,
    ignores_usr1,
    metric_steps,
    rank_pids,
)

pytestmark = pytest.mark.slow


def start(shards, run_dir):
    env = environment(shards, run_dir)
    env.pop("SLURM_JOB_ID", None)
    script = f"{TINY}\nexec {WORKSTATION}"  # exec: the script's pid is the one a user signals
    return subprocess.Popen(
        ["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop_and_check(proc, run_dir, signum=signal.SIGUSR1) -> int:
    os.kill(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert "stopped with a checkpoint" in out and "Stopped by SIGUSR1" in out, out[-3000:]
    assert not (run_dir / "done.json").exists()
    steps = metric_steps(run_dir)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < STEPS
    assert (run_dir / "checkpoints" / f"step-{steps[-1]:08d}").is_dir()
    return steps[-1]


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM], ids=["USR1", "TERM"])
def test_a_signal_to_the_script_saves_and_stops(shards, tmp_path, signum):
    """The script passes USR1 and TERM on to the ranks as USR1 (a checkpoint, then exit 0)."""
    run_dir = tmp_path / "run"
    proc = start(shards, run_dir)
    deadline = time.time() + 120
    while len(metric_steps(run_dir)) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    assert stop_and_check(proc, run_dir, signum) >= 2


def test_usr1_before_the_handler_is_installed_is_not_lost(shards, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(shards, run_dir)
    deadline = time.time() + 60
    while not (ranks := rank_pids(str(run_dir), "RUN_DIR")):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.02)
    # The rank has just started: USR1 is still ignored (inherited from the wrapper).
    assert ignores_usr1(ranks[0])
    assert stop_and_check(proc, run_dir) == 1  # stopped after its first step
