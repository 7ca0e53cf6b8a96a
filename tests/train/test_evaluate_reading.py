"""`babylm-train evaluate` reads held-out shards with the loader's reader (`babylm.shards.shard_reader`):
the same samples, in manifest order, as a plain stream through the tar; a damaged sample is left out."""

from __future__ import annotations

from babylm.shards import iter_tar_samples, open_dataset
from babylm.shards.index_file import decode_index
from babylm.train.evaluate import _raw_batches
from tests.train.data.loader_fixtures import write_image_text


def _streamed(location):
    ds = open_dataset(location)
    out = []
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            out.extend(iter_tar_samples(f, entry.path))
    return out


def test_evaluate_reads_the_samples_a_stream_reads_in_manifest_order(tmp_path):
    data = write_image_text(tmp_path / "held", [5, 3, 4])
    batches = list(_raw_batches(str(data), batch_size=4, max_samples=10))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [s for b in batches for s in b] == _streamed(data)[:10]


def test_evaluate_leaves_out_a_sample_that_fails_its_checksum(tmp_path):
    data = write_image_text(tmp_path / "held", [4])
    shard = data / "shard-000000.tar"
    ranges = decode_index((data / "shard-000000.idx").read_bytes(), "idx").ranges
    raw = bytearray(shard.read_bytes())
    raw[int(ranges[1, 1]) - 1] ^= 0xFF  # last byte of sample 1 (tar padding: the header stays valid)
    shard.write_bytes(bytes(raw))
    keys = [s["__key__"] for b in _raw_batches(str(data), batch_size=8, max_samples=8) for s in b]
    assert keys == [s["__key__"] for i, s in enumerate(_streamed(data)) if i != 1]
