"""`babylm-prep`: turn raw BabyLM data into shards, and check shards."""

from __future__ import annotations

import click

from babylm.prep.inspect import inspect_command, verify_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """Turn raw CC-3M, Localized Narratives and BabyLM text into shards (tar / Arrow + manifest.json).

    Raw data is found under --root, else $BABYLM_DATASET_ROOT_DIR, else $BABYLM_ROOT_DIR/datasets;
    shards go to --out, else $BABYLM_ROOT_DIR/shards/NAME.
    """


main.add_command(verify_command)
main.add_command(inspect_command)
# Commands of the other prep modules are registered below, one line each.
from babylm.prep.demo_data import demo_data_command  # noqa: E402

main.add_command(demo_data_command)
from babylm.prep.cc3m import cc3m_command  # noqa: E402
from babylm.prep.features import features_command  # noqa: E402
from babylm.prep.localnarr import localnarr_command  # noqa: E402
from babylm.prep.merge import merge_command  # noqa: E402

main.add_command(cc3m_command)
main.add_command(localnarr_command)
main.add_command(features_command)
main.add_command(merge_command)
from babylm.prep.text import text_command  # noqa: E402
from babylm.prep.tokenizer import tokenizer_command  # noqa: E402

main.add_command(tokenizer_command)
main.add_command(text_command)
