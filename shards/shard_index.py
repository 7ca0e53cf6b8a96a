"""Where a tar shard's index comes from, checked before a reader trusts it.

In order: the `.idx` the manifest lists beside the shard (it must match the manifest's sha256 and
describe this shard), else one found by the shard's name (ignored if it describes another shard),
else a scan of the tar's headers, cached under `cache_dir/tar-index/` by the shard's sha256 so
that a machine scans a shard once (a scanned index has no checksums). A remote `.idx` is cached
there too: the workers of a rank start together, and a lock file makes them wait for one download
instead of each fetching it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from babylm.shards.access import flock, read_local
from babylm.shards.atomic import atomic_write, atomic_write_bytes
from babylm.shards.errors import ShardError, ShardsError
from babylm.shards.index_file import (
    TarIndexError,
    check_ranges,
    decode_index,
    index_path,
    index_size,
    sha256_hex,
)
from babylm.shards.reader import ShardRef
from babylm.shards.tar_samples import TarScanError

if TYPE_CHECKING:
    from babylm.shards.shard_reader import ShardReader

# The version of the scan cache's file names: a new one when what a scan finds changes.
SCAN_VERSION = 1


def default_cache_dir() -> Path:
    """Where tar indexes (and the loader's blocks) are cached: $BABYLM_CACHE_DIR, else
    ~/.cache/babylm."""
    env = os.environ.get("BABYLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "babylm"


def load_index(reader: ShardReader) -> tuple[np.ndarray, np.ndarray | None]:
    """(ranges, crcs) of the reader's shard (crcs None for a scanned index); ShardError when the
    index is damaged, forged, another shard's, or does not list the manifest's sample count."""
    ref = reader.ref
    found = _read_index_file(reader)
    if found is not None:
        ranges, crcs = found
    else:
        reader.confirm_size()
        ranges, crcs = _load_or_scan(ref, reader.options.cache_dir, lambda: _scan(reader)), None
    if len(ranges) != ref.samples:
        raise ShardError(f"{ref.url}: tar holds {len(ranges)} samples but the manifest says {ref.samples}")
    return ranges, crcs


def _read_index_file(reader: ShardReader) -> tuple[np.ndarray, np.ndarray] | None:
    """The shard's `.idx`: the one the manifest lists, else one found by name, else None."""
    ref = reader.ref
    url = ref.index_url or index_path(ref.url)
    data = _fetch_index(reader, url)
    if data is None:
        if ref.index_url:
            raise ShardError(f"{url}: tar index listed in the manifest is missing")
        return None
    if ref.index_sha256 and sha256_hex(data) != ref.index_sha256:
        raise ShardError(f"{url}: tar index differs from the manifest (sha256); was it changed after prep?")
    try:
        index = decode_index(data, url)
    except TarIndexError as e:
        raise ShardError(str(e)) from e
    if (index.shard_bytes, index.shard_sha256) != (ref.bytes, ref.sha256):
        if ref.index_url:
            raise ShardError(f"{url}: tar index describes another shard than {ref.url}")
        return None  # a stray file of that name: not ours
    return index.ranges, index.crcs


def _fetch_index(reader: ShardReader, url: str) -> bytes | None:
    """Index bytes (no more than an index of this shard has); remote ones through the disk cache."""
    ref = reader.ref
    size = index_size(ref.samples)
    if not reader.remote:
        return reader.fetch_index(url, size)
    cached = reader.options.cache_dir / "tar-index" / f"{ref.sha256}-{ref.bytes}.idx"
    with contextlib.suppress(FileNotFoundError, ShardsError):
        return read_local(cached, size)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.with_suffix(".lock"), "a+b") as lock:
        flock(lock)
        with contextlib.suppress(FileNotFoundError, ShardsError):
            return read_local(cached, size)
        data = reader.fetch_index(url, size)
        if data is not None:
            atomic_write_bytes(cached, data)
    return data


def _scan(reader: ShardReader) -> np.ndarray:
    ref = reader.ref
    try:
        ranges = reader.scan()
        check_ranges(ranges, ref.bytes, ref.url)  # a member header declaring more than the tar has
    except (TarScanError, TarIndexError) as e:
        raise ShardError(str(e)) from e
    return ranges


def _load_or_scan(ref: ShardRef, cache_dir: Path, scan: Callable[[], np.ndarray]) -> np.ndarray:
    """The scanned index of a shard without a `.idx` file: from the disk cache (keyed by the
    shard's sha256), else `scan()` once per machine and cache it."""
    cache = cache_dir / "tar-index" / f"v{SCAN_VERSION}-{ref.sha256}-{ref.bytes}.npy"
    index = _read_cached(cache, ref.bytes)
    if index is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes concurrent workers wait for one scan instead of each downloading.
        with open(cache.with_suffix(".lock"), "a+b") as lock:
            flock(lock)
            index = _read_cached(cache, ref.bytes)
            if index is None:
                index = scan()
                # atomic_write gives the umask's mode: a cache shared by a team needs it.
                with atomic_write(cache) as f:
                    np.save(f, index, allow_pickle=False)
    return index


def _read_cached(path: Path, shard_bytes: int) -> np.ndarray | None:
    """A cached scan, if it is one (a damaged or tampered cache file is scanned again)."""
    try:
        arr = np.load(path, allow_pickle=False)
        check_ranges(arr, shard_bytes, str(path))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return arr if arr.dtype == np.int64 else None
