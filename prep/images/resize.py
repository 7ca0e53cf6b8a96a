"""The resize kernel: PIL's antialiased bilinear filter, computed by torch's uint8 kernel when
torch is there (about twice as fast, within one grey level of PIL), by PIL otherwise."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image


@functools.cache
def _torch_module() -> Any:
    """torch, imported on first use (it costs seconds, which `--help` or `verify` need not pay);
    a dependency of the project anyway, and its resize kernel is the faster one."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch


def resize_array(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of an (h, w, 3) uint8 array to size=(w, h), PIL's filter.

    torch's uint8 kernel computes PIL's BILINEAR (triangle filter widened by the scale) within one
    grey level, about twice as fast; PIL does it where torch is missing.
    """
    if arr.shape[1] == size[0] and arr.shape[0] == size[1]:
        return arr
    _torch = _torch_module()
    if _torch is None:
        return np.asarray(Image.fromarray(arr, "RGB").resize(size, Image.BILINEAR))
    if not (arr.flags.writeable and arr.flags.c_contiguous):  # torch wants to own a writable buffer
        arr = np.array(arr)
    t = _torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    out = _torch.nn.functional.interpolate(t, size=(size[1], size[0]), mode="bilinear", antialias=True)
    planes = out[0].numpy()  # (3, h, w); np.stack interleaves several times faster than a permute copy
    return np.stack((planes[0], planes[1], planes[2]), axis=-1)


def set_threads(n: int) -> int:
    """Threads of the resize kernel (torch's intra-op pool); returns the previous setting.

    Prep runs one image per process at a time, so it sets 1: more threads only spin (and torch's
    OpenMP pool must not be running when worker processes fork)."""
    _torch = _torch_module()
    if _torch is None:
        return 1
    previous = _torch.get_num_threads()
    if previous != n:
        _torch.set_num_threads(n)
    return previous
