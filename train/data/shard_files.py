"""The tar shards of one source, a reader per shard, chosen once when the source is made.

- Local shards (paths, `file://`): `babylm.shards.shard_reader.LocalShard`, `os.pread` per sample.
- Remote shards (`http(s)://`, `s3://`, anything fsspec knows): `BlockShard`, which reads whole
  order blocks through the scheduled prefetcher and the bounded block cache (`prefetch.py`); with
  `prefetch_batches=0`, `RangeShard`: one concurrent range request per sample, no cache.

Every read of a shard with a `.idx` index is checked against the sample's CRC-32C: a mismatch
makes that sample corrupt (skipped and counted), never a wrong picture; a block-cached sample
that fails is fetched again first (the cached copy may be what is damaged). A freshly downloaded
block whose checksums fail twice makes the loader look at the shard itself, so that a shard
replaced under a running job is an error naming it, not a trickle of "corrupt" samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from babylm.shards.access import fetch_range
from babylm.shards.errors import CorruptSample, ShardError
from babylm.shards.index_file import checksum
from babylm.shards.reader import ShardRef, is_remote
from babylm.shards.shard_index import default_cache_dir
from babylm.shards.shard_reader import RangeShard, ReadOptions, ShardReader, open_shard
from babylm.train.data.prefetch import BlockCache, BlockKey, Prefetcher
from babylm.train.data.spec import LoaderSpec


def read_options(spec: LoaderSpec) -> ReadOptions:
    """How the shards of a loader with `spec` are reached."""
    return ReadOptions(
        dict(spec.storage_options or {}),
        Path(spec.cache_dir) if spec.cache_dir is not None else default_cache_dir(),
        spec.fetch_retries,
        spec.fetch_timeout,
    )


class BlockShard(RangeShard):
    """A remote shard read an order block at a time (`block_size` consecutive samples, one ranged
    GET) through the process's prefetcher, which `prefetcher()` gives."""

    def __init__(
        self, ref: ShardRef, options: ReadOptions, number: int, block_size: int, prefetcher: Callable[[], Any]
    ):
        super().__init__(ref, options)
        self.number, self.block_size, self.prefetcher = number, block_size, prefetcher

    def __getstate__(self) -> dict[str, Any]:
        # The prefetcher is the process's: the unpickling ShardFiles hands its own.
        return {**super().__getstate__(), "number": self.number, "block_size": self.block_size}

    def block(self, sample: int) -> int:
        return sample // self.block_size

    def block_span(self, block: int) -> tuple[int, int, int, int]:
        """(first sample, last sample, start byte, end byte) of block number `block`."""
        ranges = self.index()
        first = block * self.block_size
        last = min(first + self.block_size, len(ranges)) - 1
        return first, last, int(ranges[first, 0]), int(ranges[last, 1])

    @classmethod
    def read_many(cls, readers: list[Any], samples: list[int]) -> list[bytes]:
        return [r.read_from_block(n) for r, n in zip(readers, samples, strict=True)]

    def read_from_block(self, n: int) -> bytes:
        start, end = self.index()[n].tolist()
        block = self.block(n)
        block_start = int(self.index()[block * self.block_size, 0])
        return os.pread(self.prefetcher().fd((self.number, block)), end - start, start - block_start)

    def read_again(self, sample: int) -> bytes | None:
        self.prefetcher().invalidate((self.number, self.block(sample)))
        return self.read_from_block(sample)

    def download(self, first: int, last: int, start: int, end: int) -> bytes:
        """One block's bytes, checked against the index's checksums (see the module docstring)."""
        ref = self.ref
        fs, path = self.ranges_fs()
        crcs = self.crcs()
        ranges = self.index()[first : last + 1] - start
        bad = 0
        for _ in range(2):
            try:
                data = fetch_range(fs, path, start, end, ref.url, self.options.fetch_retries)
            except FileNotFoundError as e:
                raise ShardError(f"{ref.url}: shard listed in the manifest is missing") from e
            if crcs is None:
                return data
            view = memoryview(data)
            bad = sum(
                checksum(view[s:e]) != c
                for (s, e), c in zip(ranges.tolist(), crcs[first : last + 1].tolist(), strict=True)
            )
            if not bad:
                return data
        size = self.size()
        if size != ref.bytes:
            raise ShardError(
                f"{ref.url}: shard changed under the running job: it is now {size} bytes, the manifest "
                f"says {ref.bytes}"
            )
        if bad * 2 > last + 1 - first:
            raise ShardError(
                f"{ref.url}: shard changed under the running job: {bad} of {last + 1 - first} samples in "
                f"bytes [{start}, {end}) differ from the checksums of its index"
            )
        return data  # a few damaged samples: counted as corrupt when read


