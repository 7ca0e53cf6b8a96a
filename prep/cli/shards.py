"""`babylm-prep verify` and `babylm-prep inspect`: look at a dataset from its manifest."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import click
from PIL import Image

from babylm.prep.cli.group import UserError
from babylm.shards import Dataset, iter_tar_samples, open_dataset, read_npy, verify_dataset
from babylm.shards.errors import ShardsError
from babylm.shards.images import open_image
from babylm.shards.progress import progress
from babylm.shards.sheet import render_contact_sheet


def _open(location: str) -> Dataset:
    try:
        return open_dataset(location)
    except (FileNotFoundError, ValueError, ShardsError) as e:
        raise UserError(str(e)) from e


@click.command("verify")
@click.argument("location")
@click.option("--deep", is_flag=True, help="Also decode every image, array and token row (slower).")
def verify_command(location: str, deep: bool) -> None:
    """Recompute sha256 and counts of every shard of LOCATION (folder, file://, http(s)://, s3://).

    Exits non-zero and names each bad shard: missing, wrong size, checksum mismatch,
    wrong counts or (with --deep) an undecodable member.
    """
    ds = _open(location)
    bar = progress(len(ds.manifest.shards), "verify", "shard")
    problems = verify_dataset(ds, deep=deep, on_shard=lambda _e: bar.update())
    bar.close()
    click.echo(ds.manifest.summary())
    if problems:
        bad = sorted({p.path for p in problems})
        click.echo(f"\nFAILED: {len(bad)} of {len(ds.manifest.shards)} shards are bad:", err=True)
        for p in problems:
            click.echo(f"  {p}", err=True)
        sys.exit(1)
    click.echo(f"\nOK: {len(ds.manifest.shards)} shards verified" + (" (deep)" if deep else ""))


def _sheet_item(sample: dict, source: str) -> tuple[Image.Image | None, str]:
    """One contact-sheet cell; an image that cannot be shown (a bomb, damaged bytes) is an
    empty cell whose caption says why."""
    caption = sample.get("txt", b"").decode("utf-8", "replace")
    try:
        if "jpg" in sample:
            with open_image(sample["jpg"]) as im:
                return im.convert("RGB"), caption
        if "npy" in sample:
            return None, f"[features {read_npy(sample['npy']).shape}] {caption}"
    except Exception as e:  # noqa: BLE001 - any decoder failure: shown, not a crash
        return None, f"[{source} {sample.get('__key__')}: {type(e).__name__}: {e}] {caption}"
    return None, caption


def _first_samples(ds: Dataset, count: int) -> list[tuple[Image.Image | None, str]]:
    out: list[tuple[Image.Image | None, str]] = []
    for entry in ds.manifest.shards:
        try:
            with ds.open_shard(entry) as f:
                for sample in iter_tar_samples(f, entry.path):
                    out.append(_sheet_item(sample, entry.path))
                    if len(out) >= count:
                        return out
        except ShardsError as e:  # names the file already
            raise UserError(f"cannot read a shard: {e}") from e
        except (OSError, tarfile.TarError) as e:
            raise UserError(f"{ds.shard_url(entry)}: cannot read the shard: {e}") from e
    return out


def _image_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --sheet path whose extension Pillow can write (checked before any work)."""
    if value is None:
        return None
    Image.init()
    ext = Path(value).suffix.lower()
    if ext not in Image.registered_extensions() or Image.registered_extensions()[ext] not in Image.SAVE:
        raise click.BadParameter(f"{value}: not an image file name Pillow can write; use .png or .jpg")
    return value


@click.command("inspect")
@click.argument("location")
@click.option(
    "--sheet",
    type=click.Path(dir_okay=False),
    callback=_image_path,
    help="Write a contact sheet of the first images (PNG; the extension picks the format).",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images on the contact sheet."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole manifest as JSON instead of a summary."
)
def inspect_command(location: str, sheet: str | None, count: int, as_json: bool) -> None:
    """Print the summary of the dataset at LOCATION: shards, samples, tokens, bytes,
    skips by reason and prep parameters; optionally render a contact sheet."""
    ds = _open(location)
    click.echo(json.dumps(ds.manifest.to_dict(), indent=2) if as_json else ds.manifest.summary())
    if sheet:
        if ds.kind == "tokens":
            raise UserError("--sheet needs an image_text or features dataset")
        items = _first_samples(ds, count)
        render_contact_sheet(items).save(sheet)
        click.echo(f"contact sheet of {len(items)} samples: {Path(sheet).resolve()}")
