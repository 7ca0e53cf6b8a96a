"""How the `babylm-prep` and `babylm-train` CLIs report errors: what the two groups share.

A mistake the user can fix (each CLI says which errors those are) is one `Error:` line on stderr
and exit status 2; an OSError about a path the user can fix (a full or read-only disk, a bad path)
is one line with what to do; anything else is a bug and keeps its traceback. An OSError without
a file name (a write that ran out of space) is given the command's output option as its name.
This is CLI code (it imports click); the library modules of both packages never import it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

import click

# click >= 8.2 raises this for a group called without a command; it carries the help, not an error.
_NO_ARGS: tuple[type, ...] = tuple(
    t for t in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if t is not None
)


def os_error_message(e: OSError, advice: dict[int, str]) -> str | None:
    """One line for an OSError whose errno `advice` knows and that names a file, else None."""
    text = advice.get(e.errno or 0)
    if text is None or not e.filename:
        return None
    return f"{e.filename}: {text}"


def name_output(callback: Callable, advice: dict[int, str], output_params: tuple[str, ...]) -> Callable:
    """Wrap a command's callback so an OSError without a file name whose errno `advice` knows
    names the command's output (the first of `output_params` given)."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except OSError as e:
            if not e.filename and e.errno in advice:
                e.filename = next((kwargs[p] for p in output_params if kwargs.get(p)), None)
            raise

    return wrapper


class ErrorGroup(click.Group):
    """A click group that reports errors as the module docstring says. A CLI names its
    `os_advice` (errno: what to do) and `output_params`, and says in `user_message` which
    errors are the user's; `fail` prints the line and exits."""

    os_advice: ClassVar[dict[int, str]] = {}
    output_params: ClassVar[tuple[str, ...]] = ()

    def user_message(self, e: Exception) -> str | None:
        """The line for an error the user can fix, None for any other."""
        return None

    def fail(self, message: str, code: int) -> NoReturn:
        click.echo(f"Error: {' '.join(message.split())}", err=True)
        sys.exit(code)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.callback is not None:
            cmd.callback = name_output(cmd.callback, self.os_advice, self.output_params)
        super().add_command(cmd, name)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.UsageError as e:
            if isinstance(e, _NO_ARGS) and e.ctx is not None:  # the group alone: its help, as click
                click.echo(e.ctx.get_help(), err=True)
                sys.exit(2)
            hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            self.fail(e.format_message() + hint, 2)
        except click.ClickException as e:
            self.fail(e.format_message(), e.exit_code)
        except Exception as e:
            message = self.user_message(e)
            if message is None and isinstance(e, OSError):
                message = os_error_message(e, self.os_advice)
            if message is None:
                raise
            self.fail(message, 2)
        sys.exit(code if isinstance(code, int) else 0)
