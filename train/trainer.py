"""The training loop, run by every torchrun rank: `train(cfg)` = `Trainer.setup(...).run()`;
`Trainer.train_step` is one optimizer step, `Trainer.forward_backward` one micro-step.

One optimizer step = `accum` micro-steps of `batch_size` samples per rank (per stream). The loader
is built with the micro-batch (its global batch is batch_size x world), so optimizer step k uses
loader steps [k*accum, (k+1)*accum) and the union of its micro-batches is exactly the global batch
an unaccumulated run would use. Each stream's loss is a sum over target tokens divided by that
stream's target count over all ranks and micro-steps (all-reduced before the first backward), times
the world size because DDP averages gradients; the gradient is then d(sum_s w_s * L_s / N_s).
DDP syncs gradients on the last micro-step only.

The loader is a `TrainLoader` (`babylm.train.data.contract`): every step is `{stream: LoaderBatch}`,
one stream or two alike; the model gets a batch's `inputs` only, the words seen come beside them.
What is scored and counted (the label shift, -100, masked LM or not) is `losses.py`'s.

Every optimizer step ends with an all-reduce of a stop flag (over gloo, off the GPU stream), so a
SIGTERM/SIGUSR1 that reaches any rank stops all of them after the same step with a checkpoint.
A USR1 that reached the Slurm scripts' launcher before the ranks could hear it is not lost
(`stop_signals.stop_pending`).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from babylm.shards import atomic_write_bytes
from babylm.train import checkpoint as ckpt
from babylm.train import words as wordmod
from babylm.train.config import TrainConfig
from babylm.train.data.contract import LoaderBatch, TrainLoader
from babylm.train.distributed import Dist, quiet, setup_distributed, wrap_ddp
from babylm.train.kinds import KINDS
from babylm.train.losses import count_targets, mask_tokens, token_loss_sum
from babylm.train.metrics import (
    MetricsWriter,
    interval_record,
    require_tensorboard,
    write_run_info,
)
from babylm.train.optim import make_optimizer
from babylm.train.progress import TrainProgress
from babylm.train.setup import SetupError, build_data, build_model_for, vision_encoder_path
from babylm.train.stop_signals import catching_stop_signals, received
from babylm.train.tracking import WandbTracker, require_wandb


class _Losses(nn.Module):
    """What DDP wraps: one forward computes every stream's (loss sum, target count)."""

    def __init__(self, model: nn.Module, masked_lm: bool):
        super().__init__()
        self.model = model
        self.masked_lm = masked_lm

    def forward(self, batches: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [token_loss_sum(self.model, b, self.masked_lm) for b in batches]


def train(cfg: TrainConfig) -> int:
    """Run (or continue) training as described by `cfg`; returns the process exit code (0 also
    after a SIGTERM/SIGUSR1 stop, which leaves a checkpoint to resume from)."""
    d = setup_distributed()
    quiet(d.rank)
    with catching_stop_signals():
        try:
            return Trainer.setup(cfg, d).run()
        finally:
            if d.world > 1 and dist.is_initialized():
                dist.destroy_process_group()


@dataclass
class Interval:
    """What the trainer accumulates between two metric records (all on the device)."""

    loss: torch.Tensor  # per-stream local loss sums, then the skipped-sample count
    counts: torch.Tensor  # per-stream global target counts
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Trainer:
    """One run on one rank: `setup` builds it, `train_step` is one optimizer step, `run` the loop."""

    cfg: TrainConfig
    d: Dist
    run_dir: Path
    tokenizer: Any
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loader: TrainLoader
    masked_lm: bool  # decided once, by the kind's record
    weights: list[float]
    accum: int
    steps_per_epoch: int
    total: int
    step: int
    writer: ckpt.CheckpointWriter
    metrics: MetricsWriter | None
    words: int | None = None  # words seen over all ranks so far; None when the data does not count them

    @classmethod
    def setup(cls, cfg: TrainConfig, d: Dist) -> Trainer:
        """Tokenizer, model, data, optimizer and schedule; restored from a checkpoint on resume."""
        from transformers import AutoTokenizer

        from babylm.train.data.spec import default_of
        from babylm.train.models.vision import image_spec

        run_dir = Path(cfg.out)
        resume_from = _prepare_run_dir(cfg, run_dir, d)
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
        kind = KINDS[cfg.model]
        vision = vision_encoder_path(cfg, run_dir, d) if kind.multimodal else None
        model = build_model_for(cfg, tokenizer, vision).to(d.device)
        # A kind that sees no image never decodes one: the loader's default size stands in.
        image_size = image_spec(model)[2] if kind.images else default_of("image_size")
        micro, accum = cfg.accumulation(d.world)
        loader = build_data(cfg, tokenizer, d, micro, image_size)
        steps_per_epoch = loader.steps_per_epoch // accum
        if steps_per_epoch == 0:
            raise SetupError(
                f"--data {' '.join(cfg.data)}: fewer samples than one global batch of {cfg.global_batch_size}; "
                "pass a smaller --global-batch-size (or --seq-len for tokens) or more data"
            )
        total = steps_per_epoch * cfg.num_epochs
        total = min(total, cfg.max_steps) if cfg.max_steps is not None else total
        optimizer, scheduler = make_optimizer(cfg, model, d, total)
        step = 0
        if resume_from is not None:
            step = ckpt.restore_training(resume_from, model, optimizer, scheduler, loader, d.rank, d.world)
        words = wordmod.words_at_start(cfg, loader, resume_from, d.rank)
        if d.rank == 0:
            write_run_info(
                run_dir, model, model_kind=cfg.model, world_size=d.world, device=str(d.device),
                batch_size_per_device=micro, accumulation_steps=accum,
                global_batch_size=cfg.global_batch_size,
                samples_per_epoch=loader.samples_per_epoch,
                steps_per_epoch=steps_per_epoch, total_steps=total,
                resumed_from=str(resume_from) if resume_from else None,
            )  # fmt: skip
        masked_lm = kind.masked_lm
        return cls(
            cfg=cfg, d=d, run_dir=run_dir, tokenizer=tokenizer, model=model,
            net=wrap_ddp(_Losses(model, masked_lm), d), optimizer=optimizer, scheduler=scheduler,
            loader=loader, masked_lm=masked_lm, weights=_stream_weights(cfg, loader.streams), accum=accum,
            steps_per_epoch=steps_per_epoch, total=total, step=step, words=words,
            writer=ckpt.CheckpointWriter(run_dir, d.rank, d.world, cfg.keep, d.barrier),
            metrics=_metrics_writer(cfg, run_dir, step if resume_from is not None else None, d.rank),
        )  # fmt: skip

    @property
    def streams(self) -> list[str]:
        """The loader's stream names, in the order of `weights` and the per-stream sums."""
        return list(self.loader.streams)

    def run(self) -> int:
        """Epochs of optimizer steps until the last one or a stop signal; metrics and checkpoints
        as the config asks. Returns the exit code."""
        cfg, d = self.cfg, self.d
        self.model.train()
        n = len(self.streams)
        interval = Interval(
            torch.zeros(n + 1, device=d.device), torch.zeros(n, device=d.device, dtype=torch.float64)
        )
        stop_reason: str | None = None
        saved = None
        bar = TrainProgress(d.rank, self.total, self.step, cfg.model)
        while self.step < self.total and stop_reason is None:
            epoch = self.step // self.steps_per_epoch
            self.loader.set_epoch(epoch)
            batches = iter(self.loader)
            for _ in range(min((epoch + 1) * self.steps_per_epoch, self.total) - self.step):
                words_before = self.words
                lr, grad_norm = self.train_step(batches, interval)
                bar.step()
                stop_reason = self.stop_requested()
                milestones = self.words_reached(words_before)
                if self.step % cfg.log_every == 0 or self.step == self.total or stop_reason:
                    self.log(interval, lr, grad_norm, bar, final=self.step == self.total or bool(stop_reason))
                    interval = Interval(interval.loss.zero_(), interval.counts.zero_())
                tags = (
                    ckpt.checkpoint_tags(cfg, self.step, self.steps_per_epoch, self.total, bool(stop_reason))
                    + milestones
                )
                if tags:
                    trainer_state = {"optimizer": self.optimizer, "scheduler": self.scheduler, "config": cfg}
                    saved = ckpt.save_training(
                        self.writer, self.step, self.step // self.steps_per_epoch, tags, self.model,
                        trainer_state, self.loader, self.words,
                    )  # fmt: skip
                if stop_reason or self.step >= self.total:
                    break
            batches.close()
        bar.close()
        if self.metrics is not None:
            self.metrics.close()
        self.finish(stop_reason, saved)
        return 0

    def train_step(self, batches: Any, interval: Interval) -> tuple[float, torch.Tensor]:
        """One optimizer step: `accum` micro-batches per stream, losses scaled by the global target
        counts, backward (DDP syncs on the last), clip, AdamW, schedule. Returns (lr, grad norm)."""
        cfg, d = self.cfg, self.d
        raw = [_next_batch(batches) for _ in range(self.accum)]
        streams = [[r[s] for s in self.streams] for r in raw]
        cpu = [[self.model_inputs(b, i) for b in mb] for i, mb in enumerate(streams)]
        counts = torch.tensor(
            [[count_targets(b["labels"], self.masked_lm) for b in mb] for mb in cpu], dtype=torch.float64
        )
        global_counts = counts.sum(0).to(d.device)
        if d.world > 1:
            dist.all_reduce(global_counts)
        if self.words is not None:
            self.words += self.count_words(streams)
        scale = (d.world * torch.tensor(self.weights, device=d.device, dtype=torch.float64)
                 / global_counts.clamp(min=1)).float()  # fmt: skip
        for i, mb in enumerate(cpu):
            self.forward_backward([self.to_device(b) for b in mb], scale, i == self.accum - 1, interval)
        interval.counts += global_counts
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        interval.steps += 1
        return lr, grad_norm

    def forward_backward(
        self, batches: list[dict[str, torch.Tensor]], scale: torch.Tensor, last: bool, interval: Interval
    ) -> None:
        """One micro-step: every stream's forward, the weighted loss's backward (no DDP sync
        before the last micro-step), and the loss sums into `interval`."""
        d, n = self.d, len(self.streams)
        sync = contextlib.nullcontext() if last or d.world == 1 else self.net.no_sync()
        bf16 = self.cfg.precision == "bf16" or (self.cfg.precision == "auto" and d.device.type == "cuda")
        with sync:
            with torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = self.net(batches)
            loss = sum(scale[s] * out[s][0] for s in range(n))
            loss.backward()
        interval.loss[:n] += torch.stack([o[0].detach().float() for o in out])

    def model_inputs(self, batch: LoaderBatch, micro_index: int) -> dict[str, torch.Tensor]:
        """The model inputs of one stream's batch; the masked LM's masking happens here."""
        out = dict(batch.inputs)
        if self.masked_lm:
            # Seeded by (seed, step, rank, micro-step): the same masks after a resume.
            seq = np.random.SeedSequence([self.cfg.seed, self.step, self.d.rank, micro_index])
            tok = self.tokenizer
            out["input_ids"], out["labels"] = mask_tokens(
                out["input_ids"], tok.mask_token_id, len(tok), list(tok.all_special_ids),
                prob=self.cfg.mask_prob, generator=torch.Generator().manual_seed(int(seq.generate_state(1)[0])),
            )  # fmt: skip
        return out

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A batch on the training device; uint8 images are normalised there, where the model runs."""
        from babylm.train.models import normalize_images

        out = {k: v.to(self.d.device, non_blocking=True) for k, v in batch.items()}
        if "pixel_values" in out:
            out["pixel_values"] = normalize_images(out["pixel_values"], self.model)
        return out

    def count_words(self, streams: list[list[LoaderBatch]]) -> int:
        """Words of this step's batches over all ranks, exact (int64), summed on the CPU over gloo
        like the stop flag, so the count never waits for the GPU."""
        words = torch.tensor([sum(b.words for mb in streams for b in mb)], dtype=torch.int64)
        if self.d.world > 1:
            dist.all_reduce(words, group=self.d.flag_group)
        return int(words.item())

    def words_reached(self, before: int | None) -> list[str]:
        """The milestone tags the last step reached; at the --max-words budget the step becomes
        the last one (`total`)."""
        if self.words is None or before is None:
            return []
        budget = self.cfg.word_budget
        if budget is not None and self.words >= budget and self.step < self.total:
            self.total = self.step
        return wordmod.reached(self.cfg.word_milestones, before, self.words)

    def stop_requested(self) -> str | None:
        """The name of a stop signal any rank received (all ranks agree, after the same step)."""
        flag = torch.tensor([float(received())])  # the signal number, 0 for none
        if self.d.world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.d.flag_group)
        return signal.Signals(int(flag.item())).name if flag.item() > 0 else None

    def log(
        self, interval: Interval, lr: float, grad_norm: torch.Tensor, bar: TrainProgress, final: bool = False
    ) -> None:
        """All-reduce the interval's sums and write one metrics record (rank 0); `final`: the
        run's last record, whose progress line is always printed."""
        n = len(self.streams)
        interval.loss[n] = float(self.loader.skipped)
        if self.d.world > 1:
            dist.all_reduce(interval.loss)
        elapsed = time.perf_counter() - interval.started
        rec = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "lr": lr}
        rec.update(interval_record(interval.loss, interval.counts, self.weights, self.streams, elapsed))
        if self.words is not None:
            rec["words"] = self.words
        rec["grad_norm"] = float(grad_norm)
        rec["samples_per_s"] = interval.steps * self.cfg.global_batch_size * n / elapsed
        if self.metrics is not None:
            self.metrics.log(rec)
            bar.record(rec, final=final)

    def finish(self, stop_reason: str | None, saved: Any) -> None:
        """Tell the user how the run ended: the resume command after a stop, done.json at the end."""
        cfg, run_dir = self.cfg, self.run_dir
        if self.d.rank == 0:
            if stop_reason:
                print(
                    f"Stopped by {stop_reason} after step {self.step}/{self.total}; checkpoint {saved}.\n"
                    f"Resume with: babylm-train {cfg.model} --config {run_dir / 'config.toml'} --resume auto",
                    flush=True,
                )
            else:
                done = json.dumps({"step": self.step, "total": self.total}) + "\n"
                atomic_write_bytes(run_dir / "done.json", done.encode())
                print(f"Done: {self.step} steps; checkpoints in {run_dir / ckpt.CKPT_DIR}", flush=True)
        self.d.barrier()


