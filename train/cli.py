"""`babylm-train`: train the BabyLM baselines from shards, resume, export."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """Train Flamingo, GIT, OPT and RoBERTa baselines from babylm shards, with torchrun DDP."""


# Commands of the train modules are registered below, one line each.
from babylm.train.data.samples import samples  # noqa: E402

main.add_command(samples)
from babylm.train.train_cli import export, plot, train_commands  # noqa: E402

for _command in (*train_commands, export, plot):
    main.add_command(_command)
from babylm.train.evaluate import evaluate_command  # noqa: E402

main.add_command(evaluate_command)
