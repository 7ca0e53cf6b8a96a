"""Benchmark: the trainer's overhead over a bare training loop, on CPU.

Both run the same tiny Flamingo (same seed) on the same data: one caption batch and one text
batch per step, global batch BENCH_BATCH (default 8) per stream, sequences of 32 tokens, one
torch thread.
- trainer: `babylm.train.trainer.train` in this process (one rank): the streaming loader with one
  worker process, the target-count normalisation, clipping, the stop-flag check, metrics.jsonl
  every 10 steps, the progress display (plain lines to /dev/null), a final checkpoint;
- bare: the batches taken from the same loader beforehand and held in memory, then forward,
  backward, clip, AdamW step, nothing else.
The measure is CPU time of this process per step (user + system, loader workers excluded: they
run beside it), because wall time on a shared machine swings with other jobs. The trainer's cost
of BENCH_STEPS steps (default 50) is the difference between a run of BENCH_WARMUP + BENCH_STEPS
steps and one of BENCH_WARMUP (default 5), so its start-up cancels out. The loops alternate
BENCH_ROUNDS times (default 3) and the best of each is compared. Wall-clock steps/s are printed
too. The target is an overhead under 5%.
Run: `.venv/bin/python bench/bench_trainer.py` (or `make bench`).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture builders of the tests

from babylm.train.config import TrainConfig  # noqa: E402
from babylm.train.distributed import Dist  # noqa: E402
from babylm.train.setup import build_data, build_model_for  # noqa: E402
from babylm.train.trainer import train  # noqa: E402

BATCH = int(os.environ.get("BENCH_BATCH", 8))
WARMUP = int(os.environ.get("BENCH_WARMUP", 5))
STEPS = int(os.environ.get("BENCH_STEPS", 50))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))


def cpu_seconds() -> float:
    """CPU time of this process (all its threads), not of its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_data(root: Path) -> dict[str, str]:
    from tests.conftest import build_tiny_tokenizer
    from tests.train.test_trainer import write_trainer_data

    tok = build_tiny_tokenizer(root / "tokenizer")
    # Enough data that no epoch ends inside the measured steps.
    return write_trainer_data(
        root, tok, images=BATCH * (WARMUP + STEPS + 4), lines=BATCH * (WARMUP + STEPS) * 4
    )


def config(data: dict[str, str], out: Path, workers: int, steps: int) -> TrainConfig:
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
        max_steps=steps,
        workers=workers,
        save_every=0,
        save_epochs=[],
        log_every=10,
    )


def run_trainer(data: dict[str, str], out: Path, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a whole `train` call of `steps` steps."""
    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = cpu_seconds(), time.perf_counter()
    with (
        open(os.devnull, "w") as null,
        contextlib.redirect_stderr(null),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        train(config(data, out, workers=1, steps=steps))
    return cpu_seconds() - cpu, time.perf_counter() - wall


def trainer_per_step(data: dict[str, str], out: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per step of the trainer, start-up removed by difference."""
    short = run_trainer(data, out, WARMUP)
    long = run_trainer(data, out, WARMUP + STEPS)
    return (long[0] - short[0]) / STEPS, (long[1] - short[1]) / STEPS


def bare_per_step(data: dict[str, str], out: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per step of the bare loop, after WARMUP steps."""
    from transformers import AutoTokenizer

    from babylm.train.models import normalize_images, token_loss_sum

    cfg = config(data, out, workers=0, steps=WARMUP + STEPS)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    model = build_model_for(cfg, tokenizer, cfg.vision_encoder)
    loader = build_data(cfg, tokenizer, Dist(), BATCH, 32)
    batches = []
    for raw, _ in zip(loader, range(WARMUP + STEPS), strict=False):
        batches.append([raw[s].inputs for s in loader.streams])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)
    model.train()
    for i, step in enumerate(batches):
        if i == WARMUP:
            cpu, wall = cpu_seconds(), time.perf_counter()
        caption = {**step[0], "pixel_values": normalize_images(step[0]["pixel_values"], model)}
        (cap, n_cap), (txt, n_txt) = (token_loss_sum(model, b) for b in (caption, step[1]))
        (cap / n_cap + 0.25 * txt / n_txt).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (cpu_seconds() - cpu) / STEPS, (time.perf_counter() - wall) / STEPS


def main() -> None:
    torch.set_num_threads(1)  # CPU time per step is then the work, not thread spinning
    root = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    try:
        data = make_data(root)
        trainer, bare = [], []
        for r in range(ROUNDS):
            trainer.append(trainer_per_step(data, root / "run"))
            bare.append(bare_per_step(data, root / "run"))
            print(
                f"round {r + 1}: trainer {trainer[-1][0] * 1e3:.0f} ms CPU/step ({1 / trainer[-1][1]:.2f} steps/s), "
                f"bare loop {bare[-1][0] * 1e3:.0f} ms CPU/step ({1 / bare[-1][1]:.2f} steps/s)"
            )
        best_t, best_b = min(t[0] for t in trainer), min(b[0] for b in bare)
        print(
            f"trainer/bare steps per CPU-second = {best_b / best_t:.3f}: overhead {(best_t / best_b - 1) * 100:+.1f}% "
            f"(target < 5%; best of {ROUNDS}, tiny Flamingo, batch {BATCH}+{BATCH}, 1 thread)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
