"""The errors of `babylm.train` that a user causes and can fix (a path, an option, a dataset).

Library code raises these; the `babylm-train` CLI prints them as one line and exits with 2.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class TrainError(Exception):
    """Something the user can fix; the message names the input and the fix."""


class SetupError(TrainError, ValueError):
    """A run that cannot start as configured (paths, data kinds, tokenizer)."""


class MissingInput(TrainError, FileNotFoundError):
    """A file or folder the command needs is not there (a checkpoint, metrics, a dataset)."""


class DataError(TrainError, ValueError):
    """Datasets that cannot be used together as asked (kinds that differ, a missing stream)."""


class CheckpointError(TrainError, ValueError):
    """A checkpoint folder whose files are damaged or were not written by this trainer."""
