"""`open_shard`: one reader per shard, picked by the URL's scheme when it is opened, which reads
the samples a stream through the tar reads and checks each against the index's CRC-32C."""

from __future__ import annotations

import shutil

from babylm.shards import CorruptSample, iter_tar_samples, open_dataset, parse_sample
from babylm.shards.index_file import decode_index
from babylm.shards.shard_reader import LocalShard, RangeShard, ReadOptions, open_shard


def _options(tmp_path) -> ReadOptions:
    return ReadOptions({}, tmp_path / "cache", fetch_retries=1, fetch_timeout=10.0)


def _read_all(location, options):
    ds = open_dataset(location)
    readers, samples = [], []
    for entry in ds.manifest.shards:
        reader = open_shard(ds.shard_ref(entry), options)
        reader.check()
        readers.append(reader)
        samples += [parse_sample(d, entry.path) for d in reader.checked(list(range(entry.samples)))]
        reader.close()
    return readers, samples


def _streamed(location):
    ds = open_dataset(location)
    out = []
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            out.extend(iter_tar_samples(f, entry.path))
    return out


def test_local_and_http_shards_get_their_reader_and_read_the_same_samples(image_dataset, http_root, tmp_path):
    local, samples = _read_all(image_dataset, _options(tmp_path))
    assert {type(r) for r in local} == {LocalShard}
    assert samples == _streamed(image_dataset)
    folder, url = http_root
    shutil.copytree(image_dataset, folder / "images")
    remote, over_http = _read_all(f"{url}/images", _options(tmp_path))
    assert {type(r) for r in remote} == {RangeShard}
    assert over_http == samples


def test_a_flipped_byte_is_a_corrupt_sample_not_a_wrong_one(image_dataset, tmp_path):
    ds = open_dataset(image_dataset)
    entry = ds.manifest.shards[0]
    shard = image_dataset / entry.path
    ranges = decode_index((image_dataset / entry.index["path"]).read_bytes(), "idx").ranges
    raw = bytearray(shard.read_bytes())
    raw[int(ranges[2, 0]) + 600] ^= 0xFF  # inside sample 2's first member
    shard.write_bytes(bytes(raw))
    got = open_shard(ds.shard_ref(entry), _options(tmp_path)).checked([1, 2, 3])
    assert [isinstance(x, CorruptSample) for x in got] == [False, True, False]
    assert f"{entry.path}: sample 2 fails its CRC-32C" in str(got[1])
