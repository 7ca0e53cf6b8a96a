"""Recycled worker batch buffers: a batch the consumer still holds (or a view of it) is never
overwritten; one it dropped is reused, and the pixels are those of the in-process loader."""

from __future__ import annotations

import gc

import torch

from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import write_image_text


def _kw(tmp_path) -> dict:
    return dict(batch_size=8, image_size=32, seed=2, cache_dir=tmp_path / "c")


def test_held_batches_and_views_keep_their_pixels(tmp_path):
    data = write_image_text(tmp_path / "ds", [60, 50])
    reference = [b.inputs["pixel_values"].clone() for b in build_loader(data, **_kw(tmp_path)).batches()]
    # Keep only a view of each batch's pixels: the slot must stay taken while the view lives.
    views = [b.inputs["pixel_values"][1:] for b in build_loader(data, workers=2, **_kw(tmp_path)).batches()]
    gc.collect()
    assert len(views) == len(reference)
    for v, r in zip(views, reference, strict=True):
        assert torch.equal(v, r[1:])


def test_dropped_batches_are_recycled_with_the_right_pixels(tmp_path):
    data = write_image_text(tmp_path / "ds", [120, 90])
    reference = [b.inputs["pixel_values"].sum().item() for b in build_loader(data, **_kw(tmp_path)).batches()]
    loader = build_loader(data, workers=2, prefetch_factor=1, **_kw(tmp_path))
    sums = []
    for batch in loader.batches():
        sums.append(batch.inputs["pixel_values"].sum().item())
        del batch  # the consumer lets go: its buffer goes back to the worker's ring
    assert sums == reference
