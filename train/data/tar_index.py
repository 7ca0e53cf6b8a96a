"""Random access to the samples of WebDataset tar shards, local or remote.

webdataset reads a tar as a stream (`tarfile` mode "r|*"), which is right for a shard-per-worker
pipeline but cannot start in the middle of a shard. The plan (`plan.py`) hands each worker
arbitrary samples, and a resume must skip consumed samples without decoding them, so the loader
reads samples by byte range instead:

- a *tar index* per shard, (start, end) byte offsets of every sample (its run of `{key}.*`
  members, grouped with webdataset's own `base_plus_ext` key rule) and its CRC-32C: read from the
  `.idx` file prep wrote beside the shard (`babylm.shards.tar_index`), or, for older datasets,
  built here by one scan of the tar headers (no checksums then) and cached on disk by the
  shard's sha256 (so one scan per machine, even over HTTP/S3);
- `ShardFiles` (`shard_files.py`) reads samples: `os.pread` locally, plan-driven block prefetch
  into a bounded disk cache remotely (`prefetch.py`);
- `parse_sample` splits a range into members with a minimal header parser (pax, GNU long-name
  and pre-POSIX headers go through `tarfile`). It is ~20x faster than opening a `tarfile` per
  sample, which matters next to a ~0.5 ms JPEG decode. Header checksums are verified once, by
  the index scan, not again on every read.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babylm.shards.tar_index import check_ranges
from babylm.shards.tar_scan import (
    BLOCK,
    ZERO_BLOCK,
    split_member_name,
)
from babylm.shards.tar_scan import EXTENDED as _EXTENDED
from babylm.shards.tar_scan import REGULAR as _REGULAR
from babylm.shards.tar_scan import number as _number
from babylm.shards.tar_scan import pad as _pad
from babylm.train.errors import TrainError

INDEX_VERSION = 1


class ShardError(TrainError, RuntimeError):
    """A shard that cannot be used at all (missing, wrong size, unreadable tar structure).

    Raised in a DataLoader worker, torch re-raises it in the main process as
    `ShardError("Caught ShardError in DataLoader worker process 0. Original Traceback ...")`: the
    message keeps only what the worker's error said, so the CLI's one line is that."""

    def __init__(self, message: str = ""):
        super().__init__(_worker_message(message, type(self).__name__))


def _worker_message(message: str, name: str) -> str:
    if not message.startswith(f"Caught {name} in DataLoader worker") or "Traceback" not in message:
        return message
    # The traceback's last line is `module.path.ShardError: <the message>`.
    found = list(re.finditer(rf"\n(?:[\w.]+\.)?{name}: ", message))
    return f"{message[found[-1].end() :].strip()} (in a DataLoader worker)" if found else message


class CorruptSample(ValueError):
    """One sample that cannot be decoded; it is skipped and counted."""


def default_cache_dir() -> Path:
    """Where tar indexes are cached: $BABYLM_CACHE_DIR, else ~/.cache/babylm."""
    env = os.environ.get("BABYLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "babylm"


def parse_sample(chunk: bytes, source: str) -> dict[str, Any]:
    """The members of one sample's byte range as {"__key__", ext: bytes}."""
    sample: dict[str, Any] = {}
    pos, n = 0, len(chunk)
    # Inlined header parsing: this runs once per member of every sample read.
    while pos + BLOCK <= n:
        typeflag = chunk[pos + 156 : pos + 157]
        if chunk[pos + 257 : pos + 262] != b"ustar" or chunk[pos + 345] != 0 or typeflag in _EXTENDED:
            if chunk[pos : pos + BLOCK] == ZERO_BLOCK:
                break
            return _parse_with_tarfile(chunk, source)  # pre-POSIX, long names, pax: the slow path
        size = _number(chunk[pos + 124 : pos + 136])
        if typeflag in _REGULAR:
            name = chunk[pos : pos + 100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            _add_member(sample, name, chunk[pos + BLOCK : pos + BLOCK + size])
        pos += BLOCK + _pad(size)
    if "__key__" not in sample:
        raise CorruptSample(f"{source}: no members in sample range")
    return sample


def _add_member(sample: dict[str, Any], name: str, data: bytes) -> None:
    key, ext = split_member_name(name)
    if key is None or ext is None:
        return
    if sample.setdefault("__key__", key) != key:
        raise CorruptSample(f"members of two samples ({sample['__key__']}, {key}) in one index range")
    sample[ext.lower()] = data


def _parse_with_tarfile(chunk: bytes, source: str) -> dict[str, Any]:
    sample: dict[str, Any] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(chunk), mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    _add_member(sample, m.name, tar.extractfile(m).read())  # type: ignore[union-attr]
    except tarfile.TarError as e:
        raise CorruptSample(f"{source}: damaged tar header in a sample: {e}") from e
    if "__key__" not in sample:
        raise CorruptSample(f"{source}: no members in sample range")
    return sample


@dataclass
class ShardRef:
    """One shard as the loader sees it: URL plus the manifest facts it checks.

    `index_url` / `index_sha256`: the tar index the manifest lists beside the shard (None for
    datasets written before there were index files: the loader then looks for one by name, and
    scans the tar if there is none).
    """

    url: str
    samples: int
    bytes: int
    sha256: str
    index_url: str | None = None
    index_sha256: str | None = None


def load_or_scan(ref: ShardRef, cache_dir: Path, scan: Any) -> np.ndarray:
    """The scanned index of a shard without a `.idx` file: from the disk cache (keyed by the
    shard's sha256), else `scan()` once per machine and cache it."""
    cache = cache_dir / "tar-index" / f"v{INDEX_VERSION}-{ref.sha256}-{ref.bytes}.npy"
    index = _read_cached(cache, ref.bytes)
    if index is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes concurrent workers wait for one scan instead of each downloading.
        with open(cache.with_suffix(".lock"), "a+b") as lock:
            _flock(lock)
            index = _read_cached(cache, ref.bytes)
            if index is None:
                index = scan()
                _write_cached(cache, index)
    return index


def _flock(f: Any) -> None:
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except (ImportError, OSError):
        pass  # no advisory locks here: concurrent scans are wasteful, not wrong


def _read_cached(path: Path, shard_bytes: int) -> np.ndarray | None:
    """A cached scan, if it is one (a damaged or tampered cache file is scanned again)."""
    try:
        arr = np.load(path, allow_pickle=False)
        check_ranges(arr, shard_bytes, str(path))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return arr if arr.dtype == np.int64 else None


def _write_cached(path: Path, index: np.ndarray) -> None:
    from babylm.shards.atomic import atomic_write

    # atomic_write gives the umask's mode: a cache dir shared by a team ($BABYLM_CACHE_DIR) needs it.
    with atomic_write(path) as f:
        np.save(f, index, allow_pickle=False)


def fingerprint(shards: list[ShardRef]) -> str:
    """Short id of a shard list, stored in the loader state to refuse resuming on other data."""
    h = hashlib.sha256()
    for s in shards:
        h.update(f"{s.samples}:{s.bytes}:{s.sha256}\n".encode())
    return h.hexdigest()[:16]
