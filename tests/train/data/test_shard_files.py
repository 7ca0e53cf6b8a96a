"""`ShardFiles` picks one reader per shard when the source is made: by the shard's scheme, and for
remote shards by `prefetch_batches` (order blocks through the cache, or one request per sample);
every choice reads the same bytes."""

from __future__ import annotations

import shutil

import numpy as np

from babylm.shards import open_dataset
from babylm.shards.shard_reader import LocalShard, RangeShard
from babylm.train.data.shard_files import BlockShard, ShardFiles
from babylm.train.data.spec import LoaderSpec
from tests.train.data.loader_fixtures import write_image_text


def _files(location, **spec):
    ds = open_dataset(location)
    files = ShardFiles([ds.shard_ref(e) for e in ds.manifest.shards], LoaderSpec(**spec))
    files.check()
    return files


def test_each_shard_gets_one_reader_by_scheme_and_prefetch(http_root, tmp_path):
    data = write_image_text(tmp_path / "it", [6, 5])
    folder, url = http_root
    shutil.copytree(data, folder / "it")
    cache = tmp_path / "cache"
    choices = {
        LocalShard: _files(data, cache_dir=cache),
        BlockShard: _files(f"{url}/it", cache_dir=cache, block_size=4, prefetch_batches=2),
        RangeShard: _files(f"{url}/it", cache_dir=cache, prefetch_batches=0),
    }
    shard_ids, sample_ids = [1, 0, 1, 0, 0], [4, 5, 0, 0, 3]
    read = {}
    for kind, files in choices.items():
        assert [type(r) for r in files.readers] == [kind, kind]
        files.will_read([(np.array(shard_ids), np.array(sample_ids))])
        read[kind] = files.read_samples(shard_ids, sample_ids)
        files.close()
    assert read[BlockShard] == read[RangeShard] == read[LocalShard]
    assert all(isinstance(b, bytes) for b in read[LocalShard])
