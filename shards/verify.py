"""Check a dataset against its manifest: every shard present, the right size, the right
checksum and counts, and (deep) every image, array and token row decodable."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from babylm.shards.errors import ShardsError
from babylm.shards.images import open_image
from babylm.shards.index_file import TarIndexError, checksum, decode_index
from babylm.shards.manifest import ShardEntry
from babylm.shards.reader import (
    Dataset,
    file_size,
    join_location,
    open_file,
    read_npy,
    token_column,
    words_column,
)
from babylm.shards.tar_samples import TarScanError, build_tar_index, iter_tar_samples


@dataclass
class ShardProblem:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class _HashingReader(io.RawIOBase):
    """Reads through to `raw` while hashing and counting what was read."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
        self.limit = limit  # reads stop one byte past it: a longer file is seen, not read to its end

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.raw.read(max(0, min(len(b), self.limit + 1 - self.size)))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _decode_member(ext: str, data: bytes) -> None:
    if ext in ("jpg", "jpeg", "png", "webp"):
        with open_image(data) as im:
            im.load()
    elif ext == "npy":
        read_npy(data)
    elif ext == "json":
        json.loads(data)
    elif ext == "txt":
        data.decode("utf-8")


def _check_tar(ds: Dataset, entry: ShardEntry, deep: bool) -> list[str]:
    problems = []
    with ds.open_shard(entry) as f:
        reader = _HashingReader(f, entry.bytes)
        samples = 0
        try:
            for sample in iter_tar_samples(io.BufferedReader(reader, 1 << 20), entry.path):
                samples += 1
                if deep:
                    for ext, data in sample.items():
                        if ext.startswith("__"):
                            continue
                        try:
                            _decode_member(ext, data)
                        except Exception as e:  # any decoder failure is a finding, not a crash
                            problems.append(f"undecodable member {sample['__key__']}.{ext}: {e}")
        except tarfile.TarError as e:
            problems.append(f"corrupt tar: {e}")
        reader.drain()
    if reader.size != entry.bytes:
        problems.append(
            f"read {reader.size}{'+' if reader.size > entry.bytes else ''} bytes, manifest says {entry.bytes}"
        )
    elif reader.sha.hexdigest() != entry.sha256:
        problems.append("checksum mismatch (sha256 differs from manifest)")
    if not problems and samples != entry.samples:
        problems.append(f"sample count {samples} != manifest {entry.samples}")
    return problems


def _check_arrow(ds: Dataset, entry: ShardEntry, deep: bool, vocab_size: int | None) -> list[str]:
    with ds.open_shard(entry) as f:
        data = f.read(entry.bytes + 1)
    if len(data) != entry.bytes:
        return [f"read {len(data)} bytes, manifest says {entry.bytes}"]
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        return ["checksum mismatch (sha256 differs from manifest)"]
    try:
        table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        col = token_column(table)
    except (pa.ArrowInvalid, ValueError) as e:
        return [f"unreadable Arrow file: {e}"]
    problems = []
    if table.num_rows != entry.samples:
        problems.append(f"row count {table.num_rows} != manifest {entry.samples}")
    values = pa.concat_arrays([c.values for c in col.chunks]) if col.num_chunks else pa.array([])
    if entry.tokens is not None and len(values) != entry.tokens:
        problems.append(f"token count {len(values)} != manifest {entry.tokens}")
    words = words_column(table)
    if entry.words is not None:
        import pyarrow.compute as pc

        got = int(pc.sum(words).as_py() or 0) if words is not None else None
        if got != entry.words:
            problems.append(f"word count {got} != manifest {entry.words}")
    if vocab_size and len(values):
        import pyarrow.compute as pc

        top = pc.max(values).as_py()
        if top is not None and top >= vocab_size:
            problems.append(f"token id {top} >= vocab size {vocab_size}")
    return problems


def verify_dataset(
    ds: Dataset, deep: bool = False, on_shard: Callable[[ShardEntry], None] | None = None
) -> list[ShardProblem]:
    """Recompute sizes, checksums and counts of every shard, token ids against the vocabulary
    the manifest records, and every tar index; return what is wrong (empty = ok). A shard that
    cannot be read (not a regular file, a remote error) is a problem of that shard, not a crash.

    `deep`: also decode every member (images under the pixel limit) and check each index's
    ranges against the tar's own structure and checksums."""
    problems: list[ShardProblem] = []
    vocab = ds.manifest.params.get("vocab_size")
    for entry in ds.manifest.shards:
        problems.extend(ShardProblem(entry.path, p) for p in _check_shard(ds, entry, deep, vocab))
        if entry.index is not None:
            try:
                found = _check_index(ds, entry, deep)
            except (ShardsError, OSError) as e:
                found = [f"unreadable: {e}"]
            problems.extend(ShardProblem(entry.index["path"], p) for p in found)
        if on_shard:
            on_shard(entry)
    return problems


def _check_shard(ds: Dataset, entry: ShardEntry, deep: bool, vocab: int | None) -> list[str]:
    url = ds.shard_url(entry)
    try:
        size = file_size(url, ds.storage_options, ds.timeout)
        if size is None:
            return [f"missing ({url})"]
        if size != entry.bytes:
            return [f"wrong size: {size} bytes, manifest says {entry.bytes}"]
        if ds.kind == "tokens":
            return _check_arrow(ds, entry, deep, vocab)
        return _check_tar(ds, entry, deep)
    except (ShardsError, OSError) as e:
        return [f"unreadable: {e}"]


def _check_index(ds: Dataset, entry: ShardEntry, deep: bool) -> list[str]:
    """The tar index listed for `entry`: present, the manifest's sha256, about this shard, its
    ranges sane (`decode_index`) and, `deep`, the tar's own samples with their checksums."""
    assert entry.index is not None
    url = join_location(ds.location, entry.index["path"])
    try:
        with open_file(url, ds.storage_options, ds.timeout) as f:
            data = f.read(entry.index["bytes"] + 1)
    except FileNotFoundError:
        return [f"missing ({url})"]
    if len(data) != entry.index["bytes"]:
        return [f"read {len(data)} bytes, manifest says {entry.index['bytes']}"]
    if hashlib.sha256(data).hexdigest() != entry.index["sha256"]:
        return ["checksum mismatch (sha256 differs from manifest)"]
    try:
        index = decode_index(data, url)
    except TarIndexError as e:
        return [str(e)]
    if (index.shard_bytes, index.shard_sha256, len(index.ranges)) != (
        entry.bytes,
        entry.sha256,
        entry.samples,
    ):
        return [f"describes another shard than {entry.path}"]
    return _check_index_ranges(ds, entry, index.ranges, index.crcs) if deep else []


def _check_index_ranges(ds: Dataset, entry: ShardEntry, ranges: np.ndarray, crcs: np.ndarray) -> list[str]:
    """The index's sample ranges are the tar's (from its headers) and its checksums theirs."""
    try:
        with ds.open_shard(entry) as f:
            scanned = build_tar_index(f, entry.path)
            if scanned.shape != ranges.shape or not np.array_equal(scanned, ranges):
                return ["sample ranges differ from the tar's own (forged or stale index)"]
            bad = 0
            for (start, end), crc in zip(ranges.tolist(), crcs.tolist(), strict=True):
                f.seek(start)
                bad += checksum(f.read(end - start)) != crc
    except TarScanError as e:
        return [f"cannot check against its tar: {e}"]
    return [f"{bad} sample checksums differ from the tar's bytes"] if bad else []
