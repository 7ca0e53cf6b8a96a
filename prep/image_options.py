"""What the image-caption prep commands share: their common CLI options and sample assembly."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

import click

from babylm.prep.image_job import Job, Row, RowSkip, parse_part, run_job
from babylm.prep.images import RESIZE_MODES, ImagePolicy, process_image
from babylm.prep.paths import default_out

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_key(text: Any) -> str:
    """A sample-key fragment: anything but letters, digits, `_` and `-` becomes `_`."""
    return _UNSAFE.sub("_", str(text))


def _part_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return parse_part(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def resolve_out(opts: dict[str, Any], name: str) -> None:
    """Fix --out (default $BABYLM_ROOT_DIR/shards/NAME) before the slow listing starts."""
    opts["out"] = default_out(opts.get("out"), name)


def common_options(images: bool = True, samples_per_shard: int = 1000) -> Callable:
    """Decorator adding the options every image/feature prep command takes."""

    def decorate(fn: Callable) -> Callable:
        opts = [
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
                default=1,
                show_default=True,
                help="Worker processes.",
            ),
            click.option(
                "--seed",
                type=int,
                default=0,
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
                "--overwrite", is_flag=True, help="Delete shards of a different earlier run in --out first."
            ),
            click.option("--no-progress", is_flag=True, help="No progress bar."),
        ]
        if images:
            opts += [
                click.option(
                    "--image-size",
                    type=click.IntRange(min=8),
                    default=224,
                    show_default=True,
                    help="Output size in pixels.",
                ),
                click.option(
                    "--resize",
                    type=click.Choice(RESIZE_MODES),
                    default="exact",
                    show_default=True,
                    help="exact: size x size bilinear, like the DINO/ViT processor; shorter: keep the aspect, shorter side = size.",
                ),
                click.option(
                    "--quality",
                    type=click.IntRange(1, 100),
                    default=95,
                    show_default=True,
                    help="JPEG quality of the output.",
                ),
                click.option(
                    "--min-size",
                    type=click.IntRange(min=1),
                    default=10,
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
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def policy_from(opts: dict[str, Any]) -> ImagePolicy:
    return ImagePolicy(
        size=opts["image_size"],
        resize=opts["resize"],
        quality=opts["quality"],
        min_size=opts["min_size"],
        max_pixels=opts["max_pixels"],
    )


def run_command(
    *, kind: str, name: str, rows: list[Row], processor: Any, params: dict[str, Any], opts: dict[str, Any]
) -> None:
    """Build the Job from the common options, run it, and print what happened."""
    part = opts.get("part")
    out = default_out(opts.get("out"), name)
    job = Job(
        kind=kind,
        name=name,
        out_dir=out,
        rows=rows,
        processor=processor,
        params=params,
        seed=opts["seed"],
        samples_per_shard=opts["samples_per_shard"],
        workers=opts["workers"],
        part=part,
        overwrite=opts["overwrite"],
        progress=False if opts["no_progress"] else None,
    )
    manifest = run_job(job)
    if manifest is None:
        click.echo(
            f"part {part[0]}/{part[1]} of {name} done in {out}; run `babylm-prep merge` when all parts are done"
        )  # type: ignore[index]
        return
    click.echo(manifest.summary())
    click.echo(f"\n{out / 'manifest.json'}  (skipped rows: {out / 'skipped.jsonl'})")


def read_payload(path: str | os.PathLike) -> bytes:
    """The bytes of an image file; a missing or unreadable file is a skip, not a crash."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise RowSkip("missing_file", str(path)) from e
    except IsADirectoryError as e:
        raise RowSkip("missing_file", f"{path} is a directory") from e
    except OSError as e:
        raise RowSkip("read_error", f"{path}: {e.strerror or e}") from e


def read_range(path: str | os.PathLike, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of a file (a member of an uncompressed tar)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        raise RowSkip("read_error", f"{path}: {e.strerror or e}") from e
    if len(data) != size:
        raise RowSkip("read_error", f"{path}: {size} bytes at offset {offset} are past the end of the file")
    return data


def image_members(data: bytes, caption: str, info: dict[str, Any], policy: ImagePolicy) -> dict[str, Any]:
    """The `jpg`/`txt`/`json` members of one sample, or RowSkip."""
    if not caption:
        raise RowSkip("empty_caption", "caption is empty after cleaning")
    img = process_image(data, policy)
    meta = dict(info, width=img.width, height=img.height, format=img.format)
    if img.orientation != 1:
        meta["exif_orientation"] = img.orientation
    return {"jpg": img.jpeg, "txt": caption, "json": meta}


def wrap_errors(fn: Callable) -> Callable:
    """Turn input errors (InputError, a missing file; the message names the file) into CLI errors."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InputError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from e

    return inner


class InputError(ValueError):
    """Raw input that cannot be used as a whole (the message names the file and line)."""
