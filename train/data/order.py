"""The epoch order: which samples make up global batch b of epoch e, whatever the topology.

Why one global order instead of webdataset's `split_by_node` / `split_by_worker`: those deal whole shards
to consumers, so the order depends on the number of ranks and workers, ranks get unequal sample
counts (the end-of-epoch DDP hang), and a resume cannot know what each consumer had consumed.
Here the order of an epoch is one global sequence that depends on (seed, epoch) and the manifest
counts only:

1. every shard is cut into blocks of `block_size` samples (counts come from the manifest, so
   nothing is read to order an epoch);
2. the blocks are permuted with a generator seeded by (seed, epoch) -- the per-epoch shard-order
   reshuffle, at block granularity so that one global batch mixes many shards;
3. the block-ordered samples go through webdataset's bounded shuffle buffer (`wds.shuffle`'s
   algorithm, here run on sample *indices* with a generator seeded by (seed, epoch)), so the
   in-memory shuffle is the familiar one, but it runs once, identically, in every process.

Global batch b of the epoch is positions [b*G, (b+1)*G) of that sequence (G = per-rank batch x
world size); rank r takes [b*G + r*B, b*G + (r+1)*B). DataLoader workers of a rank split the
rank's *batches* (worker w makes batches start+w, start+w+W, ...), and torch's DataLoader hands
worker outputs back round-robin, so the order does not change with the worker count. Every rank
yields floor(N / G) batches; the N mod G samples at the end of the (shuffled) sequence are left
out of that epoch and reported.

A resume is an offset into the sequence: after `step` batches of G, `consumed = step * G`.
Because the sequence does not depend on the topology, a resume with another world size or worker
count continues with exactly the samples not yet consumed, and the next epoch is the one any
topology would have had. If the global batch changes at a resume, the rest of the epoch is cut
into batches of the new G from the consumed offset (`EpochCursor.base_offset`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from webdataset.filters import _shuffle as wds_shuffle_stage

# Domain tags keep the generators of different streams independent for the same (seed, epoch).
_TAG_BLOCKS = 0
_TAG_CHUNKS = 1


def _check_seed(seed: int, epoch: int) -> None:
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed} epoch={epoch}")


def block_table(counts: Sequence[int], block_size: int) -> np.ndarray:
    """(num_blocks, 3) int64 array of (shard, first sample, end sample) covering every sample once."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    rows = []
    for shard, n in enumerate(counts):
        starts = np.arange(0, n, block_size, dtype=np.int64)
        ends = np.minimum(starts + block_size, n)
        rows.append(np.stack([np.full_like(starts, shard), starts, ends], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def sample_order(
    counts: Sequence[int], seed: int, epoch: int, block_size: int, shuffle_buffer: int
) -> tuple[np.ndarray, np.ndarray]:
    """The global sample sequence of an epoch: (shard index, sample index in shard) arrays.

    A function of (counts, seed, epoch, block_size, shuffle_buffer) only (the last two are the
    `LoaderSpec`'s); every sample appears exactly once.
    """
    _check_seed(seed, epoch)
    blocks = block_table(counts, block_size)
    perm = np.random.default_rng([seed, epoch, _TAG_BLOCKS]).permutation(len(blocks))
    blocks = blocks[perm]
    lengths = blocks[:, 2] - blocks[:, 1]
    total = int(lengths.sum())
    shard = np.repeat(blocks[:, 0], lengths)
    # Position inside each block, added to the block's first sample.
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    sample = np.repeat(blocks[:, 1], lengths) + (np.arange(total, dtype=np.int64) - first)
    if shuffle_buffer > 1 and total > 1:
        # A str seed goes through sha512 in `random.seed`, so it is the same in every process
        # whatever PYTHONHASHSEED is.
        rng = random.Random(f"babylm-loader/{seed}/{epoch}")
        stage = wds_shuffle_stage(iter(range(total)), bufsize=shuffle_buffer, initial=shuffle_buffer, rng=rng)
        order = np.fromiter(stage, dtype=np.int64, count=total)
        shard, sample = shard[order], sample[order]
    return shard.astype(np.int32), sample.astype(np.int64)


def chunk_order(num_chunks: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the token chunks in an epoch: a seeded full permutation (as the original)."""
    _check_seed(seed, epoch)
    return np.random.default_rng([seed, epoch, _TAG_CHUNKS]).permutation(num_chunks).astype(np.int64)


@dataclass
class EpochCursor:
    """Maps the steps of one epoch onto positions of its global sequence.

    Step s covers positions [base_offset + (s - base_step) * G, ... + G). A fresh epoch has
    base_offset = base_step = 0; a resume sets them to the consumed offset and step it resumed at.
    """

    num_items: int
    global_batch: int
    base_offset: int = 0
    base_step: int = 0

    def __post_init__(self) -> None:
        if self.global_batch < 1:
            raise ValueError(f"global batch must be >= 1, got {self.global_batch}")
        if not 0 <= self.base_offset <= self.num_items:
            raise ValueError(f"consumed offset {self.base_offset} outside the epoch of {self.num_items}")

    @property
    def steps(self) -> int:
        """Number of steps in this epoch, the same on every rank."""
        return self.base_step + (self.num_items - self.base_offset) // self.global_batch

    def consumed(self, step: int) -> int:
        """Positions of the sequence used by the first `step` steps."""
        return self.base_offset + (step - self.base_step) * self.global_batch

    @property
    def dropped(self) -> int:
        """Samples of the epoch that no step uses (fewer than one global batch)."""
        return self.num_items - self.consumed(self.steps)

    def rank_positions(self, step: int, rank: int, batch_size: int) -> np.ndarray:
        """Positions of the sequence that make up `rank`'s batch at `step`."""
        if not self.base_step <= step < self.steps:
            raise IndexError(f"step {step} outside [{self.base_step}, {self.steps})")
        start = self.consumed(step) + rank * batch_size
        return np.arange(start, start + batch_size, dtype=np.int64)


def worker_steps(start: int, end: int, worker: int, num_workers: int) -> range:
    """The steps worker `worker` of `num_workers` produces; the round-robin the DataLoader reads."""
    return range(start + worker, end, num_workers)
