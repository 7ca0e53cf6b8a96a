"""Each batch carries the words of what it holds: token chunks by the last-token rule, captions
from prep's per-sample count; the same totals whatever the ranks and workers."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from babylm.shards import Manifest, open_dataset, read_token_table, token_column, write_manifest
from babylm.shards.reader import words_column
from babylm.train.data.loader import build_loader
from babylm.train.data.tokens import chunk_words, original_chunk_starts
from tests.train.data.loader_fixtures import write_image_text, write_tokens


def rows_of(folder) -> tuple[np.ndarray, np.ndarray]:
    ds = open_dataset(folder)
    lengths, words = [], []
    for e in ds.manifest.shards:
        table = read_token_table(ds.shard_url(e))
        lengths += [len(r) for r in token_column(table).to_pylist()]
        words += words_column(table).to_pylist()
    return np.array(lengths), np.array(words)


def brute_chunk_words(lengths, words, starts, seq_len) -> dict[int, int]:
    """Chunk -> words of the lines whose last token lies inside it, one line at a time."""
    out = {c: 0 for c in range(len(starts))}
    end = 0
    for n, w in zip(lengths.tolist(), words.tolist(), strict=True):
        end += n
        last = end - 1
        for c, s in enumerate(starts):
            if n and s <= last < s + seq_len:
                out[c] += w
    return out


@pytest.mark.parametrize("chunking", ["stream", "original"])
def test_a_line_counts_in_the_chunk_that_holds_its_last_token(chunking):
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 30, size=2500)
    words = rng.integers(0, 12, size=2500)
    L = 16
    if chunking == "original":
        starts = original_chunk_starts(lengths, L, group=100)
        got = chunk_words(lengths, words, L, starts, len(starts))
    else:
        starts = np.arange(int(lengths.sum()) // L) * L
        got = chunk_words(lengths, words, L, None, len(starts))
    expected = brute_chunk_words(lengths, words, starts.tolist(), L)
    assert got.tolist() == [expected[c] for c in range(len(starts))]
    # never more than the corpus, and only the dropped tail / group remainders are missing
    assert 0 < words.sum() - got.sum() < words.sum() // 10


@pytest.mark.parametrize("chunking", ["stream", "original"])
def test_token_batches_carry_their_chunks_words(tmp_path, chunking):
    data = write_tokens(tmp_path / "tok", [1200, 3, 900])
    lengths, words = rows_of(data)
    L = 16
    if chunking == "original":
        starts = original_chunk_starts(lengths, L).tolist()
    else:
        starts = [c * L for c in range(int(lengths.sum()) // L)]
    expected = brute_chunk_words(lengths, words, starts, L)
    loader = build_loader(data, batch_size=5, seq_len=L, chunking=chunking)
    seen = 0
    for b in loader.batches():
        assert b.words == sum(expected[c] for c in b.keys)
        seen += b.words
    assert seen > 0


def per_step_words(location, world, batch, workers=0, **kw) -> list[int]:
    """Words of each global step: the sum over the ranks' batches."""
    steps = None
    for r in range(world):
        loader = build_loader(location, batch_size=batch, world_size=world, rank=r, workers=workers, **kw)
        mine = [b.words for b in loader.batches()]
        steps = mine if steps is None else [a + b for a, b in zip(steps, mine, strict=True)]
    return steps


def test_words_per_global_batch_do_not_depend_on_ranks_or_workers(tmp_path):
    tokens = write_tokens(tmp_path / "tok", [120, 80])
    one = per_step_words(tokens, 1, 6, seq_len=16)
    assert per_step_words(tokens, 2, 3, seq_len=16) == one
    assert per_step_words(tokens, 3, 2, workers=2, seq_len=16) == one
    images = write_image_text(tmp_path / "it", [13, 20, 7])
    kw = {"image_size": 32, "block_size": 4, "shuffle_buffer": 8, "cache_dir": tmp_path / "cache"}
    one = per_step_words(images, 1, 8, **kw)
    assert len(set(one)) > 1  # captions of different lengths
    assert per_step_words(images, 2, 4, workers=2, **kw) == one


def test_caption_words_come_from_the_json_and_skipped_samples_do_not_count(tmp_path):
    images = write_image_text(tmp_path / "it", [10], corrupt={"s00-00003"})
    loader = build_loader(
        images, batch_size=10, image_size=32, cache_dir=tmp_path / "cache", max_corrupt_fraction=0.5
    )
    (batch,) = list(loader.batches())
    assert "s00-00003" not in batch.keys and len(batch.keys) == 9
    assert batch.words == sum(len(c.split()) for c in batch.captions)


def write_old_tokens(folder) -> None:
    """A tokens dataset as prep wrote it before word counts: no words column, no entry words."""
    from babylm.shards import ArrowShardWriter

    folder.mkdir(parents=True)
    with ArrowShardWriter(folder, "tokens-000000.arrow", 100) as w:
        for i in range(40):
            w.write([i % 100] * 9, words=2)
    data = (folder / "tokens-000000.arrow").read_bytes()
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all().select(["input_ids"])
    with pa.OSFile(str(folder / "tokens-000000.arrow"), "wb") as f, pa.ipc.new_file(f, table.schema) as ipc:
        ipc.write_table(table)
    data = (folder / "tokens-000000.arrow").read_bytes()
    entry = w.entry
    entry.bytes, entry.sha256, entry.words = len(data), hashlib.sha256(data).hexdigest(), None
    write_manifest(folder, Manifest(kind="tokens", shards=[entry], name="old"))
    assert "words" not in json.loads((folder / "manifest.json").read_text())["shards"][0]


def test_shards_without_word_counts_give_batches_without_words(tmp_path):
    write_old_tokens(tmp_path / "old")
    loader = build_loader(tmp_path / "old", batch_size=2, seq_len=8)
    assert loader.has_words is False
    assert next(loader.batches()).words is None
