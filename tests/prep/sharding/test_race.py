"""Two different preps on one --out at once: one clean dataset; the other waits or refuses in one
line, never a temporary-file error. Real processes (`babylm-prep` subprocesses) and real locks."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babylm.prep.errors import OutputError
from babylm.prep.sharding.claim import hold_alone
from babylm.shards import open_dataset, verify_dataset
from tests.prep.raw_fixtures import good_cc3m_rows, write_cc3m_downloader

TIMEOUT = 240


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_cc3m_downloader(root, good_cc3m_rows(48))
    return root


def start(raw_root: Path, out: Path, image_size: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "babylm.prep", "cc3m", "--root", str(raw_root), "--out", str(out)]
    cmd += ["--samples-per-shard", "4", "--image-size", str(image_size), "--no-progress", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def assert_clean(out: Path, image_size: int) -> None:
    ds = open_dataset(out)
    assert ds.manifest.params["image"]["size"] == image_size
    assert ds.manifest.num_samples == 48
    assert verify_dataset(ds, deep=True) == []


def assert_refused_in_one_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "holds shards of a different prep run" in lines[0]


@pytest.mark.parametrize("trial", range(2))
def test_two_preps_racing_one_wins_the_other_refuses(raw_root, tmp_path, trial):
    out = tmp_path / "out"
    a, b = start(raw_root, out, 48), start(raw_root, out, 32)
    (rc_a, err_a), (rc_b, err_b) = finish(a), finish(b)
    assert sorted([rc_a, rc_b]) == [0, 2], (err_a, err_b)
    winner = 48 if rc_a == 0 else 32
    assert_refused_in_one_line(err_b if rc_a == 0 else err_a)
    assert_clean(out, winner)


def test_an_overwriting_prep_racing_another_ends_with_its_own_dataset(raw_root, tmp_path):
    out = tmp_path / "out"
    a, b = start(raw_root, out, 48), start(raw_root, out, 32, "--overwrite")
    (rc_a, err_a), (rc_b, err_b) = finish(a), finish(b)
    assert rc_b == 0, err_b
    assert "Traceback" not in err_b and "No such file" not in err_b
    if rc_a != 0:  # b wrote its plan first: a refuses
        assert rc_a == 2
        assert_refused_in_one_line(err_a)
    assert_clean(out, 32)


def test_an_overwriting_prep_waits_for_a_live_run_to_end(raw_root, tmp_path):
    out = tmp_path / "out"
    first = start(raw_root, out, 48)
    assert finish(first)[0] == 0
    # A live run of that plan (as a running prep holds it): the folder, locked shared.
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        second = start(raw_root, out, 32, "--overwrite")
        deadline = time.monotonic() + TIMEOUT
        seen = ""
        while "waiting" not in seen and time.monotonic() < deadline:
            assert second.poll() is None, second.communicate()
            if select.select([second.stderr], [], [], 1)[0]:
                seen += os.read(second.stderr.fileno(), 4096).decode()
        assert "another babylm-prep run is writing here; waiting" in seen
        time.sleep(1)
        assert second.poll() is None  # still waiting: nothing of the first run was touched
        assert_clean(out, 48)
    finally:
        os.close(fd)
    rc, err = finish(second)
    assert rc == 0, seen + err
    assert_clean(out, 32)


def test_the_text_prep_refuses_a_folder_another_run_holds(tmp_path):
    """The text prep has no parts: beside a live run it refuses at once, before touching a file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".shard-000000.1234.tmp").write_bytes(b"a live run's temporary file")
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with pytest.raises(OutputError, match="another babylm-prep run is writing here"):
            with hold_alone(out):
                pass
    finally:
        os.close(fd)
    assert (out / ".shard-000000.1234.tmp").exists()
    with hold_alone(out):  # free again
        pass