def _prepare_run_dir(cfg: TrainConfig, run_dir: Path, d: Dist) -> Path | None:
    """The checkpoint to resume from (None: a fresh start); writes RUN_DIR/config.toml."""
    resume_from = ckpt.resolve_checkpoint(cfg.resume, run_dir) if cfg.resume else None
    if resume_from is None and ckpt.list_checkpoints(run_dir):
        # A fresh start here would mix its checkpoints with the old run's (and --resume auto
        # could later pick an old one).
        raise SetupError(f"{run_dir} already has checkpoints: pass --resume auto to continue, or a new --out")
    if cfg.tensorboard:
        require_tensorboard()
    if cfg.wandb:
        require_wandb()
    if d.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.toml", cfg.to_toml().encode())
    d.barrier()
    return resume_from


def _metrics_writer(
    cfg: TrainConfig, run_dir: Path, resume_step: int | None, rank: int
) -> MetricsWriter | None:
    """Rank 0's records: metrics.jsonl, and W&B with --wandb."""
    if rank != 0:
        return None
    tracker = WandbTracker(cfg, run_dir, resume_step) if cfg.wandb else None
    return MetricsWriter(run_dir, cfg.tensorboard, resume_step=resume_step or 0, tracker=tracker)


def _next_batch(batches: Any) -> Any:
    """next(batches) without touching the global CPU RNG, which dropout draws from: a DataLoader
    takes a seed from it whenever it starts workers (at an epoch start, or at a resume), which
    would make a resumed run's dropout differ from an uninterrupted one's."""
    state = torch.get_rng_state()
    try:
        return next(batches)
    finally:
        torch.set_rng_state(state)


def _stream_weights(cfg: TrainConfig, streams: tuple[str, ...]) -> list[float]:
    """The weight of each stream's loss: `--mix` (caption, text) between two streams; a lone
    stream weighs 1."""
    if len(streams) == 1:
        return [1.0]
    mix = dict(zip(("caption", "text"), cfg.mix_weights, strict=True))
    return [mix[name] for name in streams]
