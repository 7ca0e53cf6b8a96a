"""Builders and helpers of the trainer tests (one process and torchrun): learnable shards, the
command line of a run, its metrics and final weights."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from babylm.shards import Manifest, RollingWriter, write_manifest
from babylm.train.cli import main
from tests.conftest import CORPUS

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 20)}
# Small everything: the suite runs on two shared CPU cores.
COMMON = ["--size", "tiny", "--global-batch-size", "8", "--seq-len", "16", "--log-every", "1"]
COMMON += ["--warmup-steps", "2", "--lr", "1e-3", "--workers", "0"]


def write_trainer_data(root: Path, tokenizer_dir: Path, images: int = 48, lines: int = 160) -> dict[str, str]:
    """Learnable shards: solid-colour 32-pixel images captioned "a <colour> square", the test
    corpus repeated as text, a 768-d features dataset, and tiny random ViTs (32 px, patches of 8)."""
    from transformers import AutoTokenizer

    from babylm.train.models import make_tiny_vit

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    names = list(COLORS)
    with RollingWriter(root / "images", "tar", max_samples=16) as w:
        for i in range(images):
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), COLORS[names[i % 4]]).save(buf, "JPEG")
            w.write(
                {
                    "__key__": f"s{i:05d}",
                    "jpg": buf.getvalue(),
                    "txt": f"a {names[i % 4]} square",
                    "json": {"words": 3},
                }
            )
    write_manifest(root / "images", Manifest(kind="image_text", shards=w.entries, name="images"))
    with RollingWriter(root / "images2", "tar", max_samples=16) as w:  # a second caption dataset
        for i in range(16):
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), COLORS[names[i % 4]]).save(buf, "JPEG")
            w.write(
                {
                    "__key__": f"t{i:05d}",
                    "jpg": buf.getvalue(),
                    "txt": f"the {names[i % 4]} one",
                    "json": {"words": 3},
                }
            )
    write_manifest(root / "images2", Manifest(kind="image_text", shards=w.entries, name="images2"))
    rng = np.random.default_rng(0)
    with RollingWriter(root / "features", "tar", max_samples=16) as w:
        for i in range(images):
            vec = (rng.standard_normal(768) + i % 4).astype(np.float32)
            w.write(
                {"__key__": f"f{i:05d}", "npy": vec, "txt": f"a {names[i % 4]} square", "json": {"words": 3}}
            )
    write_manifest(root / "features", Manifest(kind="features", shards=w.entries, name="features"))
    with RollingWriter(root / "text", "arrow", max_samples=64, vocab_size=len(tok)) as w:
        for i in range(lines):
            line = CORPUS[i % len(CORPUS)] + "\n"
            w.write(tok(line)["input_ids"], words=len(line.split()))
    write_manifest(root / "text", Manifest(kind="tokens", shards=w.entries, name="text"))
    vit = make_tiny_vit(root / "vit", image_size=32, patch_size=8)
    vit768 = make_tiny_vit(
        root / "vit768", image_size=32, patch_size=8, hidden_size=768, num_layers=1, num_heads=12
    )
    out = {k: str(root / k) for k in ("images", "images2", "features", "text")}
    return {**out, "vit": vit, "vit768": vit768, "tokenizer": str(tokenizer_dir)}


def train_args(model: str, data: dict[str, str], out: Path, *extra: str) -> list[str]:
    """`babylm-train MODEL ...` arguments on the fixture data."""
    if model in ("opt", "roberta"):
        locations = ["--data", data["text"]]
    else:
        locations = ["--data", data["images"], "--data", data["text"], "--vision-encoder", data["vit"]]
    return [model, *locations, "--tokenizer", data["tokenizer"], "--out", str(out), *COMMON, *extra]


def run(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return torch.load(newest / "model.pt", weights_only=True)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]}"
