"""The click options the image/feature prep commands share; their defaults come from the configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from babylm.prep.images.process import RESIZE_MODES, ImagePolicy
from babylm.prep.paths import default_out
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import parse_part
from babylm.prep.sharding.records import read_plan
from babylm.shards import Manifest

SHARDING_OPTIONS = (
    "out",
    "samples_per_shard",
    "workers",
    "seed",
    "part",
    "plan_only",
    "overwrite",
    "no_progress",
)
IMAGE_OPTIONS = ("image_size", "resize", "quality", "min_size", "max_pixels")


def _part_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return parse_part(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def _sharding_options(samples_per_shard: int) -> list[Callable]:
    return [
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            help="Output folder (default $BABYLM_ROOT_DIR/shards/NAME).",
        ),
        click.option(
            "--samples-per-shard",
            type=click.IntRange(min=1),
            default=samples_per_shard,
            show_default=True,
            help="Input rows per work unit; each unit becomes one shard (fewer samples when rows are skipped).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=ShardingConfig.workers,
            show_default=True,
            help="Worker processes.",
        ),
        click.option(
            "--seed",
            type=int,
            default=ShardingConfig.seed,
            show_default=True,
            help="Seed of the row shuffle before sharding.",
        ),
        click.option(
            "--part",
            callback=_part_callback,
            help="Process only part I of N (0 <= I < N) of the work units, e.g. "
            "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; join the parts with `babylm-prep merge`.",
        ),
        click.option(
            "--plan-only",
            is_flag=True,
            help="List the input and write the plan into --out, then stop: run it once before a "
            "--part array job, whose parts then read the plan and only their own rows.",
        ),
        click.option(
            "--overwrite", is_flag=True, help="Delete shards of a different earlier run in --out first."
        ),
        click.option(
            "--no-progress",
            is_flag=True,
            help="No progress display (the bar on a terminal, the progress lines in a log file).",
        ),
    ]


def _image_options() -> list[Callable]:
    return [
        click.option(
            "--image-size",
            type=click.IntRange(min=8),
            default=ImagePolicy.size,
            show_default=True,
            help="Output size in pixels.",
        ),
        click.option(
            "--resize",
            type=click.Choice(RESIZE_MODES),
            default=ImagePolicy.resize,
            show_default=True,
            help="exact: size x size bilinear, like the DINO/ViT processor; shorter: keep the aspect, shorter side = size.",
        ),
        click.option(
            "--quality",
            type=click.IntRange(1, 100),
            default=ImagePolicy.quality,
            show_default=True,
            help="JPEG quality of the output.",
        ),
        click.option(
            "--min-size",
            type=click.IntRange(min=1),
            default=ImagePolicy.min_size,
            show_default=True,
            help="Skip images whose shorter side is smaller (too_small).",
        ),
        click.option(
            "--max-pixels",
            type=click.IntRange(min=1),
            default=ImagePolicy.max_pixels,
            show_default=True,
            help="Skip images whose header claims more pixels (too_large; decompression-bomb guard).",
        ),
    ]


def common_options(
    images: bool = True, samples_per_shard: int = ShardingConfig.samples_per_shard
) -> Callable:
    """Decorator adding the options every image/feature prep command takes."""

    def decorate(fn: Callable) -> Callable:
        opts = _sharding_options(samples_per_shard) + (_image_options() if images else [])
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def sharding_from(opts: dict[str, Any], name: str) -> ShardingConfig:
    """The ShardingConfig of the common options; --out defaults to $BABYLM_ROOT_DIR/shards/NAME."""
    return ShardingConfig(
        out=default_out(opts["out"], name),
        samples_per_shard=opts["samples_per_shard"],
        workers=opts["workers"],
        seed=opts["seed"],
        part=opts["part"],
        plan_only=opts["plan_only"],
        overwrite=opts["overwrite"],
        progress=False if opts["no_progress"] else None,
    )


def policy_from(opts: dict[str, Any]) -> ImagePolicy:
    return ImagePolicy(
        size=opts["image_size"],
        resize=opts["resize"],
        quality=opts["quality"],
        min_size=opts["min_size"],
        max_pixels=opts["max_pixels"],
    )


def report(manifest: Manifest | None, name: str, sharding: ShardingConfig) -> None:
    """Print what a sharding run did (a finished dataset, or one finished part)."""
    out: Path = sharding.out
    if sharding.plan_only:
        plan = read_plan(out) or {}
        click.echo(
            f"plan of {name} written to {out}: {plan.get('units', 0):,} work units of "
            f"{sharding.samples_per_shard} rows; now run the parts with --part I/N and the same options"
        )
        return
    if manifest is None:
        part = sharding.part or (0, 1)
        click.echo(
            f"part {part[0]}/{part[1]} of {name} done in {out}; run `babylm-prep merge` when all parts are done"
        )
        return
    click.echo(manifest.summary())
    click.echo(f"\n{out / 'manifest.json'}  (skipped rows: {out / 'skipped.jsonl'})")
