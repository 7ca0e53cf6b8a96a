"""Per-process access to tar shards: size check, tar indexes, sample reads with checksums.

- Local shards (paths, `file://`) are read with `os.pread`, one call per sample.
- Remote shards (`http(s)://`, `s3://`, anything fsspec knows) are read in blocks through the
  plan-driven prefetcher and the bounded block cache (`prefetch.py`); `prefetch_batches=0` turns
  that off and reads one concurrent range request per sample, as before.
- Every read of a shard with a `.idx` index is checked against the sample's CRC-32C: a mismatch
  makes that sample corrupt (skipped and counted), never a wrong picture. A freshly downloaded
  block whose checksums fail twice makes the loader look at the shard itself, so that a shard
  replaced under a running job is an error naming it, not a trickle of "corrupt" samples.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from babylm.shards.access import fsspec_options, open_regular, read_local, regular_size, remote_size
from babylm.shards.atomic import atomic_write_bytes
from babylm.shards.errors import ShardsError
from babylm.shards.manifest import MIN_TAR_SAMPLE_BYTES
from babylm.shards.reader import is_remote
from babylm.shards.tar_index import (
    TarIndexError,
    check_ranges,
    checksum,
    decode_index,
    index_path,
    index_size,
    sha256_hex,
)
from babylm.shards.tar_scan import TarScanError, build_tar_index
from babylm.train.data.prefetch import BlockCache, BlockKey, PlainHttp, Prefetcher, fetch_range, flock
from babylm.train.data.tar_index import (
    CorruptSample,
    ShardError,
    ShardRef,
    default_cache_dir,
    load_or_scan,
)

_DEFAULT_CACHE_BYTES = 4 << 30


class ShardFiles:
    """The shards of one source, opened lazily in each process (descriptors, fsspec sessions and
    prefetch threads are not shared across fork; loaded indexes are, they are read-only)."""

    def __init__(
        self,
        shards: list[ShardRef],
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        *,
        block_size: int = 128,
        cache_bytes: int = _DEFAULT_CACHE_BYTES,
        prefetch_batches: int = 8,
        fetch_retries: int = 4,
        fetch_timeout: float = 60.0,
    ):
        self.shards = shards
        self.storage_options = dict(storage_options or {})
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.block_size, self.cache_bytes = block_size, cache_bytes
        self.prefetch_batches, self.fetch_retries, self.fetch_timeout = (
            prefetch_batches,
            fetch_retries,
            fetch_timeout,
        )
        self._indexes: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._fds: dict[int, int] = {}
        self._fs: dict[int, tuple[Any, str]] = {}
        self._prefetcher: Prefetcher | None = None

    _PICKLED = ("shards", "storage_options", "cache_dir", "block_size", "cache_bytes", "prefetch_batches")

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in (*self._PICKLED, "fetch_retries", "fetch_timeout")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._indexes = {}
        self._reset()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked: descriptors, sessions and threads are the parent's
            self._reset()

    def remote(self, i: int) -> bool:
        return is_remote(self.shards[i].url)

    # -- opening -------------------------------------------------------------------------------

    def fs(self, i: int) -> tuple[Any, str]:
        """(fsspec filesystem, path) of remote shard i, made once per process."""
        self._check_process()
        if i not in self._fs:
            import fsspec

            # A total timeout per HTTP request (aiohttp's default is 5 minutes): a stalled or
            # trickling server costs one retry, not that.
            url = self.shards[i].url
            options = fsspec_options(url, self.storage_options, self.fetch_timeout)
            self._fs[i] = fsspec.core.url_to_fs(url, **options)
        return self._fs[i]

    def ranges_fs(self, i: int) -> tuple[Any, str]:
        """What block and index downloads go through: `PlainHttp` for plain http(s) shards (less
        CPU per byte), the fsspec filesystem otherwise (S3, or HTTP with storage options)."""
        url = self.shards[i].url
        if url.startswith(("http://", "https://")) and not self.storage_options:
            return PlainHttp(self.fetch_timeout), url
        return self.fs(i)

    def remote_size(self, i: int) -> int:
        url = self.shards[i].url
        try:
            size = remote_size(url, self.storage_options, self.fetch_timeout)
        except ShardsError as e:  # names the URL and the status
            raise ShardError(f"cannot get the size of a shard: {e}") from e
        except Exception as e:  # noqa: BLE001 - any client failure: one error naming the shard
            raise ShardError(f"{url}: cannot get its size: {type(e).__name__}: {e}") from e
        if size is None:
            raise ShardError(f"{url}: shard listed in the manifest is missing")
        return size

    def _fd(self, i: int) -> int:
        self._check_process()
        if i not in self._fds:
            ref = self.shards[i]
            path = ref.url[7:] if ref.url.startswith("file://") else ref.url
            try:
                f = open_regular(path)
            except FileNotFoundError as e:
                raise ShardError(f"{ref.url}: shard listed in the manifest is missing") from e
            except (ShardsError, OSError) as e:
                raise ShardError(f"{ref.url}: cannot open the shard: {e}") from e
            fd = os.dup(f.fileno())
            f.close()
            try:
                self._check_size(i, os.fstat(fd).st_size)
            except ShardError:
                os.close(fd)
                raise
            self._fds[i] = fd
        return self._fds[i]

    def _check_size(self, i: int, size: int) -> None:
        ref = self.shards[i]
        if size != ref.bytes:
            raise ShardError(
                f"{ref.url}: shard is {size} bytes but the manifest says {ref.bytes}; "
                "it was changed or truncated after prep (run `babylm-prep verify`)"
            )

    # -- indexes -------------------------------------------------------------------------------

    def index(self, i: int) -> np.ndarray:
        """(samples, 2) byte ranges of shard i."""
        return self._index(i)[0]

    def crcs(self, i: int) -> np.ndarray | None:
        """Per-sample CRC-32C of shard i (None: an older dataset without `.idx` files)."""
        return self._index(i)[1]

    def check(self) -> None:
        """Check every shard before anything is sized by its manifest counts (the epoch plan
        is): plausible counts, local sizes, and each index read, validated and of the listed
        length (remote ones 8 at a time; they land in the disk cache the workers read)."""
        for i, ref in enumerate(self.shards):
            if ref.samples * MIN_TAR_SAMPLE_BYTES > ref.bytes:
                raise ShardError(
                    f"{ref.url}: the manifest lists {ref.samples} samples, more than a tar of "
                    f"{ref.bytes} bytes can hold (forged or damaged manifest)"
                )
            if not self.remote(i):  # the file's size against the manifest's (remote: the index's)
                self._check_local_size(i)
                self._index(i)
        remote = [i for i in range(len(self.shards)) if self.remote(i)]
        if remote:
            with ThreadPoolExecutor(min(8, len(remote)), thread_name_prefix="babylm-index") as pool:
                for _ in pool.map(self._index, remote):
                    pass

    def _check_local_size(self, i: int) -> None:
        ref = self.shards[i]
        path = ref.url[7:] if ref.url.startswith("file://") else ref.url
        try:
            size = regular_size(path)
        except ShardsError as e:
            raise ShardError(f"{ref.url}: cannot open the shard: {e}") from e
        if size is None:
            raise ShardError(f"{ref.url}: shard listed in the manifest is missing")
        self._check_size(i, size)

    def _index(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i not in self._indexes:
            ref = self.shards[i]
            found = self._read_index_file(i)
            if found is not None:
                ranges, crcs = found
            else:
                if self.remote(i):
                    self._check_size(i, self.remote_size(i))
                ranges, crcs = load_or_scan(ref, self.cache_dir, lambda: self._scan(i)), None
            if len(ranges) != ref.samples:
                raise ShardError(
                    f"{ref.url}: tar holds {len(ranges)} samples but the manifest says {ref.samples}"
                )
            self._indexes[i] = (ranges, crcs)
        return self._indexes[i]

    def _read_index_file(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The shard's `.idx`: the one the manifest lists, else one found by name, else None."""
        ref = self.shards[i]
        url = ref.index_url or index_path(ref.url)
        data = self._fetch_index(i, url)
        if data is None:
            if ref.index_url:
                raise ShardError(f"{url}: tar index listed in the manifest is missing")
            return None
        if ref.index_sha256 and sha256_hex(data) != ref.index_sha256:
            raise ShardError(
                f"{url}: tar index differs from the manifest (sha256); was it changed after prep?"
            )
        try:
            index = decode_index(data, url)
        except TarIndexError as e:
            raise ShardError(str(e)) from e
        if (index.shard_bytes, index.shard_sha256) != (ref.bytes, ref.sha256):
            if ref.index_url:
                raise ShardError(f"{url}: tar index describes another shard than {ref.url}")
            return None  # a stray file of that name: not ours
        return index.ranges, index.crcs

    def _fetch_index(self, i: int, url: str) -> bytes | None:
        """Index bytes; remote ones go through the disk cache (one download per machine)."""
        ref = self.shards[i]
        size = index_size(ref.samples)  # what an index of this shard must have: read no more
        if not self.remote(i):
            path = url[7:] if url.startswith("file://") else url
            try:
                return read_local(path, size)
            except FileNotFoundError:
                return None
            except (ShardsError, OSError) as e:
                raise ShardError(f"{url}: cannot read the tar index: {e}") from e
        cached = self.cache_dir / "tar-index" / f"{ref.sha256}-{ref.bytes}.idx"
        with contextlib.suppress(FileNotFoundError, ShardsError):
            return read_local(cached, size)
        cached.parent.mkdir(parents=True, exist_ok=True)
        # The workers of a rank start together: the lock makes them wait for one download.
        with open(cached.with_suffix(".lock"), "a+b") as lock:
            flock(lock)
            with contextlib.suppress(FileNotFoundError, ShardsError):
                return read_local(cached, size)
            fs, _ = self.ranges_fs(i)
            path = url if isinstance(fs, PlainHttp) else fs._strip_protocol(url)
            try:
                data = fetch_range(fs, path, 0, size, url, self.fetch_retries)
            except FileNotFoundError:
                return None
            atomic_write_bytes(cached, data)
        return data

    def _scan(self, i: int) -> np.ndarray:
        ref = self.shards[i]
        try:
            if not self.remote(i):
                with os.fdopen(os.dup(self._fd(i)), "rb") as f:
                    ranges = build_tar_index(f, ref.url)
            else:
                fs, path = self.fs(i)
                with fs.open(path, "rb", block_size=8 << 20, cache_type="readahead") as f:
                    ranges = build_tar_index(f, ref.url)
            check_ranges(ranges, ref.bytes, ref.url)  # a member header declaring more than the tar has
        except (TarScanError, TarIndexError) as e:
            raise ShardError(str(e)) from e
        return ranges

    # -- reading -------------------------------------------------------------------------------

    def _use_blocks(self, i: int) -> bool:
        return self.prefetch_batches > 0 and self.remote(i)

    def _block_key(self, shard: int, sample: int) -> BlockKey:
        return shard, sample // self.block_size

    def will_read(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """This process's upcoming batches, (shard ids, sample ids) each: prefetch their blocks."""
        if not any(self._use_blocks(i) for i in range(len(self.shards))):
            return
        keys = (
            list(dict.fromkeys(self._block_key(s, n) for s, n in zip(sh.tolist(), sa.tolist(), strict=True)))
            for sh, sa in batches
        )
        self._get_prefetcher().plan(keys)

    def _get_prefetcher(self) -> Prefetcher:
        self._check_process()
        if self._prefetcher is None:
            cache = BlockCache(self.cache_dir / "blocks", self.cache_bytes)
            verify = lambda key: self.crcs(key[0]) is None  # noqa: E731
            self._prefetcher = Prefetcher(cache, self._locate, self.prefetch_batches, verify)
        return self._prefetcher

    def _locate(self, key: BlockKey) -> tuple[Path, Any, str]:
        """Cache path, downloader and name of block `key` (the plan's block: one byte run)."""
        shard, block = key
        ranges = self.index(shard)
        first = block * self.block_size
        last = min(first + self.block_size, len(ranges)) - 1
        start, end = int(ranges[first, 0]), int(ranges[last, 1])
        ref = self.shards[shard]
        cache = self._get_prefetcher().cache
        return (
            cache.path(ref.sha256, start, end),
            lambda: self._download(shard, first, last, start, end),
            ref.url,
        )

    def _download(self, shard: int, first: int, last: int, start: int, end: int) -> bytes:
        """One block's bytes, checked against the index's checksums (see the module docstring)."""
        ref = self.shards[shard]
        fs, path = self.ranges_fs(shard)
        crcs = self.crcs(shard)
        ranges = self.index(shard)[first : last + 1] - start
        bad = 0
        for _ in range(2):
            try:
                data = fetch_range(fs, path, start, end, ref.url, self.fetch_retries)
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
        size = self.remote_size(shard)
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

    def read_samples(self, shard_ids: list[int], sample_ids: list[int]) -> list[bytes | CorruptSample]:
        """The bytes of the given samples, in the order asked; a checksum mismatch gives a
        CorruptSample in that place (after fetching a cached block again, if it came from one)."""
        self._check_process()
        out: list[Any] = [None] * len(shard_ids)
        direct: list[int] = []
        for j, (i, n) in enumerate(zip(shard_ids, sample_ids, strict=True)):
            if not self.remote(i):
                start, end = self.index(i)[n].tolist()
                out[j] = os.pread(self._fd(i), end - start, start)
            elif self._use_blocks(i):
                out[j] = self._read_from_block(i, n)
            else:
                direct.append(j)
        if direct:
            self._read_direct(direct, shard_ids, sample_ids, out)
        if self._prefetcher is not None:
            self._prefetcher.advance()
        for j, (i, n) in enumerate(zip(shard_ids, sample_ids, strict=True)):
            crcs = self.crcs(i)
            if crcs is None or checksum(out[j]) == crcs[n]:
                continue
            if self._use_blocks(i):  # the cached copy may be what is damaged: fetch it again
                self._get_prefetcher().invalidate(self._block_key(i, n))
                out[j] = self._read_from_block(i, n)
                if checksum(out[j]) == crcs[n]:
                    continue
            out[j] = CorruptSample(f"{self.shards[i].url}: sample {n} fails its CRC-32C (damaged bytes)")
        return out

    def _read_from_block(self, i: int, n: int) -> bytes:
        start, end = self.index(i)[n].tolist()
        key = self._block_key(i, n)
        block_start = int(self.index(i)[key[1] * self.block_size, 0])
        return os.pread(self._get_prefetcher().fd(key), end - start, start - block_start)

    def _read_direct(
        self, js: list[int], shard_ids: list[int], sample_ids: list[int], out: list[Any]
    ) -> None:
        """One concurrent batch of per-sample range requests (`prefetch_batches=0`)."""
        by_fs: dict[int, list[int]] = {}
        for j in js:
            by_fs.setdefault(id(self.fs(shard_ids[j])[0]), []).append(j)
        for group in by_fs.values():
            fs = self.fs(shard_ids[group[0]])[0]
            paths = [self.fs(shard_ids[j])[1] for j in group]
            ranges = [self.index(shard_ids[j])[sample_ids[j]].tolist() for j in group]
            data = fs.cat_ranges(paths, [r[0] for r in ranges], [r[1] for r in ranges], on_error="return")
            for j, d, (s, e) in zip(group, data, ranges, strict=True):
                url = self.shards[shard_ids[j]].url
                if isinstance(d, BaseException):
                    raise ShardError(f"{url}: read failed: {d}") from d
                if len(d) != e - s:
                    raise ShardError(
                        f"{url}: asked bytes [{s}, {e}), got {len(d)} bytes "
                        "(does the server support HTTP range requests?)"
                    )
                out[j] = d

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._prefetcher is not None and self._pid == os.getpid():
            self._prefetcher.close()
        self._reset()
