"""How `babylm-prep` reports errors: the one place that decides.

A mistake the user can fix (a `PrepError` from the library, a missing file, a dataset without a
manifest or with one that does not validate, a click usage error) is one `Error:` line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from babylm.prep.errors import PrepError
from babylm.shards import DatasetNotFound, ShardsError

# click >= 8.2 raises this for a group called without a command; it carries the help, not an error.
_NO_ARGS: tuple[type, ...] = tuple(
    t for t in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if t is not None
)


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
# The options that name a command's output, in the order a path is taken from them.
_OUTPUT_PARAMS = ("out", "sheet")


def os_error_message(e: OSError) -> str | None:
    """One line for an OSError the user can fix (full or read-only disk, a bad path), else None."""
    advice = _OS_ADVICE.get(e.errno or 0)
    if advice is None or not e.filename:
        return None
    return f"{e.filename}: {advice}"


def name_output(callback: Callable) -> Callable:
    """Wrap a command's callback so an OSError without a file name (a write that ran out of
    space) names the command's output."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except OSError as e:
            if not e.filename and e.errno in _OS_ADVICE:
                e.filename = next((kwargs[p] for p in _OUTPUT_PARAMS if kwargs.get(p)), None)
            raise

    return wrapper


class UserError(click.ClickException):
    """A CLI-level mistake (exit status 2, one line)."""

    exit_code = 2


class PrepGroup(click.Group):
    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.callback is not None:
            cmd.callback = name_output(cmd.callback)
        super().add_command(cmd, name)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.UsageError as e:
            if isinstance(e, _NO_ARGS) and e.ctx is not None:  # `babylm-prep` alone: the help, as click
                click.echo(e.ctx.get_help(), err=True)
                sys.exit(2)
            hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            _fail(e.format_message() + hint, 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except (PrepError, ShardsError, DatasetNotFound, FileNotFoundError) as e:
            _fail(str(e), 2)
        except OSError as e:
            message = os_error_message(e)
            if message is None:
                raise
            _fail(message, 2)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)
