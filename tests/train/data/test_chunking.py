"""--chunking original: the original's `datasets.map(group_texts, batched=True, batch_size=1000)`
chunks, token for token, against a plain reimplementation; stream chunking is unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from babylm.shards import open_dataset, read_token_table, token_column
from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import write_tokens

SEQ = 16


def group_texts(rows: list[list[int]], seq_len: int, batch_size: int = 1000) -> list[list[int]]:
    """The original (datasets/utils.py Group_Texts.group_default), one map batch at a time."""
    chunks = []
    for i in range(0, len(rows), batch_size):
        concatenated = sum(rows[i : i + batch_size], [])
        total = (len(concatenated) // seq_len) * seq_len
        chunks += [concatenated[j : j + seq_len] for j in range(0, total, seq_len)]
    return chunks


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    # 2,600 rows of 0..17 tokens (blank lines among them) over 4 shards: groups cross shard bounds.
    return write_tokens(tmp_path_factory.mktemp("chunking") / "tokens", [700, 900, 500, 500])


def rows_of(folder) -> list[list[int]]:
    rows: list[list[int]] = []
    for url in open_dataset(folder).shard_urls:
        rows += token_column(read_token_table(url)).to_pylist()
    return rows


def epoch_chunks(folder, chunking: str, tmp_path) -> tuple[list[tuple[int, ...]], Any]:
    loader = build_loader(folder, batch_size=8, seq_len=SEQ, chunking=chunking, cache_dir=tmp_path / "c")
    return [tuple(row) for batch in loader.batches() for row in batch.inputs["input_ids"].tolist()], loader


def test_original_chunking_gives_the_originals_chunks(tokens, tmp_path):
    rows = rows_of(tokens)
    assert len(rows) > 2000 and any(not r for r in rows)
    expected = [tuple(c) for c in group_texts(rows, SEQ)]
    got, loader = epoch_chunks(tokens, "original", tmp_path)
    assert loader.num_samples == len(expected)
    kept = len(expected) - loader.dropped_per_epoch  # the last partial global batch is left out
    assert len(got) == kept and set(got) <= set(expected) and len(set(got)) == kept
    stream = [tuple(c) for c in group_texts([sum(rows, [])], SEQ, batch_size=1)]
    assert set(expected) != set(stream)  # the modes differ on this corpus
    got_stream, _ = epoch_chunks(tokens, "stream", tmp_path)
    assert set(got_stream) <= set(stream)


def test_a_resume_refuses_the_other_chunking(tokens, tmp_path):
    _, original = epoch_chunks(tokens, "original", tmp_path)
    stream = build_loader(tokens, batch_size=8, seq_len=SEQ, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="plan"):
        stream.load_state_dict(original.state_dict())
    assert "chunking" not in stream.state_dict()["plan"]  # older stream-mode states still resume
