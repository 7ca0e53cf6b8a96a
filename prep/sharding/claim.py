"""Who may write into an output folder: the runs of one plan together, or one run that replaces it.

A prep run holds a shared lock (flock) on the output folder itself from the moment its plan is
the folder's plan until it ends, so the parts of one plan (`--part I/N`, an array job) run side
by side. Writing a plan (into an empty folder, or replacing another with `--overwrite`) needs
the lock exclusively: such a run waits until every run in the folder has ended, and no run starts
while it clears the folder. A run of another plan without `--overwrite` refuses at once with the
usual "holds shards of a different prep run" error (one line, exit status 2 from the CLI).

Only a run that holds the folder exclusively removes what killed runs left (temporary files it
cannot attribute to its own units): another live run's temporary files are that run's business.
The folder itself is locked, so no lock file appears among the outputs. File systems that refuse
flock get no lock, as before (the listing cache does the same). The text prep, which has no
parts, holds its folder exclusively (`hold_alone`) and refuses to start beside another run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from babylm.prep.errors import OutputError
from babylm.prep.sharding.records import read_plan, write_plan

log = logging.getLogger(__name__)


def _flock(fd: int, op: int) -> bool:
    """flock; False when another process holds a conflicting lock (LOCK_NB). A file system that
    refuses flock (some network file systems) counts as granting it: no locking there, as before."""
    try:
        fcntl.flock(fd, op)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _is_plan(out_dir: Path, plan: dict[str, Any]) -> bool:
    current = read_plan(out_dir)
    return current is not None and current["plan_sha256"] == plan["plan_sha256"]


@contextlib.contextmanager
def claim_output(
    out_dir: Path, plan: dict[str, Any], overwrite: bool, while_alone: Callable[[], None]
) -> Iterator[bool]:
    """Make `plan` the plan of `out_dir` and hold the folder for it while the body runs.

    `while_alone()` runs while this run holds the folder exclusively (it wrote the plan, or found
    it and nobody else was there): save what belongs to the plan, clean what killed runs left.
    Yields whether it ran."""
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        alone = _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not alone:
            _flock(fd, fcntl.LOCK_SH)  # waits only while another run writes its plan
        if not _is_plan(out_dir, plan):
            if read_plan(out_dir) is not None and not overwrite:
                write_plan(out_dir, plan, overwrite)  # refuses, naming the differing params
            if not alone and not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                log.warning("%s: another babylm-prep run is writing here; waiting for it to end", out_dir)
                _flock(fd, fcntl.LOCK_EX)
            alone = True
            if not _is_plan(out_dir, plan):  # another run may have written one while this one waited
                write_plan(out_dir, plan, overwrite)
        if alone:
            while_alone()
            # Keep the folder for this plan but let the other parts of it in. The conversion is
            # not atomic: a run waiting to replace the plan may get in between, so look again.
            _flock(fd, fcntl.LOCK_SH)
            if not _is_plan(out_dir, plan):
                write_plan(out_dir, plan, overwrite=False)  # refuses, naming the other run
        yield alone
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_alone(out_dir: Path) -> Iterator[None]:
    """Hold `out_dir` exclusively for a run that has no parts (the text prep), or refuse at once
    (OutputError) while another prep runs there: its temporary files must not be swept away."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
            raise OutputError(
                f"{out_dir}: another babylm-prep run is writing here; wait for it to end or use another --out"
            )
        yield
    finally:
        os.close(fd)
