"""Bad input to the Slurm scripts: a clear message in the job log, a non-zero exit, no requeue."""

from __future__ import annotations

import subprocess

import pytest

from tests.slurm.helpers import ROOT, SBATCH_MULTI, SBATCH_ONE, environment, submit, wait_for_end

pytestmark = pytest.mark.slurm
NO_GPU = {"train.sbatch": "--gpus-per-node=0", "train_one_node.sh": "--gpus=0"}


def check_failed(job: str, log_path, message: str, exit_code: int) -> str:
    info = wait_for_end(job, timeout=120)
    log = log_path.read_text()
    assert message in log, log[-3000:]
    assert (info["JobState"], info["Restarts"]) == ("FAILED", "0"), (info, log[-3000:])
    assert info["ExitCode"] == f"{exit_code}:0", info
    return log


@pytest.mark.parametrize("script", sorted(NO_GPU))
def test_no_arguments(tmp_path, script):
    log = tmp_path / "job.log"
    out = subprocess.run(
        ["sbatch", "--parsable", NO_GPU[script], "--cpus-per-task=1", "--mem=0", f"--output={log}"]
        + [f"scripts/slurm/{script}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = check_failed(out.stdout.strip(), log, "error: RUN_DIR and MODEL are required", 2)
    assert f"scripts/slurm/{script} RUN_DIR MODEL" in text  # the usage line


def test_run_dir_not_writable(shards, tmp_path):
    (tmp_path / "a-file").write_text("")
    run_dir = tmp_path / "a-file" / "run"  # even root cannot make a folder inside a file
    log = tmp_path / "job.log"
    job = submit(SBATCH_ONE.replace("$RUN_DIR.log", str(log)), environment(shards, run_dir))
    check_failed(job, log, f"error: RUN_DIR {run_dir} is not writable", 2)


def test_a_bad_option_fails_once(shards, tmp_path):
    run_dir = tmp_path / "run"
    job = submit(SBATCH_MULTI, environment(shards, run_dir), "--no-such-option")
    log = check_failed(job, run_dir.with_name("run.log"), "training failed (exit 1); not requeueing", 1)
    assert "no such option" in log.lower() and "--no-such-option" in log  # click's own message


def test_an_exit_0_without_a_checkpoint_is_not_requeued(shards, tmp_path):
    run_dir = tmp_path / "run"
    job = submit(SBATCH_ONE, environment(shards, run_dir), "--help")
    check_failed(job, run_dir.with_name("run.log"), "exited 0 without finishing or saving a checkpoint", 1)
