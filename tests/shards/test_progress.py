"""Progress display: a line per interval when the stream is not a terminal, tqdm's bar when it is."""

from __future__ import annotations

import io
import os
import re

import pytest

from babylm.shards.progress import LineProgress, format_count, format_duration, progress, progress_interval


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_interval_and_the_final_state():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(100, "cc3m", "img", interval=30, stream=out, clock=clock)
    for _ in range(100):  # one image a second for 100 seconds
        clock.now += 1
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    # At 30, 60 and 90 seconds, then the final state at close.
    assert [re.match(r"cc3m: (\d+)/100 img", line).group(1) for line in lines] == ["30", "60", "90", "100"]
    assert "\r" not in out.getvalue()
    assert "1 img/s" in lines[0] and "elapsed 0:00:30" in lines[0] and "ETA 0:01:10" in lines[0]


def test_close_does_not_repeat_a_line_already_printed():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(2, "verify", "shard", interval=0, stream=out, clock=clock)
    for _ in range(2):
        clock.now += 1
        bar.update()
    bar.close()
    assert out.getvalue().splitlines() == [
        "verify: 1/2 shard (50%), 1 shard/s, elapsed 0:00:01, ETA 0:00:01",
        "verify: 2/2 shard (100%), 1 shard/s, elapsed 0:00:02, ETA 0:00:00",
    ]


def test_without_auto_only_refresh_prints_and_the_postfix_follows():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(10, "opt", "step", initial=4, interval=30, stream=out, auto=False, clock=clock)
    clock.now += 40
    bar.update(2)  # due, but only refresh prints
    bar.set_postfix_str("loss 2.500")
    bar.refresh()
    clock.now += 1
    bar.update(1)
    bar.refresh()  # not due
    bar.refresh(force=True)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("opt: 6/10 step (60%), 0.05 step/s") and lines[0].endswith("| loss 2.500")
    assert lines[1].startswith("opt: 7/10 step")


def test_a_terminal_gets_the_bar_and_a_file_the_lines(tmp_path):
    from tqdm import tqdm

    with open(tmp_path / "log", "w") as f:
        assert isinstance(progress(3, "x", "it", stream=f), LineProgress)
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        bar = progress(3, "x", "it", stream=tty)
        assert isinstance(bar, tqdm) and not bar.disable
        bar.close()
    os.close(master)
    assert progress(3, "x", "it", enabled=False).disable


@pytest.mark.parametrize(
    ("value", "expected"), [("", 30.0), ("0", 0.0), ("2.5", 2.5), ("-1", 30.0), ("x", 30.0)]
)
def test_interval_from_the_environment(monkeypatch, capsys, value, expected):
    monkeypatch.setenv("BABYLM_PROGRESS_SECONDS", value)
    assert progress_interval() == expected
    assert ("warning: BABYLM_PROGRESS_SECONDS" in capsys.readouterr().err) == (value in ("-1", "x"))


def test_formats():
    assert format_duration(3723) == "1:02:03" and format_duration(-1) == "?"
    assert (
        format_count(950) == "950" and format_count(12_345) == "12.3k" and format_count(4_560_000) == "4.56M"
    )
