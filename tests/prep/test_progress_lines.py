"""Prep commands in a log file (stderr not a terminal): plain progress lines, no `\r`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def prep_to_log(args: list[str], log_path: Path, seconds: str = "0") -> str:
    """`python -m babylm.prep ARGS 2> log`, as a batch job writes it; returns the log."""
    env = dict(os.environ, BABYLM_PROGRESS_SECONDS=seconds)
    with open(log_path, "wb") as log:
        done = subprocess.run(
            [sys.executable, "-m", "babylm.prep", *args], stdout=log, stderr=log, env=env, timeout=300
        )
    text = log_path.read_bytes().decode()
    assert done.returncode == 0, text[-3000:]
    assert "\r" not in text
    return text


def counts(log: str, desc: str) -> list[tuple[int, int]]:
    """(done, total) of every progress line of `desc`."""
    found = re.findall(rf"^{re.escape(desc)}: ([\d,]+)/([\d,]+) ", log, re.M)
    return [(int(done.replace(",", "")), int(total.replace(",", ""))) for done, total in found]


def test_prep_commands_print_one_line_per_interval(tmp_path):
    demo = tmp_path / "demo"
    log = prep_to_log(
        ["demo-data", "--out", str(demo), "--cc3m-rows", "60", "--ln-images", "4", "--text-lines", "5"],
        tmp_path / "demo.log",
    )
    # Interval 0: a line at every update (one per part).
    assert counts(log, "demo data") == [(1, 4), (2, 4), (3, 4), (4, 4)]

    out = tmp_path / "cc3m"
    log = prep_to_log(
        ["cc3m", "--root", str(demo / "datasets"), "--out", str(out), "--samples-per-shard", "20"],
        tmp_path / "cc3m.log",
    )
    seen = counts(log, "cc3m-training")
    assert seen and seen[-1][0] == seen[-1][1] == 60  # rows done, skipped ones included
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})  # one line per update

    log = prep_to_log(["verify", str(out)], tmp_path / "verify.log")
    assert counts(log, "verify") == [(1, 3), (2, 3), (3, 3)]
    # A long interval: only the final state, once.
    log = prep_to_log(["verify", str(out)], tmp_path / "verify2.log", seconds="3600")
    assert counts(log, "verify") == [(3, 3)]
