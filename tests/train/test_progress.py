"""Training progress in a log file (stderr not a terminal): plain lines, one per interval, no `\r`."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from babylm.train.progress import TrainProgress
from tests.train.trainer_fixtures import metrics, train_args, write_trainer_data


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(
        tmp_path_factory.mktemp("progress_data"), tiny_tokenizer_dir, images=16, lines=80
    )


def train_to_log(args: list[str], log_path, seconds: str) -> str:
    """`python -m babylm.train ARGS 2> log`, as a batch job writes it; returns the log."""
    env = dict(os.environ, BABYLM_PROGRESS_SECONDS=seconds)
    with open(log_path, "wb") as log:
        done = subprocess.run(
            [sys.executable, "-m", "babylm.train", *args], stdout=log, stderr=log, env=env, timeout=600
        )
    text = log_path.read_bytes().decode()
    assert done.returncode == 0, text[-3000:]
    return text


def test_a_log_file_gets_one_progress_line_per_interval(data, tmp_path):
    run_dir = tmp_path / "run"
    args = train_args("opt", data, run_dir, "--max-steps", "6", "--log-every", "2", "--save-every", "0")
    log = train_to_log(args, tmp_path / "train.log", "0")  # 0 s: a line at every metrics record
    assert "\r" not in log
    lines = [line for line in log.splitlines() if line.startswith("opt: ")]
    assert [re.match(r"opt: (\d)/6 step \(\d+%\)", line).group(1) for line in lines] == ["2", "4", "6"]
    for line, rec in zip(lines, metrics(run_dir), strict=True):
        assert f"loss {rec['loss']:.3f}" in line and "samples/s" in line and "ETA " in line


def test_the_interval_spaces_the_lines_and_the_last_step_is_always_shown(data, tmp_path):
    args = train_args("opt", data, tmp_path / "run", "--max-steps", "4", "--save-every", "0")
    log = train_to_log(args, tmp_path / "train.log", "3600")
    assert "\r" not in log
    assert [line[:9] for line in log.splitlines() if line.startswith("opt: ")] == ["opt: 4/4 "]


def test_only_rank_0_prints_and_words_seen_show_when_recorded(monkeypatch):
    monkeypatch.setenv("BABYLM_PROGRESS_SECONDS", "0")
    rec = {"step": 2, "loss": 3.25, "lr": 1e-4, "samples_per_s": 12.0}
    streams = {rank: io.StringIO() for rank in (0, 1)}
    for rank, stream in streams.items():
        bar = TrainProgress(rank, 4, 0, "git", stream=stream)
        bar.step()
        bar.step()
        bar.record(rec)
        bar.step()
        bar.record({**rec, "step": 3, "words": 1_234_567}, final=True)
        bar.close()
    assert streams[1].getvalue() == ""
    first, last = streams[0].getvalue().splitlines()
    assert first.startswith("git: 2/4 step (50%)") and first.endswith("| loss 3.250 lr 1.00e-04 12 samples/s")
    assert last.startswith("git: 3/4 step") and last.endswith("12 samples/s words 1.23M")
