"""`babylm-prep cc3m`, `localnarr`, `features`, `merge` and `add-words`: the image/feature sharding commands.

Each command turns its options into the source's frozen config and calls its `run_*` function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from babylm.prep.cli.options import common_options, policy_from, report, sharding_from
from babylm.prep.paths import dataset_root
from babylm.prep.sharding.merge import merge_parts
from babylm.prep.sources import cc3m, features, localnarr


@click.command("cc3m")
@click.option(
    "--root", type=click.Path(file_okay=False), help="Raw dataset root (default $BABYLM_DATASET_ROOT_DIR)."
)
@click.option(
    "--src",
    type=click.Path(file_okay=False),
    help="The CC-3M folder itself (default ROOT/Conceptual-3M); with --layout img2dataset, its output folder.",
)
@click.option(
    "--split",
    type=click.Choice(list(cc3m.SPLIT_FILES)),
    default=cc3m.Cc3mConfig.split,
    show_default=True,
    help="Which split.",
)
@click.option(
    "--layout",
    type=click.Choice(cc3m.LAYOUTS),
    default=cc3m.Cc3mConfig.layout,
    show_default=True,
    help="downloader: caption TSV + download report + files without extension; "
    "img2dataset: {shard:05d}.tar with {key}.jpg/.txt/.json (+ .parquet, _stats.json).",
)
@click.option(
    "--jpeg-only", is_flag=True, help="Keep only rows whose report MIME type says JPEG (the original's rule)."
)
@common_options()
def cc3m_command(
    root: str | None, src: str | None, split: str, layout: str, jpeg_only: bool, **opts: Any
) -> None:
    """Shard CC-3M image-caption pairs: resized JPEG + cleaned caption + metadata per sample."""
    folder = Path(src) if src else dataset_root(root) / "Conceptual-3M"
    name = f"cc3m-{split}"
    cfg = cc3m.Cc3mConfig(
        src=folder,
        sharding=sharding_from(opts, name),
        split=split,
        layout=layout,
        jpeg_only=jpeg_only,
        image=policy_from(opts),
    )
    report(cc3m.run_cc3m(cfg), name, cfg.sharding)


@click.command("localnarr")
@click.option(
    "--root", type=click.Path(file_okay=False), help="Raw dataset root (default $BABYLM_DATASET_ROOT_DIR)."
)
@click.option(
    "--src",
    type=click.Path(file_okay=False),
    help="The Localized Narratives folder (default ROOT/LocalNarratives/LocalNarratives).",
)
@click.option(
    "--layout",
    type=click.Choice(localnarr.LAYOUTS),
    default=localnarr.LocalNarrConfig.layout,
    show_default=True,
    help="anno: all_anno/<prefix>_<uid>.json, one annotation per file; jsonl: the official release files.",
)
@click.option(
    "--jsonl",
    "jsonl_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A JSONL annotation file (repeatable; default: every *.jsonl in --src).",
)
@click.option(
    "--images",
    type=click.Path(file_okay=False),
    help="Folder holding MSCOCO/, OpenImages/, OpenImages_test/ for --layout jsonl (default --src).",
)
@common_options()
def localnarr_command(
    root: str | None,
    src: str | None,
    layout: str,
    jsonl_files: tuple[str, ...],
    images: str | None,
    **opts: Any,
) -> None:
    """Shard Localized Narratives image-caption pairs: resized JPEG + cleaned narrative + metadata."""
    folder = Path(src) if src else None
    if folder is None and (layout == "anno" or not jsonl_files or not images):
        folder = dataset_root(root) / "LocalNarratives" / "LocalNarratives"
    cfg = localnarr.LocalNarrConfig(
        src=folder,
        sharding=sharding_from(opts, "localnarr"),
        layout=layout,
        jsonl_files=tuple(Path(p) for p in jsonl_files),
        images=Path(images) if images else None,
        image=policy_from(opts),
    )
    report(localnarr.run_localnarr(cfg), "localnarr", cfg.sharding)


@click.command("features")
@click.option(
    "--captions",
    "captions_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="JSON list of captions, one per feature row (e.g. cc_3M_captions.json).",
)
@click.option(
    "--states",
    "states_files",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="An (N, D) .npy array of features (repeatable; concatenated in the order given).",
)
@click.option(
    "--clean",
    "cleaning",
    type=click.Choice(["auto", *features.CLEAN_RULES]),
    default=features.FeaturesConfig.cleaning,
    show_default=True,
    help="Caption cleaning rule; auto picks cc3m or ln from the captions file name.",
)
@click.option("--name", help="Dataset name (default features-<captions file stem>).")
@common_options(images=False, samples_per_shard=features.SAMPLES_PER_SHARD)
def features_command(
    captions_file: str, states_files: tuple[str, ...], cleaning: str, name: str | None, **opts: Any
) -> None:
    """Shard precomputed image features with their captions (kind: features, one .npy per sample)."""
    name = name or features.default_name(Path(captions_file))
    cfg = features.FeaturesConfig(
        captions=Path(captions_file),
        states=tuple(Path(p) for p in states_files),
        sharding=sharding_from(opts, name),
        cleaning=cleaning,
        name=name,
    )
    report(features.run_features(cfg), name, cfg.sharding)


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


@click.command("add-words")
@click.argument("location", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New dataset folder to write.")
def add_words_command(location: str, out: str) -> None:
    """Copy a caption dataset (image_text or features) written before prep counted words into OUT,
    adding each caption's word count (len(caption.split()) of its .txt member) to its .json and the
    totals to the manifest. Token datasets: rerun `babylm-prep text` instead."""
    from babylm.prep.sharding.add_words import add_words

    manifest = add_words(Path(location), Path(out))
    click.echo(manifest.summary())
    click.echo(f"\n{Path(out) / 'manifest.json'}")
