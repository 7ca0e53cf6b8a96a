"""Progress of long commands (prep and training): tqdm's bar on a terminal, plain lines elsewhere.

A bar redraws itself with carriage returns; in a file (a Slurm `slurm-*.out`, `cmd > log 2>&1`)
every redraw stays, and `tail`/`less`/`grep` see one endless line. So when the stream is not a
terminal, progress is a full line every `BABYLM_PROGRESS_SECONDS` seconds (default 30) instead.
Both prep and train use this module (they may not import each other; both import shards).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

INTERVAL_ENV = "BABYLM_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def progress_interval() -> float:
    """Seconds between two progress lines: $BABYLM_PROGRESS_SECONDS, else 30 (0: every update)."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        print(
            f"warning: {INTERVAL_ENV}={raw!r} is not a number of seconds >= 0; using {DEFAULT_INTERVAL:g}",
            file=sys.stderr,
        )
        return DEFAULT_INTERVAL
    return value


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (where a redrawn bar belongs)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_duration(seconds: float) -> str:
    """`1:02:03` for 3723 seconds; `?` when unknown."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_count(n: float) -> str:
    """A count as people read it in a log: 950, 12.3k, 4.56M, 1.20G."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:g}"


class LineProgress:
    """tqdm's interface (update, set_postfix_str, write, close) printing whole lines:
    `desc: 120/400 img (30%), 41.2 img/s, elapsed 0:00:03, ETA 0:00:07 | postfix`.

    With `auto`, `update` prints a line once `interval` seconds have passed since the last one and
    `close` prints the final state; without it only `refresh` prints (the caller knows when its
    numbers are fresh, e.g. the trainer at a metrics record)."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        interval: float | None = None,
        stream: TextIO | None = None,
        auto: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.interval = progress_interval() if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.auto = auto
        self.postfix = ""
        self._clock = clock
        self._started = self._last = clock()
        self._printed_n: int | None = None
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.auto:
            self.refresh()

    def set_postfix_str(self, s: str = "", refresh: bool = False) -> None:
        self.postfix = s
        if refresh:
            self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Print a line if forced or `interval` seconds have passed since the last one."""
        now = self._clock()
        if force or now - self._last >= self.interval:
            self._last = now
            self._printed_n = self.n
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        """The progress line as of `now`."""
        now = self._clock() if now is None else now
        elapsed = now - self._started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        parts = [f"{head}{self.n:,}"]
        if self.total:
            parts[0] += f"/{self.total:,} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total:
            parts.append(f"ETA {format_duration((self.total - self.n) / rate if rate > 0 else -1)}")
        text = ", ".join(parts)
        return f"{text} | {self.postfix}" if self.postfix else text

    def write(self, message: str, file: TextIO | None = None) -> None:
        print(message, file=file if file is not None else self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.auto and self._printed_n != self.n:
            self.refresh(force=True)
        self.closed = True

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(
    total: int | None,
    desc: str = "",
    unit: str = "it",
    *,
    initial: int = 0,
    enabled: bool = True,
    stream: TextIO | None = None,
    auto: bool = True,
    **bar_options: Any,
) -> Any:
    """The progress display of one job: tqdm's bar when `stream` (default stderr) is a terminal,
    a `LineProgress` otherwise, a silent tqdm when not `enabled`. `bar_options` go to tqdm only."""
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, **bar_options)
    return LineProgress(total, desc, unit, initial=initial, stream=stream, auto=auto)


def write(message: str, stream: TextIO | None = None) -> None:
    """Print a message line without tearing a bar that is on screen (tqdm.write)."""
    from tqdm import tqdm

    tqdm.write(message, file=stream if stream is not None else sys.stderr)
