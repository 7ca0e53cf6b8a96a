"""`babylm-prep merge`: join the `--part I/N` folders of one image/feature prep run."""

from __future__ import annotations

from pathlib import Path

import click

from babylm.prep.image_manifest import merge_parts


@click.command("merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Merged dataset folder (required with several FOLDERS; shards are hard-linked, else copied).",
)
def merge_command(folders: tuple[str, ...], out: str | None) -> None:
    """Join the parts of a `--part I/N` run into one dataset with one manifest.

    Parts written into one folder: `babylm-prep merge DIR`. Parts written into separate folders:
    `babylm-prep merge DIR0 DIR1 ... --out DIR`; shards keep the names a single run gives them,
    so the merged folder equals an uninterrupted single run (same shards, same manifest.json).
    """
    paths = [Path(f) for f in folders]
    if out is None:
        if len(paths) > 1:
            raise click.UsageError("several part folders need --out for the merged dataset")
        target = paths[0]
    else:
        target = Path(out)
    manifest = merge_parts(paths, target)
    click.echo(manifest.summary())
    click.echo(f"\n{target / 'manifest.json'}")
