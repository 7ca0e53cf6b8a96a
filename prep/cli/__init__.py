"""`babylm-prep`: turn raw BabyLM data into shards, and check shards.

The only prep package that imports click: each command builds its job's frozen config from the
options and calls the library (`sources`, `text`, `sharding`); `group` turns user errors into one
line and exit status 2.
"""

from __future__ import annotations

import click

from babylm.prep.cli.demo import demo_data_command
from babylm.prep.cli.group import PrepGroup
from babylm.prep.cli.images import (
    add_words_command,
    cc3m_command,
    features_command,
    localnarr_command,
    merge_command,
)
from babylm.prep.cli.shards import inspect_command, verify_command
from babylm.prep.cli.text import text_command, tokenizer_command
from babylm.shards.version import package_version


@click.group(
    cls=PrepGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_version(), "--version", prog_name="babylm-prep", message="%(prog)s %(version)s")
def main() -> None:
    """Turn raw CC-3M, Localized Narratives and BabyLM text into shards (tar / Arrow + manifest.json).

    Raw data is found under --root, else $BABYLM_DATASET_ROOT_DIR, else $BABYLM_ROOT_DIR/datasets;
    shards go to --out, else $BABYLM_ROOT_DIR/shards/NAME.
    """


for _command in (
    verify_command,
    inspect_command,
    demo_data_command,
    cc3m_command,
    localnarr_command,
    features_command,
    merge_command,
    add_words_command,
    tokenizer_command,
    text_command,
):
    main.add_command(_command)
