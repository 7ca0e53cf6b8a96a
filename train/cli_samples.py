"""`babylm-train samples`: which samples each rank gets at each step, from the trainer's own loader.

The reading is train/data/samples.py's; this module holds the command's options and output.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from babylm.train.data.spec import LoaderSpec, default_of


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--storage-option")
        out[key] = value
    return out


@click.command("samples")
@click.argument("location", nargs=-1, required=True)
@click.option(
    "--world-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Number of ranks (torchrun processes).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=default_of("workers"),
    show_default=True,
    help="DataLoader workers per rank.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=default_of("batch_size"),
    show_default=True,
    help="Batch size per rank.",
)
@click.option("--epoch", type=click.IntRange(min=0), default=0, show_default=True, help="Epoch to show.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Show at most this many steps (default: to the end).",
)
@click.option(
    "--start-step",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Show the batches after a resume at this step.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=default_of("seed"),
    show_default=True,
    help="Data order seed of the run.",
)
@click.option(
    "--seq-len",
    type=click.IntRange(min=1),
    default=default_of("seq_len"),
    show_default=True,
    help="Chunk length for tokens datasets.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    default=default_of("block_size"),
    show_default=True,
    help="Samples per shuffled block.",
)
@click.option(
    "--shuffle-buffer",
    type=click.IntRange(min=0),
    default=default_of("shuffle_buffer"),
    show_default=True,
    help="Bounded shuffle buffer size.",
)
@click.option(
    "--images/--no-images",
    default=default_of("images"),
    show_default=True,
    help="Decode images (as training does; undecodable samples are then left out). "
    "--no-images shows the keys of the text-only (noimg) runs.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=default_of("image_size"),
    show_default=True,
    help="Square image size of the run.",
)
@click.option(
    "--max-corrupt-fraction",
    type=click.FloatRange(0, 1),
    default=default_of("max_corrupt_fraction"),
    show_default=True,
    help="Fail when more than this fraction of an epoch's samples is undecodable (as training).",
)
@click.option(
    "--cache-dir", default=None, help="Tar index cache (default $BABYLM_CACHE_DIR or ~/.cache/babylm)."
)
@click.option(
    "--storage-option", "storage_option", multiple=True, help="fsspec option KEY=VALUE, e.g. endpoint_url=..."
)
def samples(
    location: tuple[str, ...],
    world_size: int,
    workers: int,
    batch_size: int,
    epoch: int,
    steps: int | None,
    start_step: int,
    seed: int,
    seq_len: int,
    block_size: int,
    shuffle_buffer: int,
    images: bool,
    image_size: int,
    max_corrupt_fraction: float,
    cache_dir: str | None,
    storage_option: tuple[str, ...],
) -> None:
    """Print one JSON line per step and rank: {"epoch", "step", "rank", "keys"}.

    LOCATION is one or more dataset folders or URLs of one kind (concatenated, as in training).
    Keys are sample keys, or chunk ids for tokens datasets. For a paired run, run it once for
    the caption data and once for the text data.
    """
    from babylm.train.data.samples import rank_loaders, sample_lines, seek, summary

    spec = LoaderSpec(
        batch_size=batch_size,
        workers=workers,
        seed=seed,
        seq_len=seq_len,
        block_size=block_size,
        shuffle_buffer=shuffle_buffer,
        images=images,
        image_size=image_size,
        max_corrupt_fraction=max_corrupt_fraction,
        cache_dir=cache_dir,
        storage_options=_options(storage_option),
    )
    loaders = rank_loaders(list(location), spec, world_size)
    total = loaders[0].steps_per_epoch
    if start_step > total:
        raise click.BadParameter(f"epoch has {total} steps", param_hint="--start-step")
    seek(loaders, epoch, start_step)
    click.echo(summary(loaders[0]), err=True)
    end = total if steps is None else min(total, start_step + steps)
    for line in sample_lines(loaders, epoch, start_step, end):
        sys.stdout.write(json.dumps(line) + "\n")
        if line["rank"] == world_size - 1:
            sys.stdout.flush()
