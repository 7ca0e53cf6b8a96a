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

import pyarrow as pa

from babylm.shards.manifest import ShardEntry
from babylm.shards.reader import (
    Dataset,
    file_size,
    iter_tar_samples,
    join_location,
    open_file,
    read_npy,
    token_column,
    words_column,
)
from babylm.shards.tar_index import TarIndexError, decode_index


@dataclass
class ShardProblem:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class _HashingReader(io.RawIOBase):
    """Reads through to `raw` while hashing and counting what was read."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.raw.read(len(b))
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
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
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
        reader = _HashingReader(f)
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
    if reader.sha.hexdigest() != entry.sha256:
        problems.append("checksum mismatch (sha256 differs from manifest)")
    if not problems and samples != entry.samples:
        problems.append(f"sample count {samples} != manifest {entry.samples}")
    return problems


def _check_arrow(ds: Dataset, entry: ShardEntry, deep: bool, vocab_size: int | None) -> list[str]:
    with ds.open_shard(entry) as f:
        data = f.read()
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
    if deep and vocab_size and len(values):
        import pyarrow.compute as pc

        top = pc.max(values).as_py()
        if top is not None and top >= vocab_size:
            problems.append(f"token id {top} >= vocab size {vocab_size}")
    return problems


def verify_dataset(
    ds: Dataset, deep: bool = False, on_shard: Callable[[ShardEntry], None] | None = None
) -> list[ShardProblem]:
    """Recompute sizes, checksums and counts of every shard; return what is wrong (empty = ok)."""
    problems: list[ShardProblem] = []
    vocab = ds.manifest.params.get("vocab_size")
    for entry in ds.manifest.shards:
        url = ds.shard_url(entry)
        size = file_size(url, ds.storage_options)
        if size is None:
            problems.append(ShardProblem(entry.path, f"missing ({url})"))
        elif size != entry.bytes:
            problems.append(
                ShardProblem(entry.path, f"wrong size: {size} bytes, manifest says {entry.bytes}")
            )
        else:
            found = (
                _check_arrow(ds, entry, deep, vocab) if ds.kind == "tokens" else _check_tar(ds, entry, deep)
            )
            problems.extend(ShardProblem(entry.path, p) for p in found)
        if entry.index is not None:
            problems.extend(ShardProblem(entry.index["path"], p) for p in _check_index(ds, entry))
        if on_shard:
            on_shard(entry)
    return problems


def _check_index(ds: Dataset, entry: ShardEntry) -> list[str]:
    """The tar index listed for `entry`: present, the manifest's sha256, and about this shard."""
    assert entry.index is not None
    url = join_location(ds.location, entry.index["path"])
    try:
        with open_file(url, ds.storage_options) as f:
            data = f.read()
    except FileNotFoundError:
        return [f"missing ({url})"]
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
    return []
