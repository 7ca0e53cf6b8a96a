"""The training loop: one readable function, `train(cfg)`, run by every torchrun rank.

One optimizer step = `accum` micro-steps of `batch_size` samples per rank (per stream). The loader
is built with the micro-batch (its global batch is batch_size x world), so optimizer step k uses
loader steps [k*accum, (k+1)*accum) and the union of its micro-batches is exactly the global batch
an unaccumulated run would use. Each stream's loss is a sum over target tokens divided by that
stream's target count over all ranks and micro-steps (all-reduced before the first backward), times
the world size because DDP averages gradients; the gradient is then d(sum_s w_s * L_s / N_s).
DDP syncs gradients on the last micro-step only.

Every optimizer step ends with an all-reduce of a stop flag (over gloo, off the GPU stream), so a
SIGTERM/SIGUSR1 that reaches any rank stops all of them after the same step with a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from babylm.train import checkpoint as ckpt
from babylm.train.config import TrainConfig, lr_factor
from babylm.train.distributed import Dist, quiet, setup_distributed, wrap_ddp
from babylm.train.kinds import MULTIMODAL_KINDS
from babylm.train.metrics import (
    MetricsWriter,
    interval_record,
    progress_bar,
    require_tensorboard,
    write_run_info,
)

_STOP: dict[str, int | None] = {"signal": None}
DROPOUT_NAMES = ("hidden_dropout_prob", "attention_probs_dropout_prob")  # GIT and RoBERTa
MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "pixel_values", "image_embeds")


class SetupError(ValueError):
    """A run that cannot start as configured (data kinds, tokenizer); the CLI shows it as usage."""


def _on_signal(signum: int, _frame: Any) -> None:
    _STOP["signal"] = int(signum)


def model_vocab_size(tokenizer: Any) -> int:
    """len(tokenizer) + 8 spare rows: the original's 32778 for its 32770-token tokenizer."""
    return len(tokenizer) + 8


def vision_encoder_path(cfg: TrainConfig, run_dir: Path, d: Dist) -> str:
    """The encoder to load; 'tiny-random' is built once by rank 0 under RUN_DIR/tiny_vit."""
    if cfg.vision_encoder != "tiny-random":
        return cfg.vision_encoder
    from babylm.train.models import make_tiny_vit

    path = run_dir / "tiny_vit"
    if d.rank == 0 and not (path / "config.json").exists():
        # Whole 224-pixel images (what prep stores), in 49 patches of 32 to stay cheap on a CPU.
        make_tiny_vit(path, image_size=224, patch_size=32)
    d.barrier()
    return str(path)


def build_model_for(cfg: TrainConfig, tokenizer: Any, vision: str | None) -> nn.Module:
    """The model of `cfg.model`, seeded; `noimg` is GIT's text decoder that never sees an image."""
    from babylm.train.models import build_model

    kind = cfg.model
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if cfg.model == "flamingo" and (image_id is None or image_id == tokenizer.unk_token_id):
        raise SetupError(f"{cfg.tokenizer}: flamingo needs an <image> token in the tokenizer")
    overrides = {}
    if cfg.dropout is not None:
        names = ("dropout", "attention_dropout") if kind in ("flamingo", "opt") else DROPOUT_NAMES
        overrides = dict.fromkeys(names, cfg.dropout)
    torch.manual_seed(cfg.seed)
    model = build_model(
        kind,
        size=cfg.size,
        vocab_size=model_vocab_size(tokenizer),
        vision_encoder=vision,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        image_token_id=image_id if image_id is not None else 0,
        **overrides,
    )
    return model


def build_data(
    cfg: TrainConfig, tokenizer: Any, d: Dist, micro: int, image_size: int
) -> tuple[Any, list[str]]:
    """The rank's loader and its stream names; multimodal data is split by manifest kind."""
    from babylm.shards import open_dataset
    from babylm.train.data import build_loader

    common = dict(batch_size=micro, world_size=d.world, rank=d.rank, workers=cfg.workers, seed=cfg.seed)
    common.update(seq_len=cfg.seq_len, pin_memory=d.device.type == "cuda")
    if not cfg.multimodal:
        # Token chunks are cut in about a millisecond: a worker process would only add a copy.
        common["workers"] = 0
        return build_loader(cfg.data, kind="tokens", tokenizer=tokenizer, **common), ["text"]
    kinds = {loc: open_dataset(loc).kind for loc in cfg.data}
    captions = [loc for loc, k in kinds.items() if k in ("image_text", "features")]
    texts = [loc for loc, k in kinds.items() if k == "tokens"]
    if not captions or len(texts) != 1:
        raise SetupError(
            f"{cfg.model} needs one or more image_text/features datasets and one tokens dataset in --data; "
            f"got {', '.join(f'{loc} ({k})' for loc, k in kinds.items())}"
        )
    loader = build_loader(
        captions,
        text_location=texts[0],
        tokenizer=tokenizer,
        image_prefix="<image> " if cfg.model == "flamingo" else None,
        max_caption_tokens=cfg.seq_len,
        images=cfg.model != "noimg",
        image_size=image_size,
        **common,
    )
    return loader, ["caption", "text"]


