"""`babylm-prep demo-data`: write the small generated demo dataset."""

from __future__ import annotations

from pathlib import Path

import click

from babylm.prep.sources.demo import DemoDataConfig, run_demo_data


@click.command("demo-data")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write; raw data goes to OUT/datasets/.",
)
@click.option(
    "--cc3m-rows",
    type=click.IntRange(min=1),
    default=DemoDataConfig.cc3m_rows,
    show_default=True,
    help="CC-3M training rows (validation gets a tenth).",
)
@click.option(
    "--ln-images",
    type=click.IntRange(min=1),
    default=DemoDataConfig.ln_images,
    show_default=True,
    help="Localized Narratives annotations (half COCO, half Open Images).",
)
@click.option(
    "--text-lines",
    type=click.IntRange(min=1),
    default=DemoDataConfig.text_lines,
    show_default=True,
    help="Lines per text source file.",
)
@click.option("--seed", default=DemoDataConfig.seed, show_default=True, help="Seed of everything generated.")
def demo_data_command(out: str, cc3m_rows: int, ln_images: int, text_lines: int, seed: int) -> None:
    """Generate a small demo dataset in the raw layouts of CC-3M, Localized Narratives and the
    BabyLM 2024 text corpus: shape scenes whose captions describe them, plus a few broken rows."""
    cfg = DemoDataConfig(Path(out), cc3m_rows, ln_images, text_lines, seed)
    root = run_demo_data(cfg)
    click.echo(f"demo data in {root}  (use it as --root or BABYLM_DATASET_ROOT_DIR)")
