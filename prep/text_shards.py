"""Token shards written a batch of rows at a time.

`RollingWriter`/`ArrowShardWriter` take one row per call; at tens of millions of lines the
per-row Python work would cost as much as tokenizing. These subclasses take a whole tokenized
batch (row lengths + concatenated ids) and write the same bytes: record batches of exactly
`ARROW_BATCH_ROWS` rows with int32 offsets, so a shard does not depend on how rows arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from babylm.shards import ArrowShardWriter, RollingWriter
from babylm.shards.writer import ARROW_BATCH_ROWS


class BatchArrowShard(ArrowShardWriter):
    """An Arrow token shard that also accepts many rows at once (`write_rows`)."""

    def __init__(self, out_dir: Any, name: str, vocab_size: int):
        super().__init__(out_dir, name, vocab_size)
        self._lengths: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._pending = 0

    def write_rows(self, lengths: np.ndarray, values: np.ndarray) -> None:
        """Append rows: `lengths[i]` ids each, taken in order from `values`."""
        if len(lengths) == 0:
            return
        if values.size and int(values.max()) >= self.vocab_size:
            raise ValueError(f"token id out of range [0, {self.vocab_size}) in shard {self.name}")
        self._lengths.append(np.asarray(lengths, dtype=np.int64))
        self._values.append(values.astype(self.dtype, copy=False))
        self._pending += len(lengths)
        self.samples += len(lengths)
        self.tokens = (self.tokens or 0) + int(values.size)
        if self._pending >= ARROW_BATCH_ROWS:
            self._flush_batches(final=False)

    def _flush_batches(self, final: bool) -> None:
        if not self._pending:
            return
        lengths = np.concatenate(self._lengths)
        values = np.concatenate(self._values)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        start = 0
        while len(lengths) - start >= ARROW_BATCH_ROWS or (final and start < len(lengths)):
            stop = min(start + ARROW_BATCH_ROWS, len(lengths))
            off = (offsets[start : stop + 1] - offsets[start]).astype(np.int32)
            vals = values[offsets[start] : offsets[stop]]
            column = pa.ListArray.from_arrays(pa.array(off), pa.array(vals))
            self._ipc.write_batch(pa.record_batch([column], schema=self.schema))
            start = stop
        self._lengths = [lengths[start:]] if start < len(lengths) else []
        self._values = [values[offsets[start] :]] if start < len(lengths) else []
        self._pending = len(lengths) - start

    def _finish_payload(self) -> None:
        if self._rows:
            raise RuntimeError("BatchArrowShard: do not mix write() and write_rows()")
        self._flush_batches(final=True)
        self._ipc.close()


class TokenShardWriter(RollingWriter):
    """A `RollingWriter` of Arrow token shards fed whole batches; shards roll every `max_samples`
    rows, and each closed shard carries the meta that `meta_at(row)` gives for its last row."""

    def __init__(self, out_dir: Any, vocab_size: int, max_samples: int, prefix: str = "shard"):
        super().__init__(out_dir, "arrow", prefix=prefix, max_samples=max_samples, vocab_size=vocab_size)

    def _open(self) -> BatchArrowShard:  # type: ignore[override]
        return BatchArrowShard(self.out_dir, self.shard_name(len(self.entries)), self.vocab_size or 0)

    def write_rows(
        self, lengths: np.ndarray, values: np.ndarray, meta_at: Callable[[int], dict[str, Any]]
    ) -> None:
        """Write a batch of rows; where a shard fills up, close it with `meta_at(last row in it)`."""
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        row = 0
        while row < len(lengths):
            if self._current is None:
                self._current = self._open()
            shard = self._current
            assert isinstance(shard, BatchArrowShard)
            take = min(self.max_samples - shard.samples, len(lengths) - row)
            shard.write_rows(lengths[row : row + take], values[offsets[row] : offsets[row + take]])
            row += take
            if shard.samples >= self.max_samples:
                self.meta = meta_at(row - 1)
                self.roll()
