"""One caption batch and one text batch per step, as the original multimodal training did.

The epoch is the longer of the two streams (in steps per epoch). The shorter one runs on as an
endless sequence of its own epochs ("passes"), each a fresh reshuffle by (seed, pass): when a pass
ends in the middle of a paired epoch, the next pass starts at the next step. Both children keep
their own exact position, so `state_dict()` is just the two child states and a resume (with any
topology) continues both streams where they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babylm.train.data.contract import LoaderBatch
    from babylm.train.data.loader import ShardLoader


class PairedLoader:
    """Yields {"caption": caption batch, "text": tokens batch} per step (a `TrainLoader`)."""

    streams = ("caption", "text")

    def __init__(self, caption: ShardLoader, text: ShardLoader):
        for name, child in (("caption", caption), ("text", text)):
            if child.steps_per_epoch == 0:
                raise ValueError(
                    f"the {name} stream has {child.num_samples} items, fewer than one global batch "
                    f"of {child.global_batch}: no step can be made"
                )
        self.caption = caption
        self.text = text
        longer_caption = caption.steps_per_epoch >= text.steps_per_epoch
        self.long, self.short = (caption, text) if longer_caption else (text, caption)

    @property
    def epoch(self) -> int:
        return self.long.epoch

    @property
    def step(self) -> int:
        return self.long.step

    @property
    def samples_per_epoch(self) -> dict[str, int]:
        return {"caption": self.caption.num_samples, "text": self.text.num_samples}

    @property
    def skipped(self) -> int:
        """Undecodable samples both streams have left out so far."""
        return self.caption.skipped + self.text.skipped

    @property
    def has_words(self) -> bool:
        return self.caption.has_words and self.text.has_words

    @property
    def steps_per_epoch(self) -> int:
        """Steps of the current epoch: those of the longer stream."""
        return self.long.steps_per_epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def dropped_per_epoch(self) -> dict[str, int]:
        return {"caption": self.caption.dropped_per_epoch, "text": self.text.dropped_per_epoch}

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch` (kept if already there); the shorter stream is placed where an
        uninterrupted run with this global batch would have it."""
        if epoch == self.long.epoch:
            return
        self.long.set_epoch(epoch)
        done = epoch * (self.long.num_samples // self.long.global_batch)
        per_pass = self.short.num_samples // self.short.global_batch
        self.short.seek(done // per_pass, done % per_pass)

    def _short_stream(self) -> Iterator[LoaderBatch]:
        while True:
            it = self.short.batches()
            try:
                yield from it
            finally:
                it.close()

    def __iter__(self) -> Iterator[dict[str, LoaderBatch]]:
        long, short = self.long.batches(), self._short_stream()
        try:
            for long_batch in long:
                short_batch = next(short)
                if self.long is self.caption:
                    yield {"caption": long_batch, "text": short_batch}
                else:
                    yield {"caption": short_batch, "text": long_batch}
        finally:
            short.close()
            long.close()

    def state_dict(self) -> dict[str, Any]:
        return {"paired": True, "caption": self.caption.state_dict(), "text": self.text.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.caption.load_state_dict(state["caption"])
        self.text.load_state_dict(state["text"])
