"""Benchmark: the trainer's overhead over a bare training loop, on CPU.

Both run the same tiny Flamingo (same seed) on the same data: one caption batch and one text
batch per step, global batch BENCH_BATCH (default 16) per stream, sequences of 32 tokens.
- trainer: `babylm.train.trainer.train` in this process (one rank): the streaming loader with one
  worker process, the target-count normalisation, clipping, the stop-flag check, metrics.jsonl
  every 10 steps, the tqdm bar (to /dev/null);
- bare: the batches taken from the same loader beforehand and held in memory, then forward,
  backward, clip, AdamW step, nothing else.
Steps/s are measured after BENCH_WARMUP steps (default 10) over BENCH_STEPS (default 40), the two
loops alternate BENCH_ROUNDS times (default 3) and the best of each is kept, which filters out
noise from other processes on a shared machine. The target is an overhead under 5%.
Run: `.venv/bin/python bench/bench_trainer.py` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture builders of the tests

from babylm.train.config import TrainConfig  # noqa: E402
from babylm.train.trainer import Dist, build_data, build_model_for, train  # noqa: E402

BATCH = int(os.environ.get("BENCH_BATCH", 16))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))
STEPS = int(os.environ.get("BENCH_STEPS", 40))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))


def make_data(root: Path) -> dict[str, str]:
    from tests.conftest import build_tiny_tokenizer
    from tests.train.test_trainer import write_trainer_data

    tok = build_tiny_tokenizer(root / "tokenizer")
    # Enough data that no epoch ends inside the measured steps.
    return write_trainer_data(
        root, tok, images=BATCH * (WARMUP + STEPS + 4), lines=BATCH * (WARMUP + STEPS) * 4
    )


def config(data: dict[str, str], out: Path, workers: int) -> TrainConfig:
    return TrainConfig(
        model="flamingo",
        data=[data["images"], data["text"]],
        tokenizer=data["tokenizer"],
        vision_encoder=data["vit"],
        out=str(out),
        size="tiny",
        global_batch_size=BATCH,
        seq_len=32,
        lr=1e-3,
        warmup_steps=5,
        max_steps=WARMUP + STEPS,
        workers=workers,
        save_every=0,
        save_epochs=[],
        log_every=10,
    ).validate()


def trainer_steps_per_s(data: dict[str, str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    with (
        open(os.devnull, "w") as null,
        contextlib.redirect_stderr(null),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        train(config(data, out, workers=1))
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in recs if r["step"] > WARMUP]
    # samples_per_s covers the 10 steps before each record: 10 * BATCH * 2 streams samples.
    seconds = sum(10 * BATCH * 2 / r["samples_per_s"] for r in timed)
    return 10 * len(timed) / seconds


def bare_steps_per_s(data: dict[str, str], out: Path) -> float:
    from transformers import AutoTokenizer

    from babylm.train.models import normalize_images, token_loss_sum

    cfg = config(data, out, workers=0)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    model = build_model_for(cfg, tokenizer, cfg.vision_encoder)
    loader, streams = build_data(cfg, tokenizer, Dist(), BATCH, 32)
    inputs = ("input_ids", "attention_mask", "labels", "pixel_values")
    batches = []
    for raw, _ in zip(loader, range(WARMUP + STEPS), strict=False):
        step = [{k: v for k, v in raw[s].items() if k in inputs} for s in streams]
        step[0]["pixel_values"] = normalize_images(step[0]["pixel_values"], model)
        batches.append(step)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)
    model.train()
    for i, step in enumerate(batches):
        if i == WARMUP:
            start = time.perf_counter()
        (cap, n_cap), (txt, n_txt) = (token_loss_sum(model, b) for b in step)
        (cap / n_cap + 0.25 * txt / n_txt).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return STEPS / (time.perf_counter() - start)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    try:
        data = make_data(root)
        trainer, bare = [], []
        for r in range(ROUNDS):
            trainer.append(trainer_steps_per_s(data, root / "run"))
            bare.append(bare_steps_per_s(data, root / "run"))
            print(f"round {r + 1}: trainer {trainer[-1]:.2f} steps/s, bare loop {bare[-1]:.2f} steps/s")
        best_t, best_b = max(trainer), max(bare)
        overhead = (best_b / best_t - 1) * 100
        print(
            f"trainer/bare = {best_t / best_b:.3f} (best of {ROUNDS}: {best_t:.2f} vs {best_b:.2f} steps/s, "
            f"tiny Flamingo, batch {BATCH}+{BATCH}, {torch.get_num_threads()} threads); "
            f"overhead {overhead:+.1f}% (target < 5%)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
