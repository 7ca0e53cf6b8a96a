"""The tar index file written next to every tar shard (`shard-000123.tar` -> `shard-000123.idx`).

A reader needs the byte range of each sample to read it without streaming the whole tar, and a
checksum per sample to notice a flipped byte (on disk, in transit, in a cache) before it trains on
a wrong picture. The shard writer knows both at write time, so it writes them once; the manifest
entry lists the index (`"index": {"path", "bytes", "sha256"}`) and readers of older datasets
without one fall back to scanning the tar headers.

Format (little-endian, version 1):

| bytes | field |
|---|---|
| 8 | magic `BLMTIDX1` |
| 4 | uint32 format version (1) |
| 4 | uint32 checksum kind (1 = CRC-32C, Castagnoli) |
| 8 | uint64 number of samples N |
| 8 | uint64 size of the tar shard in bytes |
| 32 | sha256 of the tar shard (raw digest) |
| 24 x N | per sample, in tar order: uint64 start, uint64 end (the byte range [start, end) of all the
  sample's members, headers and padding included), uint32 CRC-32C of those bytes, uint32 zero |
| 4 | uint32 CRC-32C of everything before it |

So the index names the exact shard it describes (size and sha256) and checks itself; a sample
range with its checksum is what one read of the loader verifies.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from babylm.shards.atomic import atomic_write_bytes

MAGIC = b"BLMTIDX1"
VERSION = 1
CHECKSUM_CRC32C = 1
SUFFIX = ".idx"
_HEADER = struct.Struct("<8sIIQQ32s")
RECORD = np.dtype([("start", "<u8"), ("end", "<u8"), ("crc", "<u4"), ("zero", "<u4")])


class TarIndexError(ValueError):
    """An index file that does not parse or does not match its shard."""


def index_size(samples: int) -> int:
    """The size in bytes of the index file of a shard of `samples` samples."""
    return _HEADER.size + samples * RECORD.itemsize + 4


def checksum(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of `data` (hardware-accelerated; ~10 GB/s, next to nothing beside a JPEG decode)."""
    return google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)


def index_path(shard_path: str) -> str:
    """The index file's path for a shard path: `.tar` replaced by `.idx`."""
    return (shard_path[:-4] if shard_path.endswith(".tar") else shard_path) + SUFFIX


@dataclass
class TarIndex:
    """A decoded index: (N, 2) int64 `ranges`, uint32 `crcs`, and the shard it belongs to."""

    ranges: np.ndarray
    crcs: np.ndarray
    shard_bytes: int
    shard_sha256: str


def encode_index(ranges: np.ndarray, crcs: np.ndarray, shard_bytes: int, shard_sha256: str) -> bytes:
    """The bytes of an index file (see the module docstring)."""
    n = len(ranges)
    body = np.zeros(n, dtype=RECORD)
    if n:
        body["start"], body["end"], body["crc"] = ranges[:, 0], ranges[:, 1], crcs
    head = _HEADER.pack(MAGIC, VERSION, CHECKSUM_CRC32C, n, shard_bytes, bytes.fromhex(shard_sha256))
    data = head + body.tobytes()
    return data + struct.pack("<I", checksum(data))


def decode_index(data: bytes, source: str) -> TarIndex:
    """Parse and check an index file; raises TarIndexError naming `source` if it is damaged."""
    if len(data) < _HEADER.size + 4 or data[:8] != MAGIC:
        raise TarIndexError(f"{source}: not a babylm tar index (bad magic or too short)")
    magic, version, kind, n, shard_bytes, sha = _HEADER.unpack_from(data)
    if version != VERSION or kind != CHECKSUM_CRC32C:
        raise TarIndexError(f"{source}: index version {version} / checksum kind {kind} is not supported")
    if len(data) != _HEADER.size + n * RECORD.itemsize + 4:
        raise TarIndexError(f"{source}: index is {len(data)} bytes, {n} samples need another size")
    if struct.unpack_from("<I", data, len(data) - 4)[0] != checksum(data[:-4]):
        raise TarIndexError(f"{source}: index checksum mismatch (damaged file)")
    body = np.frombuffer(data, dtype=RECORD, count=n, offset=_HEADER.size)
    # Compared as uint64 first: a forged 2**63 must not wrap to a negative int64.
    if n and int(body["end"].max()) > shard_bytes:
        raise TarIndexError(
            f"{source}: a sample range ends at byte {int(body['end'].max())}, past the shard's {shard_bytes} "
            "bytes (forged or damaged index)"
        )
    ranges = np.stack([body["start"], body["end"]], axis=1).astype(np.int64).reshape(-1, 2)
    check_ranges(ranges, int(shard_bytes), source)
    return TarIndex(ranges, body["crc"].astype(np.uint32), int(shard_bytes), sha.hex())


