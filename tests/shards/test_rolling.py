"""`RollingWriter`: a new shard at a size limit; a reopened writer removes a killed writer's
temporary file and continues after the complete shards, writing what an uninterrupted run writes."""

from babylm.shards import RollingWriter
from tests.shards.sample_fixtures import image_samples


def test_roll_over_at_byte_size(tmp_path):
    with RollingWriter(tmp_path, "tar", max_samples=1000, max_bytes=6000) as w:
        for s in image_samples(10):
            w.write(s)
    assert len(w.entries) > 1
    assert all(e.bytes >= 6000 for e in w.entries[:-1])
    assert sum(e.samples for e in w.entries) == 10


def test_hard_kill_partial_file_is_ignored_and_removed(tmp_path):
    w = RollingWriter(tmp_path, "tar", max_samples=2)
    for s in image_samples(3):
        w.write(s)
    # Simulate kill -9: the open shard's temporary file stays behind, no close().
    assert list(tmp_path.glob(".*.tmp"))
    again = RollingWriter(tmp_path, "tar", max_samples=2)
    assert [e.path for e in again.completed] == ["shard-000000.tar"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_reopened_writer_skips_complete_shards(tmp_path):
    samples = image_samples(9)
    w = RollingWriter(tmp_path, "tar", max_samples=4)
    for s in samples[:6]:
        w.meta["rows_done"] = samples.index(s) + 1
        w.write(s)
    w.abort()  # interrupted after one complete shard
    w2 = RollingWriter(tmp_path, "tar", max_samples=4)
    assert [e.samples for e in w2.completed] == [4]
    assert w2.completed[0].meta == {"rows_done": 4}
    done = sum(e.samples for e in w2.completed)
    for s in samples[done:]:
        w2.write(s)
    resumed = w2.close()

    fresh_dir = tmp_path / "fresh"
    with RollingWriter(fresh_dir, "tar", max_samples=4) as w3:
        for s in samples:
            w3.write(s)
    assert [(e.path, e.samples, e.sha256) for e in resumed] == [
        (e.path, e.samples, e.sha256) for e in w3.entries
    ]
