"""The tar index written beside every tar shard: ranges and checksums match the tar, the manifest
lists it, verify checks it."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from babylm.shards import (
    Manifest,
    ShardEntry,
    TarShardWriter,
    load_manifest,
    open_dataset,
    verify_dataset,
    write_manifest,
)
from babylm.shards.index_file import TarIndexError, checksum, decode_index, encode_index


def image_samples(n: int) -> list[dict]:
    """Samples of three members each (an opaque payload stands in for the JPEG)."""
    return [
        {"__key__": f"k{i:03d}", "jpg": bytes([i]) * (700 + i), "txt": f"caption {i}", "json": {"i": i}}
        for i in range(n)
    ]


def _shard(folder):
    with TarShardWriter(folder, "shard-000000.tar") as w:
        for s in image_samples(5):
            w.write(s)
    write_manifest(folder, Manifest(kind="image_text", shards=[w.entry]))
    return w.entry


def test_index_ranges_and_checksums_match_the_tar(tmp_path):
    entry = _shard(tmp_path)
    assert entry.index is not None and entry.index["path"] == "shard-000000.idx"
    data = (tmp_path / "shard-000000.idx").read_bytes()
    index = decode_index(data, "idx")
    assert (index.shard_bytes, index.shard_sha256) == (entry.bytes, entry.sha256)
    tar_bytes = (tmp_path / "shard-000000.tar").read_bytes()
    with tarfile.open(tmp_path / "shard-000000.tar") as t:
        members = [m for m in t if m.isfile()]
    # Each range starts at the first member's header of its sample; they tile the samples.
    assert index.ranges[:, 0].tolist() == [m.offset for m in members[::3]]
    assert (index.ranges[1:, 0] == index.ranges[:-1, 1]).all()
    for (start, end), crc in zip(index.ranges.tolist(), index.crcs.tolist(), strict=True):
        assert checksum(tar_bytes[start:end]) == crc
    assert load_manifest(tmp_path).shards[0].index == entry.index


def test_damaged_index_is_refused_and_verify_reports_it(tmp_path):
    _shard(tmp_path)
    path = tmp_path / "shard-000000.idx"
    data = bytearray(path.read_bytes())
    data[70] ^= 1
    with pytest.raises(TarIndexError, match="checksum"):
        decode_index(bytes(data), "idx")
    path.write_bytes(bytes(data))
    problems = verify_dataset(open_dataset(tmp_path))
    assert [p.path for p in problems] == ["shard-000000.idx"]


def test_empty_index_round_trips():
    data = encode_index(np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.uint32), 1024, "ab" * 32)
    index = decode_index(data, "x")
    assert index.ranges.shape == (0, 2) and index.shard_bytes == 1024


def test_manifest_lists_the_index_when_the_entry_was_rebuilt_without_it(tmp_path):
    entry = _shard(tmp_path)
    rebuilt = ShardEntry(entry.path, entry.samples, entry.bytes, entry.sha256, entry.tokens, entry.meta)
    write_manifest(tmp_path, Manifest(kind="image_text", shards=[rebuilt]))
    assert load_manifest(tmp_path).shards[0].index == entry.index
    # An index file of other bytes (a stale one) is not listed.
    other = ShardEntry(entry.path, entry.samples, entry.bytes, "0" * 64)
    write_manifest(tmp_path, Manifest(kind="image_text", shards=[other]))
    assert load_manifest(tmp_path).shards[0].index is None


def test_manifest_writer_indexes_a_tar_that_arrived_without_its_index(tmp_path):
    entry = _shard(tmp_path)
    original = (tmp_path / "shard-000000.idx").read_bytes()
    (tmp_path / "shard-000000.idx").unlink()
    rebuilt = ShardEntry(entry.path, entry.samples, entry.bytes, entry.sha256)
    write_manifest(tmp_path, Manifest(kind="image_text", shards=[rebuilt]))
    assert (tmp_path / "shard-000000.idx").read_bytes() == original
    assert load_manifest(tmp_path).shards[0].index == entry.index
