"""Remote shards at local speed: schedule-driven block prefetch into a bounded local cache.

One range request per sample made remote shards ~6x slower than local ones (each request costs
a round trip and milliseconds of fsspec CPU, more than decoding the JPEG it fetches). The epoch
order already says which samples every future batch needs, so a worker fetches, ahead of time,
whole *blocks* (the order's unit: `block_size` consecutive samples of a shard, one contiguous
byte run, one request) into a cache on local disk, and reads samples from there with `os.pread`.

- `BlockCache`: one file per block, `<cache_dir>/blocks/<shard sha256>-<start>-<end>.blk`, data
  plus a CRC-32C trailer. Files appear by atomic rename, and a per-block lock file (flock) makes
  the DataLoader workers of a rank (and the ranks of a node sharing the folder) wait for one
  download instead of each fetching the same block. The cache is bounded (`cache_bytes`): after a
  block is added, the least recently used blocks go. A block evicted under a reader stays readable
  through its open descriptor; one evicted before it was opened is fetched again (slower, never
  wrong). A folder left by a killed run is reused: complete blocks are verified by their trailer
  when opened (a bad one is dropped and fetched again), and temporary files of dead processes are
  removed.
- `Prefetcher`: the worker's upcoming batches (from the epoch order) -> the blocks they need, in order of
  first need, fetched `depth` batches ahead by a small thread pool.
Blocks are downloaded with `babylm.shards.access.fetch_range` (one ranged GET with retries).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from babylm.shards.access import flock
from babylm.shards.errors import ShardError
from babylm.shards.index_file import checksum

log = logging.getLogger("babylm.train.prefetch")

BlockKey = tuple[int, int]  # (shard, block number)
_TRAILER = struct.Struct("<I")
_OPEN_FDS = 256


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BlockCache:
    """Blocks of remote shards as files under `root`, at most `max_bytes` in all (LRU)."""

    def __init__(self, root: str | os.PathLike, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of processes that died mid-download (a killed run)."""
        for p in self.root.glob(".*.tmp"):
            pid = p.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                p.unlink(missing_ok=True)

    def path(self, sha256: str, start: int, end: int) -> Path:
        return self.root / f"{sha256}-{start}-{end}.blk"

    def open(self, path: Path, verify: bool) -> int | None:
        """A descriptor of a complete block file, or None (absent, or damaged: removed).

        `verify`: check the trailer checksum (for shards without per-sample checksums; with them,
        every sample read is checked anyway, and a damaged sample counted, not refetched)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if verify else b""
        if size < 4 or (verify and _TRAILER.unpack_from(data, size - 4)[0] != checksum(data[:-4])):
            os.close(fd)
            log.warning("%s: damaged cache block (trailer checksum); fetching it again", path)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: last to be evicted
        return fd

    def fill(self, path: Path, fetch: Callable[[], bytes], what: str) -> None:
        """Make sure `path` holds the block; `fetch()` downloads it. One download per block at a
        time across processes: the others wait on the lock and find the file."""
        if path.exists():
            return
        with open(path.with_suffix(".lock"), "a+b") as lock:
            flock(lock)
            if path.exists():
                return
            data = fetch()
            self._write(path, data, what)
        self.evict(keep=path)

    def _write(self, path: Path, data: bytes, what: str) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        for attempt in range(2):
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.write(_TRAILER.pack(checksum(data)))
                os.replace(tmp, path)
                return
            except OSError as e:
                tmp.unlink(missing_ok=True)
                if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or attempt:
                    raise ShardError(
                        f"{what}: cannot write its cache block under {self.root}: {e}; "
                        "free space there, lower cache_bytes or point cache_dir elsewhere"
                    ) from e
                # Disk full: make room by evicting down to half the limit, then try once more.
                self.evict(keep=None, target=self.max_bytes // 2)

    def evict(self, keep: Path | None, target: int | None = None) -> None:
        """Remove least recently used blocks until the cache holds at most `target` bytes."""
        target = self.max_bytes if target is None else target
        files = []
        total = 0
        for entry in os.scandir(self.root):
            if entry.name.endswith(".blk"):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    files.append((st.st_mtime, entry.path, st.st_size))
                    total += st.st_size
        if total <= target:
            return
        for _, name, size in sorted(files):
            if keep is not None and name == str(keep):
                continue
            Path(name).unlink(missing_ok=True)
            Path(name).with_suffix(".lock").unlink(missing_ok=True)
            total -= size
            if total <= target:
                return


class Prefetcher:
    """One process's block reads: scheduled blocks fetched ahead, open descriptors kept.

    `blocks_of(batch)` maps a scheduled batch to its block keys; `locate(key)` gives the block's
    cache path and a function downloading it.
    """

    def __init__(
        self,
        cache: BlockCache,
        locate: Callable[[BlockKey], tuple[Path, Callable[[], bytes], str]],
        depth: int,
        verify: Callable[[BlockKey], bool],
        threads: int = 8,
    ):
        self.cache, self.locate, self.depth, self.verify = cache, locate, depth, verify
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="babylm-prefetch")
        self._futures: dict[BlockKey, Future] = {}
        self._fds: OrderedDict[BlockKey, int] = OrderedDict()
        self._schedule: Iterator[list[BlockKey]] | None = None
        self._ahead = 0  # scheduled batches whose blocks were submitted but not yet read

    def schedule(self, batches: Iterator[list[BlockKey]]) -> None:
        """The block keys of this process's upcoming batches, in the order they will be read.
        Downloads of an earlier schedule that have not started are dropped (an empty one: stop)."""
        for key, future in list(self._futures.items()):
            if future.cancel():
                del self._futures[key]
        self._schedule, self._ahead = batches, 0
        self.advance(first=True)

    def advance(self, first: bool = False) -> None:
        """One scheduled batch is being read: keep `depth` batches' blocks requested ahead of it."""
        if not first:
            self._ahead = max(0, self._ahead - 1)
        while self._schedule is not None and self._ahead <= self.depth:
            keys = next(self._schedule, None)
            if keys is None:
                self._schedule = None
                break
            self._ahead += 1
            for key in keys:
                if key not in self._futures and key not in self._fds:
                    self._futures[key] = self._pool.submit(self._fill, key)

    def _fill(self, key: BlockKey) -> None:
        path, fetch, what = self.locate(key)
        self.cache.fill(path, fetch, what)

    def fd(self, key: BlockKey) -> int:
        """An open descriptor of block `key`, waiting for its prefetch or fetching it now."""
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        future = self._futures.pop(key, None)
        if future is not None:
            future.result()  # re-raises the fetch's ShardError here, in the reading thread
        path, fetch, what = self.locate(key)
        for _ in range(3):  # evicted between the fill and this open: fill again
            fd = self.cache.open(path, self.verify(key))
            if fd is not None:
                break
            self.cache.fill(path, fetch, what)
        if fd is None:
            raise ShardError(f"{what}: its cache block {path} keeps disappearing (cache_bytes too small?)")
        self._fds[key] = fd
        if len(self._fds) > _OPEN_FDS:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def invalidate(self, key: BlockKey) -> None:
        """Drop block `key` from the cache (its bytes failed a checksum): the next read fetches it."""
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)
        self.locate(key)[0].unlink(missing_ok=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._futures.clear()
