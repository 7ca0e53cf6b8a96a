"""`babylm-train`: train the BabyLM baselines from shards, resume, export.

The only place that decides how errors look: a mistake the user can fix (a `TrainError` from the
library, a dataset without a manifest or with one that does not validate, a shard that is missing
or damaged, a full or read-only disk, a click usage error) is one `Error:` line on stderr and exit
status 2; anything else is a bug and keeps its traceback (exit status 1).

Under torchrun every rank meets the same error: rank 0 prints the line, the other ranks print
nothing, and each writes the message to torchrun's error file (TORCHELASTIC_ERROR_FILE), so
torchrun's failure summary shows it in place of "To enable traceback see ...".
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import time
from typing import NoReturn

import click

from babylm.shards import DatasetNotFound, ShardsError
from babylm.shards.cli_errors import ErrorGroup
from babylm.shards.version import package_version
from babylm.train.cli_samples import samples
from babylm.train.errors import TrainError
from babylm.train.train_cli import evaluate_command, export, plot, train_commands

# Data errors raised by modules that import torch: matched only once their module is loaded, so
# `babylm-train --help` does not start torch.
_LAZY_USER_ERRORS = (
    ("babylm.shards.errors", "CorruptSample"),
    ("babylm.train.data.loader", "CorruptDataError"),
    ("babylm.shards.index_file", "TarIndexError"),
    ("babylm.shards.tar_samples", "TarScanError"),
)

# OSErrors about a path that the user can fix, and what to do.
_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device; free space there or choose another output folder, then rerun",
    errno.EDQUOT: "disk quota exceeded; free space there or choose another output folder, then rerun",
    errno.EROFS: "the file system is read-only; choose a writable output folder",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write to, or fix its permissions",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTDIR: "a path component is a file, not a folder; check the path",
    errno.EISDIR: "is a folder where a file is needed; check the path",
}
# The options that name a command's output, in the order a path is taken from them.
_OUTPUT_PARAMS = ("out", "out_dir", "out_png", "run_dir")


def user_error_types() -> tuple[type, ...]:
    types: list[type] = [TrainError, ShardsError, DatasetNotFound]
    for module, name in _LAZY_USER_ERRORS:
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return tuple(types)


def one_line(e: BaseException) -> str:
    """The message of `e` on one line; an error re-raised from a DataLoader worker carries the
    worker's whole traceback, of which only the last line (the error itself) is kept."""
    message = str(e)
    if "Original Traceback" in message:
        lines = message.rstrip().splitlines()
        tail = []
        for line in reversed(lines):
            if line.startswith(" "):
                break
            tail.insert(0, line)
        message = re.sub(r"^[\w.]+: ", "", " ".join(tail))
    return " ".join(message.split())


class _Group(ErrorGroup):
    os_advice = _OS_ADVICE
    output_params = _OUTPUT_PARAMS

    def user_message(self, e: Exception) -> str | None:
        return one_line(e) if isinstance(e, user_error_types()) else None

    def fail(self, message: str, code: int) -> NoReturn:
        message = " ".join(message.split())
        _close_progress_bars()
        if os.environ.get("TORCHELASTIC_ERROR_FILE"):
            _write_torchrun_error(os.environ["TORCHELASTIC_ERROR_FILE"], message)
        if os.environ.get("RANK", "0").strip() in ("", "0"):  # under torchrun, rank 0 speaks for all
            click.echo(f"Error: {message}", err=True)
        sys.exit(code)


def _close_progress_bars() -> None:
    """End the training bar's line, so the error starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or ()):
        bar.close()


def _write_torchrun_error(path: str, message: str) -> None:
    """The message in the format torchrun reads for its failure summary."""
    try:
        with open(path, "w") as f:
            extra = {"py_callstack": message, "timestamp": str(int(time.time()))}
            json.dump({"message": {"message": message, "extraInfo": extra}}, f)
    except OSError:
        pass  # the summary then says "To enable traceback see ...", nothing worse


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    package_version(), "--version", prog_name="babylm-train", message="%(prog)s %(version)s"
)
def main() -> None:
    """Train Flamingo, GIT, OPT and RoBERTa baselines from babylm shards, with torchrun DDP."""


for _command in (samples, *train_commands, export, plot, evaluate_command):
    main.add_command(_command)
