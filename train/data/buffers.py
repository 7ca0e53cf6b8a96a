"""Batch buffers of DataLoader workers, recycled once the consumer has let go of them.

A worker hands a batch over in shared memory (nothing is copied). A *fresh* shared-memory
segment per batch costs as much as decoding the batch's JPEGs: creating it, then faulting in and
zeroing its ~10 MB of pages in the worker, again in the consumer. Measured on 64 224x224 JPEGs:
~45-55 ms per batch into fresh segments, ~16-28 ms into a reused one. So each worker keeps a
ring of segments and reuses one when the consumer process no longer holds it:

- the consumer's loader makes one byte flag per ring slot in shared memory (`BufferFlags`);
  worker w owns slots [w * RING, (w + 1) * RING);
- a worker takes a free slot (flag 0), marks it 1 and decodes into that slot's segment; the
  batch's envelope carries the slot number (`LoaderBatch.slot`, beside the model inputs);
- in the consumer, a finalizer on the received storage sets the flag back to 0 when the last
  tensor or view of it is gone (torch keeps one Python storage object per storage while any
  view lives, so the finalizer cannot run early). A consumer that keeps batches (a list of them,
  a pinned copy still in use) just keeps their slots: with none free the worker takes a fresh
  segment, as before, so a buffer is never overwritten while anyone can read it.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

# Batches a worker can have out at once: prefetch_factor queued, one being consumed, one being
# pinned, and slack so a short-lived extra reference does not force a fresh segment.
RING_EXTRA = 3


class BufferFlags:
    """Shared byte flags, one per worker ring slot: 1 = handed out, 0 = free."""

    def __init__(self, workers: int, ring: int):
        self.ring = ring
        self.flags = torch.zeros(workers * ring, dtype=torch.uint8).share_memory_()

    def release_when_freed(self, tensor: torch.Tensor, slot: int) -> None:
        """Consumer side: free `slot` once `tensor`'s storage is garbage."""
        weakref.finalize(tensor.untyped_storage(), _release, self.flags, slot)


def _release(flags: torch.Tensor, slot: int) -> None:
    flags[slot] = 0


class WorkerBuffers:
    """Worker side: the segments of this worker's ring slots, allocated on first use."""

    def __init__(self, flags: BufferFlags, worker: int):
        self.flags = flags.flags
        self.first = worker * flags.ring
        self.ring = flags.ring
        self._segments: dict[int, torch.Tensor] = {}

    def take(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
        """(uint8 tensor of `shape` in shared memory, its slot or -1 for an unpooled one)."""
        numel = int(np.prod(shape))
        for slot in range(self.first, self.first + self.ring):
            if self.flags[slot] == 0:
                seg = self._segments.get(slot)
                if seg is None or seg.numel() < numel:
                    seg = new_shared(numel)
                    self._segments[slot] = seg
                self.flags[slot] = 1
                return seg[:numel].view(shape), slot
        return new_shared(numel).view(shape), -1


def new_shared(numel: int) -> torch.Tensor:
    """A flat uint8 tensor in a fresh shared-memory segment."""
    return torch.empty(0, dtype=torch.uint8).new(torch.UntypedStorage._new_shared(numel))


_current: WorkerBuffers | None = None


def set_worker_buffers(buffers: WorkerBuffers | None) -> None:
    """Install this worker process's ring (called by the loader when a worker starts an epoch)."""
    global _current
    _current = buffers


def worker_buffer(shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """A shared-memory batch buffer for this worker: from its ring if it has one."""
    if _current is not None:
        return _current.take(shape)
    return new_shared(int(np.prod(shape))).view(shape), -1
