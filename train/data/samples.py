"""Which samples each rank gets at each step, read from the trainer's own loader.

For debugging a loss spike (which data did rank 3 see at step 1200?) and for checking coverage by
hand (`babylm-train samples`, in train/cli_samples.py). Every rank's loader is built in this one
process with `rank=r, world_size=R` -- the code a torchrun rank runs -- and the batches are read
for real, so undecodable samples are left out exactly as in training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from babylm.train.data.spec import LoaderSpec

if TYPE_CHECKING:
    from babylm.train.data.loader import ShardLoader


def rank_loaders(locations: list[str], spec: LoaderSpec, world_size: int) -> list[ShardLoader]:
    """The loader of every rank of a `world_size`-rank run, built as each rank builds its own."""
    from babylm.train.data.loader import build_loader

    return [
        cast("ShardLoader", build_loader(locations, spec, world_size=world_size, rank=rank))
        for rank in range(world_size)
    ]


def seek(loaders: list[ShardLoader], epoch: int, start_step: int) -> None:
    """Put every loader where the trainer's resume path puts it: a saved state at (epoch, start_step)."""
    for loader in loaders:
        state = loader.state_dict()
        state.update(epoch=epoch, step=start_step, consumed=start_step * loader.global_batch)
        loader.load_state_dict(state)


def summary(loader: ShardLoader) -> str:
    """One line on the epoch's size: items, steps, global batch and what is left out."""
    return (
        f"{loader.kind}: {loader.num_samples} items, {loader.steps_per_epoch} steps per epoch of "
        f"global batch {loader.global_batch}, {loader.dropped_per_epoch} left out per epoch"
    )


def sample_lines(
    loaders: list[ShardLoader], epoch: int, start_step: int, end: int
) -> Iterator[dict[str, Any]]:
    """One {"epoch", "step", "rank", "keys"} record per step in [start_step, end) and rank.

    When `end` is the epoch's end, each loader is then run to it, where training checks the
    corrupt fraction (and raises as training would).
    """
    iterators = [loader.batches() for loader in loaders]
    try:
        for step in range(start_step, end):
            for rank, it in enumerate(iterators):
                batch = next(it)
                yield {"epoch": epoch, "step": step, "rank": rank, "keys": batch.keys}
        if end == loaders[0].steps_per_epoch:
            for it in iterators:
                for _ in it:
                    raise RuntimeError("a loader yielded more batches than its steps per epoch")
    finally:
        for it in iterators:
            it.close()
