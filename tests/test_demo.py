"""The whole path of `make demo`, reduced: generated raw files -> shards -> torchrun training on
2 CPU processes -> report -> exported model that loads with AutoModelForCausalLM/AutoProcessor,
and a model that uses the picture (the demo's image-gain check, enforced)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MIN_GAIN = 0.1  # nats/token of caption loss: shuffled images minus the right ones


@pytest.mark.slow
def test_reduced_demo_end_to_end(tmp_path):
    env = dict(
        os.environ,
        BIN=str(Path(sys.executable).parent),
        DEMO_DIR=str(tmp_path / "demo"),
        # 200 steps is where the tiny Flamingo has learnt to look (a run measured a gain of 0.24
        # nats/token on these 23 held-out pairs; 400 steps on the full demo data give 0.67).
        DEMO_STEPS="200",
        DEMO_DATA_ARGS="--cc3m-rows 240 --ln-images 40 --text-lines 200",
        BABYLM_CACHE_DIR=str(tmp_path / "cache"),
        DEMO_MIN_GAIN=str(MIN_GAIN),
    )
    env.pop("BABYLM_DATASET_ROOT_DIR", None)
    result = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    demo = tmp_path / "demo"
    for name in ("text_vis2024", "cc3m_training", "cc3m_validation", "localnarr"):
        manifest = json.loads((demo / "shards" / name / "manifest.json").read_text())
        assert manifest["totals"]["samples"] > 0, name
    # The demo data has broken rows on purpose; they are counted, not lost.
    cc3m = json.loads((demo / "shards/cc3m_training/manifest.json").read_text())
    assert cc3m["totals"]["samples"] + cc3m["totals"]["skipped"] == 240
    report = json.loads((demo / "report/eval.json").read_text())
    assert report["samples"] > 0 and report["matched_loss"] > 0 and report["shuffled_loss"] > 0
    # The model uses the picture: the right images explain the captions better than shuffled ones.
    assert report["image_gain"] == report["shuffled_loss"] - report["matched_loss"]
    assert report["image_gain"] >= MIN_GAIN, report
    assert Image.open(demo / "report/captions.png").width > 0
    assert Image.open(demo / "report/loss.png").width > 0
    assert "exported model loads: BabyLMFlamingoForCausalLM" in result.stdout
    assert (demo / "model/config.json").exists()
