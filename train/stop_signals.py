"""SIGTERM and SIGUSR1 as a request to stop after the current optimizer step (with a checkpoint).

The handler only records the signal; the trainer asks `received()` after every step and all ranks
agree on it through an all-reduce, so every rank stops after the same step.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

_STOP: dict[str, int | None] = {"signal": None}
_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def _on_signal(signum: int, _frame: Any) -> None:
    _STOP["signal"] = int(signum)


def stop_pending() -> bool:
    """Whether the launcher was told to stop before this rank could hear it. The Slurm scripts
    start the ranks with USR1 ignored (torchrun, their parent, would die of it), so a USR1 that
    comes before the handler is installed is lost; their wrapper therefore first creates the file
    named by BABYLM_STOP_FILE, then signals. Checked after the handler is installed, either the
    signal reaches the handler or the file is already there."""
    path = os.environ.get("BABYLM_STOP_FILE")
    return bool(path) and os.path.exists(path)


@contextlib.contextmanager
def catching_stop_signals() -> Iterator[None]:
    """Record SIGTERM/SIGUSR1 (and a stop that came before) for `received()`; the previous
    handlers come back on exit."""
    _STOP["signal"] = None
    # Installed before the loader forks its workers, which inherit this harmless flag-setter.
    previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    if stop_pending():
        _STOP["signal"] = int(signal.SIGUSR1)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def received() -> int:
    """The number of the stop signal this process received, 0 for none."""
    return _STOP["signal"] or 0
