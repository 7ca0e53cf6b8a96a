"""Builders shared by the model and export tests: tiny models on a tiny random ViT, test images,
and a Python subprocess in which babylm cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

from babylm.train.models import MULTIMODAL_KINDS, build_model

# Model vocabulary for tests: above the tiny tokenizer's 91 tokens, as 32778 is above 32770.
TINY_VOCAB = 96
IMAGE_SIZE = 224  # the tiny ViT takes DINO's input size: 14 x 14 patches of 16 px + CLS = 197 tokens
IMAGE_TOKENS = (IMAGE_SIZE // 16) ** 2 + 1


def tiny_model(
    kind: str, vit_dir: str | None, image_token_id: int, seed: int = 0, **overrides
) -> torch.nn.Module:
    """A tiny model of `kind`, eval mode, deterministic weights."""
    torch.manual_seed(seed)
    model = build_model(
        kind,
        size="tiny",
        vocab_size=TINY_VOCAB,
        vision_encoder=vit_dir if kind in MULTIMODAL_KINDS else None,
        image_token_id=image_token_id,
        **overrides,
    )
    return model.eval()


def open_gates(model: torch.nn.Module, value: float = 2.0) -> None:
    """Set every Flamingo tanh gate to `value` (the default opens them wide; 0 closes them)."""
    with torch.no_grad():
        for block in model.model.decoder.gated_attn_layers:
            if block is not None:
                block.attn_gate.fill_(value)
                block.ff_gate.fill_(value)


def uint8_images(n: int, seed: int, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(n, 3, size, size) random uint8 images, as the loaders emit them."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


ISOLATION_PROLOGUE = """
import importlib.util, sys
sys.path.extend({site_dirs!r})
# The editable install works through a .pth file; -S skips them, so babylm must be absent here.
BABYLM_IMPORTABLE = importlib.util.find_spec("babylm") is not None
assert not BABYLM_IMPORTABLE, "babylm is importable in the isolated interpreter"
"""


def run_isolated(script: str, args: list[str], workdir: Path, timeout: int = 300) -> str:
    """Run `script` in `python -I -S` (no PYTHONPATH, no user site, no .pth files, so no editable
    babylm) with only site-packages on sys.path, offline, from `workdir`. Returns stdout."""
    code = ISOLATION_PROLOGUE.format(site_dirs=_site_dirs()) + script
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "HF_HOME": str(workdir / "hf"),  # remote code is copied into HF_HOME/modules
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"isolated run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def last_json_line(stdout: str) -> dict:
    """The JSON object an isolated script printed last."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
