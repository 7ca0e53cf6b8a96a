"""How `babylm-prep` reports errors: the one place that decides.

A mistake the user can fix (a `PrepError` from the library, a missing file, a dataset without a
manifest or with one that does not validate, a click usage error) is one `Error:` line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from babylm.prep.errors import PrepError
from babylm.shards import DatasetNotFound, ShardsError

# click >= 8.2 raises this for a group called without a command; it carries the help, not an error.
_NO_ARGS: tuple[type, ...] = tuple(
    t for t in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if t is not None
)


class UserError(click.ClickException):
    """A CLI-level mistake (exit status 2, one line)."""

    exit_code = 2


class PrepGroup(click.Group):
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
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)
