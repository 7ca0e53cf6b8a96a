"""How `babylm-prep` reports errors: the one place that decides (the group itself is
`babylm.shards.cli_errors.ErrorGroup`, which `babylm-train` shares).

A mistake the user can fix (a `PrepError` from the library, a missing file, a dataset without a
manifest or with one that does not validate, a click usage error) is one `Error:` line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

import click

from babylm.prep.errors import PrepError
from babylm.shards import DatasetNotFound, ShardsError
from babylm.shards.cli_errors import ErrorGroup

# OSErrors about a path that the user can fix, and what to do.
_OS_ADVICE = {
    errno.ENOSPC: "no space left on the device; free space there or choose another output (--out), then "
    "rerun (finished work units are kept)",
    errno.EDQUOT: "disk quota exceeded; free space there or choose another output (--out), then rerun",
    errno.EROFS: "the file system is read-only; choose a writable output (--out)",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write to, or fix its permissions",
    errno.ENOTDIR: "a path component is a file, not a folder; check the path",
    errno.EISDIR: "is a folder where a file is needed; check the path",
}


class UserError(click.ClickException):
    """A CLI-level mistake (exit status 2, one line)."""

    exit_code = 2


class PrepGroup(ErrorGroup):
    os_advice = _OS_ADVICE
    # The options that name a command's output, in the order a path is taken from them.
    output_params = ("out", "sheet")

    def user_message(self, e: Exception) -> str | None:
        if isinstance(e, (PrepError, ShardsError, DatasetNotFound, FileNotFoundError)):
            return str(e)
        return None
