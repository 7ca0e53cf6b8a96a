"""What the prep library raises: `PrepError` and its kinds. No click here.

The `babylm-prep` CLI (`prep/cli/`) turns every `PrepError` into one `Error:` line and exit
status 2; called from Python, a notebook or a Slurm/Ray job, they are ordinary exceptions.
"""

from __future__ import annotations


class PrepError(Exception):
    """An error the user can fix; the message names the input and the fix."""


class InputError(PrepError, ValueError):
    """Raw input that cannot be used as a whole (the message names the file and line)."""


class ConfigError(PrepError, ValueError):
    """A bad setting or a missing folder/file given as a setting (the message names the option)."""


class OutputError(PrepError):
    """The output folder holds something this run must not mix with (another run, missing units)."""


class WorkerError(PrepError):
    """A worker process died; complete shards are kept and a rerun goes on."""


class RowSkip(Exception):
    """Not an error: one input row that cannot become a sample; `reason` is the skip-count name,
    `detail` says why. The sharding engine counts it and writes it to `skipped.jsonl`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
