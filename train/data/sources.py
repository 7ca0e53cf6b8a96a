"""Data sources of the loader: one per stream kind, each with the same small interface.

A source knows its number of items per epoch (`num_items`: samples, or token chunks), the
settings that fix its order (`order_settings()`, the loader state's "plan"), the epoch order
(`order(seed, epoch)`, computed once per epoch in the rank's main process and inherited by the
forked workers), how to assemble the batch at given positions of that order (`batch`, run in
the workers, as a `LoaderBatch`) and what to add to it in the consumer process (`finish`). `make_source` resolves dataset locations into a source. The interface is `spec.Source`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from babylm.shards import open_dataset
from babylm.shards.reader import ShardRef, fingerprint
from babylm.shards.tar_samples import parse_sample
from babylm.train.data.collate import SampleCollate
from babylm.train.data.contract import LoaderBatch
from babylm.train.data.order import chunk_order, sample_order
from babylm.train.data.shard_files import ShardFiles
from babylm.train.data.spec import LoaderSpec, Source
from babylm.train.data.tokens import TokenShards
from babylm.train.errors import DataError


@functools.lru_cache(maxsize=2)
def _cached_sample_order(counts: tuple[int, ...], seed: int, epoch: int, block: int, buffer: int):
    return sample_order(counts, seed, epoch, block, buffer)


class TarSource:
    """image_text / features tar shards: epoch order and batch assembly by byte-range reads."""

    def __init__(self, shards: list[ShardRef], collate: SampleCollate, spec: LoaderSpec):
        self.kind = collate.kind
        self.collate = collate
        self.counts = tuple(s.samples for s in shards)
        self.num_items = sum(self.counts)
        self.block_size = spec.block_size
        self.shuffle_buffer = spec.shuffle_buffer
        self.files = ShardFiles(shards, spec)
        self.files.check()  # before `order` sizes anything by the manifest's counts
        self.fingerprint = fingerprint(shards)

    @property
    def has_words(self) -> bool:
        """Whether batches carry `words` (every shard was written with word counts)."""
        return self.collate.count_words

    def order_settings(self) -> dict[str, Any]:
        return {"block_size": self.block_size, "shuffle_buffer": self.shuffle_buffer}

    def order(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        return _cached_sample_order(self.counts, seed, epoch, self.block_size, self.shuffle_buffer)

    def will_read(self, order: tuple[np.ndarray, np.ndarray], positions: Iterable[np.ndarray]) -> None:
        self.files.will_read((order[0][p], order[1][p]) for p in positions)

    def batch(self, order: tuple[np.ndarray, np.ndarray], positions: np.ndarray) -> LoaderBatch:
        shard_ids, sample_ids = order[0][positions].tolist(), order[1][positions].tolist()
        chunks = self.files.read_samples(shard_ids, sample_ids)
        raws: list[dict[str, Any] | Exception] = []
        for shard, chunk in zip(shard_ids, chunks, strict=True):
            if isinstance(chunk, Exception):  # failed its checksum
                raws.append(chunk)
                continue
            try:
                raws.append(parse_sample(chunk, self.files.shards[shard].url))
            except ValueError as e:  # a damaged header inside the sample's range
                raws.append(e)
        out, bad = self.collate(raws)
        out.corrupt = [
            {"shard": self.files.shards[shard_ids[j]].url, "index": sample_ids[j], "error": reason}
            for j, reason in bad
        ]
        return out

    def finish(self, batch: LoaderBatch) -> LoaderBatch:
        return batch


class TokenChunks:
    """tokens shards: chunk permutation per epoch, chunks cut from the memory-mapped stream."""

    kind = "tokens"

    def __init__(self, shards: TokenShards, fingerprint_: str):
        self.shards = shards
        self.num_items = shards.num_chunks
        self.fingerprint = fingerprint_
        self.has_words = shards.has_words

    def order_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"seq_len": self.shards.seq_len}
        if self.shards.chunking != "stream":  # absent for stream, so older loader states still resume
            settings["chunking"] = self.shards.chunking
        return settings

    def order(self, seed: int, epoch: int) -> np.ndarray:
        return chunk_order(self.num_items, seed, epoch)

    def will_read(self, order: np.ndarray, positions: Iterable[np.ndarray]) -> None:
        pass  # token shards are memory-mapped (local) or read whole (remote) already

    def batch(self, order: np.ndarray, positions: np.ndarray) -> LoaderBatch:
        out = self.shards.batch(order[positions])
        return LoaderBatch({"input_ids": out["input_ids"]}, out["keys"], words=out.get("words"))

    def finish(self, batch: LoaderBatch) -> LoaderBatch:
        # labels = input_ids, copied here in the consumer: moving a second tensor out of a
        # worker costs more (a shared-memory segment each) than this copy.
        batch.inputs["labels"] = batch.inputs["input_ids"].clone()
        return batch


def _locations(location: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(location, (str, os.PathLike)):
        return [str(location)]
    return [str(x) for x in location]


def _vocab_bound(tokenizer: Any) -> int | None:
    """Token ids the tokenizer can produce are below this (None: no tokenizer object to ask)."""
    try:
        return (
            len(tokenizer)
            if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike))
            else None
        )
    except TypeError:
        return None


def make_source(
    location: str | os.PathLike | Sequence[str | os.PathLike],
    spec: LoaderSpec,
    *,
    kind: str | None = None,
    tokenizer: Any = None,
) -> Source:
    """The data source of one stream: the datasets at `location`, all of one kind."""
    datasets = [
        open_dataset(loc, spec.storage_options, spec.fetch_timeout, spec.fetch_retries)
        for loc in _locations(location)
    ]
    kinds = {d.kind for d in datasets}
    if len(kinds) != 1 or (kind is not None and kinds != {kind}):
        raise DataError(
            f"datasets {', '.join(d.location for d in datasets)} are {'/'.join(sorted(kinds))}; "
            f"pass {kind or 'one kind of'} datasets only"
        )
    found = kinds.pop()
    entries = [(d, e) for d in datasets for e in d.manifest.shards]
    if found == "tokens":
        refs = [d.shard_ref(e) for d, e in entries]
        return TokenChunks(TokenShards(refs, spec, _vocab_bound(tokenizer)), fingerprint(refs))
    collate = SampleCollate(found, tokenizer, spec)
    collate.count_words = all(e.words is not None for _, e in entries)
    return TarSource([d.shard_ref(e) for d, e in entries], collate, spec)