class ShardFiles:
    """The shards of one source: one reader each, chosen by scheme and `prefetch_batches` when
    the source is made; handles are opened lazily in each process (descriptors, fsspec sessions
    and prefetch threads are not shared across fork; loaded indexes are, they are read-only)."""

    def __init__(self, shards: list[ShardRef], spec: LoaderSpec):
        self.shards = shards
        options = read_options(spec)
        self.cache_dir, self.cache_bytes = options.cache_dir, spec.cache_bytes
        self.block_size, self.prefetch_batches = spec.block_size, spec.prefetch_batches
        self.readers = [self._open(i, ref, options) for i, ref in enumerate(shards)]
        self._reset()

    def _open(self, i: int, ref: ShardRef, options: ReadOptions) -> ShardReader:
        if is_remote(ref.url) and self.prefetch_batches > 0:
            return BlockShard(ref, options, i, self.block_size, self._get_prefetcher)
        return open_shard(ref, options)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._prefetcher: Prefetcher | None = None

    def __getstate__(self) -> dict[str, Any]:
        keep = ("shards", "readers", "cache_dir", "cache_bytes", "block_size", "prefetch_batches")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for reader in self.readers:
            if isinstance(reader, BlockShard):
                reader.prefetcher = self._get_prefetcher
        self._reset()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked: the prefetcher's threads are the parent's
            self._reset()

    def index(self, i: int) -> np.ndarray:
        """(samples, 2) byte ranges of shard i."""
        return self.readers[i].index()

    def crcs(self, i: int) -> np.ndarray | None:
        """Per-sample CRC-32C of shard i (None: an older dataset without `.idx` files)."""
        return self.readers[i].crcs()

    def check(self) -> None:
        """Check every shard before anything is sized by its manifest counts (the epoch order
        is): plausible counts, local sizes, and each index read, validated and of the listed
        length (remote ones 8 at a time; they land in the disk cache the workers read)."""
        for reader in self.readers:
            if reader.remote:
                reader.check_counts()
            else:
                reader.check()
        remote = [r for r in self.readers if r.remote]
        if remote:
            with ThreadPoolExecutor(min(8, len(remote)), thread_name_prefix="babylm-index") as pool:
                for _ in pool.map(lambda r: r.index(), remote):
                    pass

    # -- the block prefetcher ------------------------------------------------------------------

    def will_read(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """This process's upcoming batches, (shard ids, sample ids) each: prefetch their blocks."""
        if not any(isinstance(r, BlockShard) for r in self.readers):
            return
        size = self.block_size
        keys = (
            list(dict.fromkeys((s, n // size) for s, n in zip(sh.tolist(), sa.tolist(), strict=True)))
            for sh, sa in batches
        )
        self._get_prefetcher().schedule(keys)

    def _get_prefetcher(self) -> Prefetcher:
        self._check_process()
        if self._prefetcher is None:
            cache = BlockCache(self.cache_dir / "blocks", self.cache_bytes)
            verify = lambda key: self.crcs(key[0]) is None  # noqa: E731
            self._prefetcher = Prefetcher(cache, self._locate, self.prefetch_batches, verify)
        return self._prefetcher

    def _locate(self, key: BlockKey) -> tuple[Path, Any, str]:
        """Cache path, downloader and name of block `key` (the epoch order's block: one byte run)."""
        shard, block = key
        reader = self.readers[shard]
        assert isinstance(reader, BlockShard)
        first, last, start, end = reader.block_span(block)
        cache = self._get_prefetcher().cache
        return (
            cache.path(reader.ref.sha256, start, end),
            lambda: reader.download(first, last, start, end),
            reader.ref.url,
        )

    # -- reading -------------------------------------------------------------------------------

    def read_samples(self, shard_ids: list[int], sample_ids: list[int]) -> list[bytes | CorruptSample]:
        """The bytes of the given samples, in the order asked; a checksum mismatch gives a
        CorruptSample in that place (after fetching a cached block again, if it came from one).
        Each kind of reader reads its part of the batch in one call."""
        self._check_process()
        readers = [self.readers[i] for i in shard_ids]
        out: list[Any] = [None] * len(shard_ids)
        by_kind: dict[type, list[int]] = {}
        for j, reader in enumerate(readers):
            by_kind.setdefault(type(reader), []).append(j)
        for kind, js in by_kind.items():
            data = kind.read_many([readers[j] for j in js], [sample_ids[j] for j in js])
            for j, d in zip(js, data, strict=True):
                out[j] = d
        if self._prefetcher is not None:
            self._prefetcher.advance()
        return [r.verified(n, d) for r, n, d in zip(readers, sample_ids, out, strict=True)]

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        if self._prefetcher is not None and self._pid == os.getpid():
            self._prefetcher.close()
        self._reset()