class _Losses(nn.Module):
    """What DDP wraps: one forward computes every stream's (loss sum, target count)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batches: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from babylm.train.models import token_loss_sum

        return [token_loss_sum(self.model, b) for b in batches]


def count_targets(labels: torch.Tensor, masked_lm: bool) -> int:
    """Target tokens of a batch, as `token_loss_sum` counts them (causal models shift once)."""
    return int((labels != -100).sum() if masked_lm else (labels[:, 1:] != -100).sum())


def train(cfg: TrainConfig) -> int:
    """Run (or continue) training as described by `cfg`; returns the process exit code (0 also
    after a SIGTERM/SIGUSR1 stop, which leaves a checkpoint to resume from)."""
    d = setup_distributed()
    quiet(d.rank)
    _STOP["signal"] = None
    # Installed before the loader forks its workers, which inherit this harmless flag-setter.
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        return _run(cfg, d)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg: TrainConfig, d: Dist) -> int:
    from transformers import AutoTokenizer

    from babylm.train.models import mask_tokens, normalize_images
    from babylm.train.models.vision import image_spec

    run_dir = Path(cfg.out)
    resume_from = ckpt.resolve_checkpoint(cfg.resume, run_dir) if cfg.resume else None
    if resume_from is None and ckpt.list_checkpoints(run_dir):
        # A fresh start here would mix its checkpoints with the old run's (and --resume auto
        # could later pick an old one).
        raise SetupError(f"{run_dir} already has checkpoints: pass --resume auto to continue, or a new --out")
    if cfg.tensorboard:
        require_tensorboard()
    if d.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(cfg.to_toml())
    d.barrier()

    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    vision = vision_encoder_path(cfg, run_dir, d) if cfg.model in MULTIMODAL_KINDS else None
    model = build_model_for(cfg, tokenizer, vision).to(d.device)
    masked_lm = cfg.model == "roberta"
    image_size = image_spec(model)[2] if cfg.model in ("flamingo", "git") else 224
    micro, accum = cfg.accumulation(d.world)
    loader, streams = build_data(cfg, tokenizer, d, micro, image_size)
    weights = list(cfg.mix_weights) if cfg.multimodal else [1.0]
    steps_per_epoch = loader.steps_per_epoch // accum
    if steps_per_epoch == 0:
        raise SetupError(f"the data has fewer samples than one global batch of {cfg.global_batch_size}")
    total = steps_per_epoch * cfg.num_epochs
    total = min(total, cfg.max_steps) if cfg.max_steps is not None else total

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        fused=d.device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, total))
    step = 0
    if resume_from is not None:
        step = ckpt.restore_training(resume_from, model, optimizer, scheduler, loader, d.rank, d.world)
    writer = ckpt.CheckpointWriter(run_dir, d.rank, d.world, cfg.keep, d.barrier)
    metrics = MetricsWriter(run_dir, cfg.tensorboard, resume_step=step) if d.rank == 0 else None
    if d.rank == 0:
        children = {"caption": loader.caption, "text": loader.text} if cfg.multimodal else {"text": loader}
        write_run_info(
            run_dir,
            model,
            model_kind=cfg.model,
            world_size=d.world,
            device=str(d.device),
            batch_size_per_device=micro,
            accumulation_steps=accum,
            global_batch_size=cfg.global_batch_size,
            samples_per_epoch={name: child.num_samples for name, child in children.items()},
            steps_per_epoch=steps_per_epoch,
            total_steps=total,
            resumed_from=str(resume_from) if resume_from else None,
        )

    net = wrap_ddp(_Losses(model), d)
    model.train()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
    autocast = torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=bf16)
    special_ids = list(tokenizer.all_special_ids)
    n_streams = len(streams)

    def on_cpu(batch: dict[str, Any], micro_index: int) -> dict[str, torch.Tensor]:
        """The model inputs of one stream's batch; RoBERTa's masking happens here."""
        out = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        if masked_lm:
            # Seeded by (seed, step, rank, micro-step): the same masks after a resume.
            seed = int(np.random.SeedSequence([cfg.seed, step, d.rank, micro_index]).generate_state(1)[0])
            out["input_ids"], out["labels"] = mask_tokens(
                out["input_ids"],
                tokenizer.mask_token_id,
                len(tokenizer),
                special_ids,
                prob=cfg.mask_prob,
                generator=torch.Generator().manual_seed(seed),
            )
        return out

    def on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {k: v.to(d.device, non_blocking=True) for k, v in batch.items()}
        if "pixel_values" in out:  # uint8 from the loader; normalised where the model runs
            out["pixel_values"] = normalize_images(out["pixel_values"], model)
        return out

    loss_acc = torch.zeros(n_streams + 1, device=d.device)  # local loss sums, then skipped samples
    count_acc = torch.zeros(n_streams, device=d.device, dtype=torch.float64)  # global target counts
    grad_norm = torch.zeros((), device=d.device)
    last_log, steps_since_log, checked = time.perf_counter(), 0, False
    stop_reason: str | None = None
    bar = progress_bar(d.rank, total, step, cfg.model)

    while step < total and stop_reason is None:
        epoch = step // steps_per_epoch
        loader.set_epoch(epoch)
        batches = iter(loader)
        for _ in range(min((epoch + 1) * steps_per_epoch, total) - step):
            raw = [_next_batch(batches) for _ in range(accum)]
            cpu = [[on_cpu(r[s] if n_streams > 1 else r, i) for s in streams] for i, r in enumerate(raw)]
            counts = torch.tensor(
                [[count_targets(b["labels"], masked_lm) for b in mb] for mb in cpu], dtype=torch.float64
            )
            micro_batches = [[on_device(b) for b in mb] for mb in cpu]
            global_counts = counts.sum(0).to(d.device)
            if d.world > 1:
                dist.all_reduce(global_counts)
            scale = (d.world * torch.tensor(weights, device=d.device, dtype=torch.float64)
                     / global_counts.clamp(min=1)).float()  # fmt: skip
            for i, mb in enumerate(micro_batches):
                last = i == accum - 1
                sync = contextlib.nullcontext() if last or d.world == 1 else net.no_sync()
                with sync:
                    with autocast:
                        out = net(mb)
                    loss = sum(scale[s] * out[s][0] for s in range(n_streams))
                    loss.backward()
                loss_acc[:n_streams] += torch.stack([o[0].detach().float() for o in out])
                if not checked:  # our count must be the one token_loss_sum uses
                    if [int(o[1]) for o in out] != [int(c) for c in counts[i]]:
                        raise RuntimeError(
                            f"target count mismatch: {[int(o[1]) for o in out]} vs {counts[i].tolist()}"
                        )
                    checked = True
            count_acc += global_counts
            grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            steps_since_log += 1
            bar.update(1)

            flag = torch.tensor([float(_STOP["signal"] or 0)])  # the signal number, 0 for none
            if d.world > 1:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=d.flag_group)
            if flag.item() > 0:
                stop_reason = signal.Signals(int(flag.item())).name

            if step % cfg.log_every == 0 or step == total or stop_reason:
                loss_acc[n_streams] = float(_skipped(loader))
                if d.world > 1:
                    dist.all_reduce(loss_acc)
                elapsed, last_log = time.perf_counter() - last_log, time.perf_counter()
                rec = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": lr}
                rec.update(interval_record(loss_acc, count_acc, weights, streams, elapsed))
                rec["grad_norm"] = float(grad_norm)
                rec["samples_per_s"] = steps_since_log * cfg.global_batch_size * n_streams / elapsed
                if metrics is not None:
                    metrics.log(rec)
                    bar.set_postfix_str(
                        f"loss {rec['loss']:.3f} lr {lr:.2e} {rec['samples_per_s']:.0f} samples/s",
                        refresh=False,
                    )
                loss_acc.zero_()
                count_acc.zero_()
                steps_since_log = 0

            tags = _checkpoint_tags(cfg, step, steps_per_epoch, total, stop_reason is not None)
            if tags:
                trainer_state = {"optimizer": optimizer, "scheduler": scheduler, "config": cfg}
                saved = ckpt.save_training(
                    writer, step, step // steps_per_epoch, tags, model, trainer_state, loader
                )
            if stop_reason:
                break
        batches.close()

    bar.close()
    if metrics is not None:
        metrics.close()
    if d.rank == 0:
        if stop_reason:
            print(
                f"Stopped by {stop_reason} after step {step}/{total}; checkpoint {saved}.\n"
                f"Resume with: babylm-train {cfg.model} --config {run_dir / 'config.toml'} --resume auto",
                flush=True,
            )
        else:
            (run_dir / "done.json").write_text(json.dumps({"step": step, "total": total}) + "\n")
            print(f"Done: {step} steps; checkpoints in {run_dir / ckpt.CKPT_DIR}", flush=True)
    d.barrier()
    return 0


def _checkpoint_tags(cfg: TrainConfig, step: int, steps_per_epoch: int, total: int, stop: bool) -> list[str]:
    """Why a checkpoint is due after `step` (none: no checkpoint)."""
    tags = []
    if cfg.save_every and step % cfg.save_every == 0:
        tags.append("periodic")
    if step % steps_per_epoch == 0 and step // steps_per_epoch in cfg.save_epochs:
        tags.append(f"epoch-{step // steps_per_epoch}")
    if step == total:
        tags.append("final")
    if stop:
        tags.append("preempt")
    return tags


def _next_batch(batches: Any) -> Any:
    """next(batches) without touching the global CPU RNG, which dropout draws from: a DataLoader
    takes a seed from it whenever it starts workers (at an epoch start, or at a resume), which
    would make a resumed run's dropout differ from an uninterrupted one's."""
    state = torch.get_rng_state()
    try:
        return next(batches)
    finally:
        torch.set_rng_state(state)


def _skipped(loader: Any) -> int:
    """Undecodable samples this rank's loader has left out so far."""
    children = [loader.caption, loader.text] if hasattr(loader, "caption") else [loader]
    return sum(c.corrupt["total_skipped"] for c in children)
