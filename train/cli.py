"""`babylm-train`: train the BabyLM baselines from shards, resume, export.

The only place that decides how errors look: a mistake the user can fix (a `TrainError` from the
library, a dataset without a manifest or with one that does not validate, a click usage
error) is one line on stderr and exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from babylm.shards import DatasetNotFound, ShardsError
from babylm.shards.version import package_version
from babylm.train.errors import TrainError

# click >= 8.2 raises this for a group called without a command; it carries the help, not an error.
_NO_ARGS: tuple[type, ...] = tuple(
    t for t in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if t is not None
)


class _Group(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.UsageError as e:
            if isinstance(e, _NO_ARGS) and e.ctx is not None:  # `babylm-train` alone: the help
                click.echo(e.ctx.get_help(), err=True)
                sys.exit(2)
            hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            _fail(e.format_message() + hint, 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except (TrainError, ShardsError, DatasetNotFound) as e:
            _fail(str(e), 2)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    package_version(), "--version", prog_name="babylm-train", message="%(prog)s %(version)s"
)
def main() -> None:
    """Train Flamingo, GIT, OPT and RoBERTa baselines from babylm shards, with torchrun DDP."""


# Commands of the train modules are registered below, one line each.
from babylm.train.data.samples import samples  # noqa: E402

main.add_command(samples)
from babylm.train.train_cli import evaluate_command, export, plot, train_commands  # noqa: E402

for _command in (*train_commands, export, plot, evaluate_command):
    main.add_command(_command)
