import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from babylm.shards import (
    Manifest,
    RollingWriter,
    TarShardWriter,
    iter_tar_samples,
    open_dataset,
    read_token_table,
    token_column,
    token_dtype,
    write_manifest,
)
from tests.shards.sample_fixtures import image_samples


def test_tar_round_trip(tmp_path):
    samples = image_samples(7)
    with RollingWriter(tmp_path, "tar", max_samples=3) as w:
        for s in samples:
            w.write(s)
    entries = w.entries
    assert [e.samples for e in entries] == [3, 3, 1]
    write_manifest(tmp_path, Manifest(kind="image_text", shards=entries))
    ds = open_dataset(tmp_path)
    got = []
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            got.extend(iter_tar_samples(f))
    assert [g["__key__"] for g in got] == [s["__key__"] for s in samples]
    assert got[5]["txt"].decode() == samples[5]["txt"]
    assert Image.open(io.BytesIO(got[2]["jpg"])).size == (16, 16)
    assert got[4]["json"] == b'{"i": 4}'


def test_tar_bytes_are_deterministic(tmp_path):
    for d in ("a", "b"):
        with TarShardWriter(tmp_path / d, "x.tar") as w:
            for s in image_samples(3):
                w.write(s)
    assert (tmp_path / "a/x.tar").read_bytes() == (tmp_path / "b/x.tar").read_bytes()


def test_arrow_round_trip_and_dtype(tmp_path):
    rows = [list(range(i, i + i % 5)) for i in range(20)]
    with RollingWriter(tmp_path, "arrow", max_samples=8, vocab_size=32778) as w:
        for r in rows:
            w.write(r, words=len(r) // 2)
    assert [e.samples for e in w.entries] == [8, 8, 4]
    assert sum(e.tokens for e in w.entries) == sum(len(r) for r in rows)
    back = []
    for e in w.entries:
        col = token_column(read_token_table(str(tmp_path / e.path)))
        assert col.type.value_type.bit_width == 16
        back.extend(col.to_pylist())
    assert back == rows
    assert token_dtype(70000) == np.uint32


def test_arrow_rejects_out_of_range_ids(tmp_path):
    w = RollingWriter(tmp_path, "arrow", vocab_size=100)
    with pytest.raises(ValueError, match="out of range"):
        w.write([5, 100], words=1)


def test_killed_write_leaves_nothing_complete(tmp_path):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), RollingWriter(tmp_path, "tar", max_samples=4) as w:
        for i, s in enumerate(image_samples(10)):
            if i == 6:
                raise Boom
            w.write(s)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    # The first shard completed before the failure; the half-written second one is gone.
    assert names == ["shard-000000.idx", "shard-000000.tar"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert not (tmp_path / "manifest.json").exists()
    with tarfile.open(tmp_path / "shard-000000.tar") as t:
        assert len(t.getnames()) == 4 * 3
