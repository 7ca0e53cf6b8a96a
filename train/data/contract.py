"""What the trainer and a loader promise each other: `TrainLoader`, the interface every loader
implements (`ShardLoader` for one stream, `PairedLoader` for caption + text), and `LoaderBatch`,
one stream's batch.

A loader yields `{stream: LoaderBatch}` per step, for one stream too, so the trainer never tells
one-stream and paired loaders apart. A `LoaderBatch` keeps the model's inputs (`inputs`, exactly
what the model is called with) apart from what travels beside them: the sample keys, the captions,
the words seen, and the worker's bookkeeping (step, undecodable samples, buffer slot), which the
loader takes off before it hands the batch out.

This module imports no torch at run time (only for type hints).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@dataclass
class LoaderBatch:
    """One stream's batch: built by the collate in a worker, unpacked by the loader.

    - `inputs`: the model inputs and nothing else (`input_ids`, `labels`, and as the stream has
      them `attention_mask`, `pixel_values` uint8 (B, 3, S, S), `image_embeds`);
    - `keys`: the sample keys (token chunk ids for tokens), in batch order;
    - `captions`: the caption strings (None for tokens);
    - `words`: words of the kept samples (None when the data has no word counts);
    - `step`, `corrupt`, `slot`: the worker's bookkeeping (the epoch step, the samples left out as
      undecodable as {"shard", "index", "error"}, the buffer ring slot or -1), read by the loader.
    """

    inputs: dict[str, torch.Tensor]
    keys: list[Any]
    captions: list[str] | None = None
    words: int | None = None
    step: int = -1
    corrupt: list[dict[str, Any]] = field(default_factory=list)
    slot: int = -1

    def pin_memory(self) -> LoaderBatch:
        """The batch with its tensors in page-locked memory (what DataLoader's `pin_memory=True`
        calls on a worker's output)."""
        from torch.utils.data._utils.pin_memory import pin_memory

        self.inputs = pin_memory(self.inputs)
        return self


@runtime_checkable
class TrainLoader(Protocol):
    """One rank's batches, as the trainer uses them. Iterating yields the rest of the current
    epoch, one `{stream: LoaderBatch}` per step (a key per name in `streams`), then moves to the
    next epoch. `state_dict()` taken after a step resumes right after it."""

    streams: tuple[str, ...]  # the stream names, in the order the trainer weighs their losses

    @property
    def steps_per_epoch(self) -> int:
        """Steps of the current epoch, equal on every rank."""
        ...

    @property
    def samples_per_epoch(self) -> dict[str, int]:
        """Samples (token chunks for tokens) in one epoch of each stream."""
        ...

    @property
    def skipped(self) -> int:
        """Undecodable samples this rank has left out so far, over all streams."""
        ...

    @property
    def has_words(self) -> bool:
        """Whether every batch carries `words` (all the data has prep's word counts)."""
        ...

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch`; a resumed position in that epoch is kept."""
        ...

    def __iter__(self) -> Iterator[dict[str, LoaderBatch]]: ...

    def state_dict(self) -> dict[str, Any]:
        """Position and counters: what `load_state_dict` needs to continue exactly."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (any world size and worker count)."""
        ...
