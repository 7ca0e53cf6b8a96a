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
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from webdataset.tariterators import base_plus_ext

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
INDEX_VERSION = 1
# Extended headers that change the next member's name or size: parsed by tarfile.
_EXTENDED = (b"x", b"g", b"L", b"K", b"X")
_REGULAR = (b"0", b"\0", b"7")


class ShardError(RuntimeError):
    """A shard that cannot be used at all (missing, wrong size, unreadable tar structure)."""


class CorruptSample(ValueError):
    """One sample that cannot be decoded; it is skipped and counted."""


def default_cache_dir() -> Path:
    """Where tar indexes are cached: $BABYLM_CACHE_DIR, else ~/.cache/babylm."""
    env = os.environ.get("BABYLM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "babylm"


def _pad(size: int) -> int:
    return (size + BLOCK - 1) & ~(BLOCK - 1)


def _number(field: bytes) -> int:
    if field[0] & 0x80:  # base-256, for members over 8 GiB
        return tarfile.nti(field)  # type: ignore[attr-defined]
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _header(hdr: bytes, where: str) -> tuple[bytes, int, bytes]:
    """(name, size, typeflag) of a tar header; raises ValueError on a bad checksum."""
    stored = _number(hdr[148:156])
    # The checksum is the byte sum with the checksum field itself read as spaces.
    if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
        raise ValueError(f"{where}: tar header checksum mismatch")
    name = hdr[:100].split(b"\0", 1)[0]
    if hdr[257:262] == b"ustar" and hdr[345] != 0:
        name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
    return name, _number(hdr[124:136]), hdr[156:157]


def split_member_name(name: str) -> tuple[str | None, str | None]:
    """(key, extension) by webdataset's rule (`base_plus_ext`: the key ends at the first dot of
    the file name), without its regex in the common case, where the regex costs more than the
    rest of parsing a header."""
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not stem:  # a file name starting with a dot: leave the odd cases to webdataset's rule
        return base_plus_ext(name)
    if not dot:
        return None, None
    return folder + slash + stem, ext


def _scan_with_tarfile(f: Any, source: str) -> list[tuple[str, int, int]]:
    f.seek(0)
    out = []
    with tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            if m.isfile():
                out.append((m.name, m.offset, m.offset_data + _pad(m.size)))
    return out


def _scan_members(f: Any, source: str) -> list[tuple[str, int, int]]:
    """(name, range start, range end) of every regular member, reading only the headers."""
    out = []
    pos = 0
    while True:
        f.seek(pos)
        hdr = f.read(BLOCK)
        if len(hdr) < BLOCK:
            if not hdr:
                return out  # no end-of-archive blocks: still a readable tar
            raise ShardError(f"{source}: truncated tar header at byte {pos}")
        if hdr == ZERO_BLOCK:
            return out
        try:
            name, size, typeflag = _header(hdr, f"{source} at byte {pos}")
        except ValueError as e:
            raise ShardError(f"{source}: corrupt tar: {e}") from e
        if typeflag in _EXTENDED:
            return _scan_with_tarfile(f, source)
        end = pos + BLOCK + _pad(size)
        if typeflag in _REGULAR:
            out.append((name.decode("utf-8", "surrogateescape"), pos, end))
        pos = end


def build_tar_index(f: Any, source: str) -> np.ndarray:
    """(num_samples, 2) int64 byte ranges [start, end) of the samples of a tar, in tar order."""
    starts: list[int] = []
    ends: list[int] = []
    current = None
    for name, start, end in _scan_members(f, source):
        key, _ = split_member_name(name)
        if key is None:
            continue  # webdataset skips members without an extension too
        if key != current:
            starts.append(start)
            ends.append(end)
            current = key
        else:
            ends[-1] = end
    return np.array([starts, ends], dtype=np.int64).T.reshape(-1, 2)


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
    index = _read_cached(cache)
    if index is None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes concurrent workers wait for one scan instead of each downloading.
        with open(cache.with_suffix(".lock"), "a+b") as lock:
            _flock(lock)
            index = _read_cached(cache)
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


def _read_cached(path: Path) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return arr if arr.ndim == 2 and arr.shape[1] == 2 else None


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
