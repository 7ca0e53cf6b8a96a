"""`RollingWriter`: samples into numbered shards (`PREFIX-000000.tar`, ...), a new one at a
sample count or byte size, resuming after the complete shards an interrupted run left."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from babylm.shards.manifest import ShardEntry
from babylm.shards.writer import ArrowShardWriter, TarShardWriter, read_entry


class RollingWriter:
    """Writes samples into numbered shards, starting a new one at a sample count or byte size.

    Reopened on a folder that holds complete shards from an interrupted run, it starts after them:
    `completed` lists their entries (with the `meta` each was closed with), so the caller can skip
    the input they cover. Rollover is deterministic for the same input, so a resumed run writes the
    same shards as an uninterrupted one.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        kind: str,
        prefix: str = "shard",
        max_samples: int = 10_000,
        max_bytes: int | None = None,
        vocab_size: int | None = None,
        resume: bool = True,
    ):
        if kind not in ("tar", "arrow"):
            raise ValueError(f"kind must be 'tar' or 'arrow', got {kind!r}")
        if kind == "arrow" and vocab_size is None:
            raise ValueError("arrow shards need vocab_size")
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.prefix = prefix
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.vocab_size = vocab_size
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(self.out_dir)
        self.completed: list[ShardEntry] = complete_shards(self.out_dir, self._name_re()) if resume else []
        self.entries: list[ShardEntry] = list(self.completed)
        # Meta for the shard being written; attached to it when it closes, then reset.
        self.meta: dict[str, Any] = {}
        self._current: TarShardWriter | ArrowShardWriter | None = None

    def _name_re(self) -> re.Pattern:
        ext = "tar" if self.kind == "tar" else "arrow"
        return re.compile(rf"{re.escape(self.prefix)}-(\d{{6}})\.{ext}")

    def shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.{'tar' if self.kind == 'tar' else 'arrow'}"

    def _open(self) -> TarShardWriter | ArrowShardWriter:
        name = self.shard_name(len(self.entries))
        if self.kind == "tar":
            return TarShardWriter(self.out_dir, name)
        return ArrowShardWriter(self.out_dir, name, self.vocab_size or 0)

    def write(self, sample: Any, words: int | None = None) -> None:
        """One sample: a tar sample dict, or an arrow row's ids with the `words` of its line."""
        if self._current is None:
            self._current = self._open()
        if isinstance(self._current, ArrowShardWriter):
            if words is None:
                raise ValueError("arrow rows need the word count of their line (words=...)")
            self._current.write(sample, words)
        else:
            self._current.write(sample)
        size = (
            self._current.bytes_pending
            if isinstance(self._current, ArrowShardWriter)
            else self._current.bytes_written
        )
        if self._current.samples >= self.max_samples or (self.max_bytes and size >= self.max_bytes):
            self.roll()

    def write_rows(
        self,
        lengths: np.ndarray,
        values: np.ndarray,
        words: np.ndarray,
        meta_at: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        """Arrow only: write a batch of rows (`lengths[i]` ids each, in order from `values`, and
        `words[i]` words of the line each came from).

        Shards still roll every `max_samples` rows; a shard that fills up here is closed with
        `meta_at(index of its last row in this batch)` as its meta, when given.
        """
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        row = 0
        while row < len(lengths):
            if self._current is None:
                self._current = self._open()
            shard = self._current
            assert isinstance(shard, ArrowShardWriter), "write_rows is for arrow shards"
            take = min(self.max_samples - shard.samples, len(lengths) - row)
            shard.write_rows(
                lengths[row : row + take], values[offsets[row] : offsets[row + take]], words[row : row + take]
            )
            row += take
            if shard.samples >= self.max_samples:
                if meta_at is not None:
                    self.meta = meta_at(row - 1)
                self.roll()

    def roll(self) -> None:
        """Close the current shard now (if it has samples)."""
        if self._current is None or self._current.samples == 0:
            return
        self._current.meta = dict(self.meta)
        self.entries.append(self._current.close())
        self._current = None
        self.meta = {}

    def close(self) -> list[ShardEntry]:
        """Complete the last shard and return the entries of all shards, resumed ones first."""
        self.roll()
        if self._current is not None:
            self._current.abort()
            self._current = None
        return self.entries

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def remove_partials(out_dir: str | os.PathLike) -> None:
    """Delete temporary files left by a killed writer."""
    for p in Path(out_dir).glob(".*.tmp"):
        p.unlink(missing_ok=True)


def complete_shards(out_dir: str | os.PathLike, pattern: re.Pattern) -> list[ShardEntry]:
    """Entries of the complete shards named by `pattern`, contiguous from index 0."""
    found: dict[int, str] = {}
    for p in Path(out_dir).iterdir():
        m = pattern.fullmatch(p.name)
        if m:
            found[int(m.group(1))] = p.name
    entries = []
    for i in range(len(found)):
        entry = read_entry(out_dir, found[i]) if i in found else None
        if entry is None:
            break
        entries.append(entry)
    return entries
