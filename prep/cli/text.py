"""`babylm-prep tokenizer` and `babylm-prep text`: learn the tokenizer, tokenize a corpus into shards."""

from __future__ import annotations

import time
from pathlib import Path

import click

from babylm.prep.paths import babylm_root, dataset_root, default_out
from babylm.prep.text.corpus import BAD_UTF8_POLICIES, CORPORA, SPLITS
from babylm.prep.text.run import TextConfig, default_workers, run_text
from babylm.prep.text.tokenizer import SPECIALS, TokenizerConfig, run_tokenizer


@click.command("tokenizer")
@click.option(
    "--corpus",
    type=click.Choice(sorted(CORPORA)),
    required=True,
    help="Train split to learn from: vis2024 (babylm_vis_text_2024), strict_10M / strict_100M "
    "(babylm_10M / babylm_100M), strict_50M (first half of each 100M file).",
)
@click.option("--root", type=click.Path(file_okay=False), help="Raw dataset folder (default: see above).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder to save the tokenizer in (default: $BABYLM_ROOT_DIR/tokenizers/tokenizer-CORPUS-VOCAB).",
)
@click.option(
    "--vocab-size",
    type=click.IntRange(min=len(SPECIALS) + 1),
    default=TokenizerConfig.vocab_size,
    show_default=True,
    help="Learned vocabulary size including the 4 specials; <image> and <PERSON> come after it.",
)
def tokenizer_command(corpus: str, root: str | None, out: str | None, vocab_size: int) -> None:
    """Train the original's Unigram tokenizer on the train split of a corpus and save a folder
    that AutoTokenizer.from_pretrained loads (pad, eos, unk, mask, <image> set)."""
    raw = dataset_root(root)
    out_dir = Path(out) if out else babylm_root() / "tokenizers" / f"tokenizer-{corpus}-{vocab_size}"
    cfg = TokenizerConfig(corpus=corpus, root=raw, out=out_dir, vocab_size=vocab_size)
    loaded, learned = run_tokenizer(cfg, log=lambda line: click.echo(line, err=True))
    ids = loaded.special_ids()
    click.echo(
        f"saved {out_dir}: {loaded.vocab_size:,} tokens ({learned:,} learned), "
        + ", ".join(f"{k}={v}" for k, v in ids.items())
    )


@click.command("text")
@click.option(
    "--corpus",
    type=click.Choice(sorted(CORPORA)),
    required=True,
    help="vis2024: babylm_vis_text_2024 (dev/test: babylm_{dev,test}_2024); strict_10M / strict_100M: "
    "babylm_10M / babylm_100M (dev/test: babylm_dev, babylm_test); strict_50M: the first half of the "
    "lines of each babylm_100M file (of each dev/test file too, as the original did).",
)
@click.option("--root", type=click.Path(file_okay=False), help="Raw dataset folder (default: see above).")
@click.option(
    "--tokenizer",
    "tokenizer_spec",
    required=True,
    help="A folder saved by `babylm-prep tokenizer` (or any fast tokenizer folder), a tokenizer.json, "
    "or a Hugging Face name (only if the hub is reachable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output folder (default: $BABYLM_ROOT_DIR/shards/text_CORPUS_SPLIT). Complete shards from an "
    "interrupted run there are kept and the run goes on after them.",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default=TextConfig.split,
    show_default=True,
    help="Which files to read.",
)
@click.option(
    "--strip-newlines",
    is_flag=True,
    help="Tokenize each line without its trailing newline. Default: with it, as the original did "
    "(the newline becomes a lone '▁' token before '</s>').",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=TextConfig.workers,
    show_default="all usable cores",
    help="Tokenizer processes (cores) to use. The output does not depend on it.",
)
@click.option(
    "--on-bad-utf8",
    type=click.Choice(BAD_UTF8_POLICIES),
    default=TextConfig.on_bad_utf8,
    show_default=True,
    help="Lines with bytes that are not UTF-8 (reported with file and line, counted in the manifest): "
    "replace the bad bytes with U+FFFD, skip the line, or stop with an error.",
)
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    default=TextConfig.shard_rows,
    show_default=True,
    help="Lines (rows) per shard.",
)
@click.option(
    "--batch-lines",
    type=click.IntRange(min=1),
    default=TextConfig.batch_lines,
    show_default=True,
    help="Lines per tokenizer call. Speed only; the output does not depend on it.",
)
@click.option(
    "--fast-path/--no-fast-path",
    default=TextConfig.fast_path,
    show_default=True,
    help="With the recipe tokenizer, tokenize plain-ASCII lines by an exact shortcut (checked against "
    "the Rust tokenizer at start-up and on a sample of lines) instead of the full Rust pipeline. "
    "Speed only; the output is the same.",
)
def text_command(
    corpus: str,
    root: str | None,
    tokenizer_spec: str,
    out: str | None,
    split: str,
    strip_newlines: bool,
    workers: int | None,
    on_bad_utf8: str,
    shard_rows: int,
    batch_lines: int,
    fast_path: bool,
) -> None:
    """Tokenize the BabyLM text of a track into Arrow token shards (one row per line) with a
    manifest of per-file line and token counts, the tokenizer's fingerprint and special ids.

    Blank lines become empty examples, lines keep their newline (see --strip-newlines), CRLF and a
    UTF-8 BOM are handled. Rerun the same command after an interruption to finish the job.
    """
    cfg = TextConfig(
        corpus=corpus,
        root=dataset_root(root),
        tokenizer=tokenizer_spec,
        out=default_out(out, f"text_{corpus}_{split}"),
        split=split,
        strip_newlines=strip_newlines,
        workers=workers or default_workers(),
        on_bad_utf8=on_bad_utf8,
        shard_rows=shard_rows,
        batch_lines=batch_lines,
        fast_path=fast_path,
    )
    started = time.monotonic()
    manifest = run_text(cfg)
    elapsed = time.monotonic() - started
    bad = manifest.params["bad_utf8_lines"]
    click.echo(
        f"{cfg.out}: {len(manifest.shards)} shards, {manifest.num_samples:,} lines, {manifest.num_tokens:,} "
        f"tokens in {elapsed:.1f}s ({manifest.num_tokens / max(elapsed, 1e-9) / 1e6:.2f}M tokens/s, "
        f"{cfg.workers} workers)" + (f"; {bad:,} lines with bad UTF-8 ({on_bad_utf8})" if bad else "")
    )