def check_ranges(ranges: np.ndarray, shard_bytes: int, source: str) -> None:
    """Sample byte ranges a reader may trust: inside the shard, each non-empty, in order and not
    overlapping (what a tar's samples are). TarIndexError naming `source` otherwise."""
    if ranges.ndim != 2 or ranges.shape[1] != 2:
        raise TarIndexError(f"{source}: sample ranges of shape {ranges.shape}, expected (N, 2)")
    if not len(ranges):
        return
    starts, ends = ranges[:, 0], ranges[:, 1]
    problem = ""
    if int(starts.min()) < 0 or int(ends.max()) > shard_bytes:
        problem = f"a sample range lies outside the shard's {shard_bytes} bytes"
    elif bool((ends <= starts).any()):
        j = int(np.argmax(ends <= starts))
        problem = f"sample {j} has start {int(starts[j])} >= end {int(ends[j])}"
    elif bool((starts[1:] < ends[:-1]).any()):
        j = int(np.argmax(starts[1:] < ends[:-1])) + 1
        problem = f"sample {j} starts at {int(starts[j])}, inside sample {j - 1} (ranges overlap)"
    if problem:
        raise TarIndexError(f"{source}: {problem} (forged or damaged index)")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tar_index(
    out_dir: Path, shard_name: str, written: Path, ranges: list[tuple[int, int]], size: int, sha256: str
) -> dict[str, Any]:
    """Write the index of the tar `shard_name` (its bytes are in file `written`, the sample byte
    ranges in `ranges`) beside it in `out_dir`; return its manifest listing.

    The checksums are computed from the file as written (read back from the page cache): tarfile
    buffers its output, so the bytes of a sample reach the file after the sample was written.
    """
    arr = np.array(ranges, dtype=np.int64).reshape(-1, 2)
    crcs = np.zeros(len(arr), dtype=np.uint32)
    with open(written, "rb") as f:
        for j, (start, end) in enumerate(arr.tolist()):
            f.seek(start)
            crcs[j] = checksum(f.read(end - start))
    data = encode_index(arr, crcs, size, sha256)
    name = index_path(shard_name)
    atomic_write_bytes(out_dir / name, data)
    return {"path": name, "bytes": len(data), "sha256": sha256_hex(data)}


def index_tar_file(path: Path, samples: int, size: int, sha256: str) -> bytes | None:
    """The index of an existing tar shard (one that arrived without its `.idx`), or None when the
    file is not the shard `samples` / `size` / `sha256` describe. Reads the tar twice: its headers,
    then its bytes once for the sha256 and the sample checksums."""
    from babylm.shards.access import regular_size
    from babylm.shards.errors import ShardsError
    from babylm.shards.tar_samples import TarScanError, build_tar_index

    try:
        if regular_size(path) != size:
            return None
        with open(path, "rb") as f:
            ranges = build_tar_index(f, str(path))
    except (FileNotFoundError, TarScanError, ShardsError):
        return None
    if len(ranges) != samples:
        return None
    sha = hashlib.sha256()
    crcs = np.zeros(len(ranges), dtype=np.uint32)
    pos = 0
    with open(path, "rb") as f:
        for j, (start, end) in enumerate(ranges.tolist()):
            sha.update(f.read(start - pos))  # bytes between samples (none in our tars)
            chunk = f.read(end - start)
            sha.update(chunk)
            crcs[j] = checksum(chunk)
            pos = end
        while block := f.read(1 << 20):
            sha.update(block)
    if sha.hexdigest() != sha256:
        return None
    return encode_index(ranges, crcs, size, sha256)
