"""The optimizer and the learning-rate schedule of a run: the original's AdamW (lr 1e-4, weight
decay 0.1, betas 0.9/0.999) and its linear warmup from 1e-4 of the peak, then constant or cosine."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from babylm.train.config import TrainConfig
from babylm.train.distributed import Dist

# The original's linear warmup starts at 1e-4 of the peak (mmcv's warmup_ratio; it cannot be 0).
WARMUP_START = 1e-4


def make_optimizer(cfg: TrainConfig, model: nn.Module, d: Dist, total: int) -> tuple[Any, Any]:
    """AdamW over the trainable parameters and the original's warmup/decay schedule."""
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
    return optimizer, scheduler


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Multiplier of --lr at optimizer step `step`: linear warmup, then constant or cosine."""
    if step < cfg.warmup_steps:
        return WARMUP_START + (1.0 - WARMUP_START) * step / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0
