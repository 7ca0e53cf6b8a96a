"""The optimizer and learning-rate schedule (train/optim.py)."""

import pytest

from babylm.train.config import TrainConfig
from babylm.train.optim import WARMUP_START, lr_factor

BASE = {"data": ["shards/text"], "tokenizer": "tok", "out": "run"}


def test_lr_schedule_warmup_then_constant_or_cosine():
    cfg = TrainConfig(warmup_steps=10, **BASE)
    assert lr_factor(0, cfg, 100) == pytest.approx(WARMUP_START)
    assert lr_factor(5, cfg, 100) == pytest.approx(WARMUP_START + (1 - WARMUP_START) * 0.5)
    assert lr_factor(10, cfg, 100) == lr_factor(99, cfg, 100) == 1.0
    cos = TrainConfig(warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1, **BASE)
    assert lr_factor(10, cos, 110) == pytest.approx(1.0)
    assert lr_factor(60, cos, 110) == pytest.approx(0.55)
    assert lr_factor(110, cos, 110) == pytest.approx(0.1)
