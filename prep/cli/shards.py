"""`babylm-prep verify` and `babylm-prep inspect`: look at a dataset from its manifest."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import click
from PIL import Image
from tqdm import tqdm

from babylm.prep.cli.group import UserError
from babylm.shards import Dataset, iter_tar_samples, open_dataset, read_npy, verify_dataset
from babylm.shards.sheet import render_contact_sheet


def _open(location: str) -> Dataset:
    try:
        return open_dataset(location)
    except (FileNotFoundError, ValueError) as e:
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
    bar = tqdm(total=len(ds.manifest.shards), unit="shard", desc="verify", disable=None)
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


def _first_samples(ds: Dataset, count: int) -> list[tuple[Image.Image | None, str]]:
    out: list[tuple[Image.Image | None, str]] = []
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            for sample in iter_tar_samples(f, entry.path):
                caption = sample.get("txt", b"").decode("utf-8", "replace")
                image = None
                if "jpg" in sample:
                    image = Image.open(io.BytesIO(sample["jpg"])).convert("RGB")
                elif "npy" in sample:
                    caption = f"[features {read_npy(sample['npy']).shape}] {caption}"
                out.append((image, caption))
                if len(out) >= count:
                    return out
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
