"""The token stream: Arrow token shards as one sequence, cut into `seq_len` chunks.

Rows are concatenated in manifest order (shard by shard, row by row, as the original concatenated
the lines of each file) into one stream of T tokens; chunk c is tokens [c*L, (c+1)*L), so there
are floor(T / L) chunks and one tail shorter than L is dropped. T comes from the manifest, so an
epoch is ordered without reading a shard. Local shards are memory-mapped (`read_token_table`):
the stream is a list of zero-copy numpy views, one per Arrow record batch, and a chunk is a slice
of one of them (or, at a boundary, of two). Remote shards are read into memory once per process.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from babylm.shards.errors import ShardError, ShardsError
from babylm.shards.reader import ShardRef, file_size, read_token_table, token_column, words_column
from babylm.train.data.spec import LoaderSpec

# The original's `datasets.map(group_texts, batched=True, batch_size=1000)`: lines per group.
ORIGINAL_GROUP_LINES = 1000


def chunk_words(
    row_lengths: np.ndarray,
    row_words: np.ndarray,
    seq_len: int,
    chunk_starts: np.ndarray | None,
    num_chunks: int,
    offset: int = 0,
) -> np.ndarray:
    """Words of each chunk: a line's words count in the chunk that holds its last token (its
    `</s>`), so a line cut across chunks counts once; a line whose last token is in no chunk
    (the dropped tail, or a group remainder under original chunking) is never counted. The rows
    start at token `offset` of the stream (one shard's rows at a time add up to the whole)."""
    last = offset + np.cumsum(row_lengths, dtype=np.int64) - 1
    if chunk_starts is None:
        chunk = last // seq_len
        inside = chunk < num_chunks
    else:
        chunk = np.searchsorted(chunk_starts, last, side="right") - 1
        inside = (chunk >= 0) & (last < chunk_starts[np.maximum(chunk, 0)] + seq_len)
    counts = np.bincount(chunk[inside], weights=row_words[inside], minlength=num_chunks)
    return counts.astype(np.int64)


def original_chunk_starts(
    row_lengths: np.ndarray, seq_len: int, group: int = ORIGINAL_GROUP_LINES
) -> np.ndarray:
    """Stream offsets of the original's chunks: each group of `group` consecutive rows is
    concatenated and cut into `seq_len` chunks, and the group's remainder is dropped."""
    bounds = np.concatenate([[0], np.cumsum(row_lengths, dtype=np.int64)])
    firsts = bounds[0 : len(row_lengths) : group]
    lasts = bounds[np.minimum(np.arange(1, len(firsts) + 1) * group, len(row_lengths))]
    per_group = (lasts - firsts) // seq_len
    within = np.arange(int(per_group.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(per_group) - per_group, per_group
    )
    return np.repeat(firsts, per_group) + within * seq_len


class TokenShards:
    """The loaded token shards of a stream: chunks of the concatenated token stream of its Arrow shards.

    `chunking` "stream" cuts the whole stream (one tail dropped); "original" cuts inside groups of
    1000 rows as the original did (`original_chunk_starts`, FIDELITY.md), which needs the row
    lengths: read once from the shards' list offsets when the source is made.

    With word counts in every shard (`has_words`), each batch also carries `words`: the words of
    its chunks (`chunk_words`), computed once per process from the shards' `words` column.
    """

    def __init__(self, shards: list[ShardRef], spec: LoaderSpec, vocab_size: int | None):
        """`spec` (checked when it was made) gives `seq_len`, `chunking`, `storage_options` and
        `fetch_timeout`; `vocab_size` bounds the token ids (None: unchecked)."""
        self.shards = shards
        self.seq_len = spec.seq_len
        self.chunking = spec.chunking
        self.storage_options = dict(spec.storage_options or {})
        self.vocab_size = vocab_size
        self.fetch_timeout = spec.fetch_timeout
        for ref in shards:
            self._check_file(ref)  # before num_chunks (and the epoch order) is sized by the counts
        self.num_tokens = sum(s.tokens for s in shards)
        self._chunk_starts: np.ndarray | None = None
        if self.chunking == "original":
            self._chunk_starts = original_chunk_starts(self._row_lengths(), self.seq_len)
            self.num_chunks = len(self._chunk_starts)
        else:
            self.num_chunks = self.num_tokens // self.seq_len
        self.has_words = all(s.words is not None for s in shards)
        self._pid = -1
        self._pieces: list[np.ndarray] = []
        self._starts = np.zeros(1, dtype=np.int64)
        self._chunk_words: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_pid=-1, _pieces=[], _starts=np.zeros(1, dtype=np.int64), _chunk_words=None)
        return state

    def _check_file(self, ref: ShardRef) -> None:
        """The shard exists, is a file of the manifest's size, and its token count fits in it."""
        if ref.tokens > ref.bytes:
            raise ShardError(
                f"{ref.url}: the manifest lists {ref.tokens} tokens, more than a shard of {ref.bytes} "
                "bytes can hold (forged or damaged manifest)"
            )
        try:
            size = file_size(ref.url, self.storage_options, self.fetch_timeout)
        except (ShardsError, OSError) as e:
            raise ShardError(f"{ref.url}: cannot read the shard: {e}") from e
        if size is None:
            raise ShardError(f"{ref.url}: shard listed in the manifest is missing")
        if size != ref.bytes:
            raise ShardError(
                f"{ref.url}: shard is {size} bytes but the manifest says {ref.bytes}; "
                "it was changed or truncated after prep (run `babylm-prep verify`)"
            )

    def _read(self, ref: ShardRef) -> tuple[Any, Any]:
        """The shard's Arrow table and its token column."""
        try:
            table = read_token_table(ref.url, self.storage_options, ref.bytes, self.fetch_timeout)
            return table, token_column(table)
        except (ShardsError, OSError, ValueError) as e:  # ArrowInvalid is a ValueError
            raise ShardError(f"{ref.url}: cannot read the token shard: {e}") from e

    def _row_lengths(self) -> np.ndarray:
        """Tokens of every row (line), in stream order, from the Arrow list offsets."""
        lengths = []
        for ref in self.shards:
            for chunk in self._read(ref)[1].chunks:
                lengths.append(np.diff(chunk.offsets.to_numpy()))
        return np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)

    def _load(self) -> None:
        pieces: list[np.ndarray] = []
        # Counted shard by shard: per-line arrays of the whole stream would cost tens of bytes a
        # line in every process that loads it (hundreds of MB for a 100M-word corpus).
        words = np.zeros(self.num_chunks if self.has_words else 0, dtype=np.int64)
        offset = 0
        for ref in self.shards:
            self._check_file(ref)
            table, column = self._read(ref)
            if self.has_words:
                lengths = np.concatenate([np.diff(c.offsets.to_numpy()) for c in column.chunks] or [[]])
                words += chunk_words(
                    lengths.astype(np.int64),
                    self._shard_words(ref, table),
                    self.seq_len,
                    self._chunk_starts,
                    self.num_chunks,
                    offset,
                )
            got = 0
            for chunk in column.chunks:
                values = chunk.flatten().to_numpy(zero_copy_only=True)
                if len(values):
                    self._check_ids(ref, values)
                    pieces.append(values)
                    got += len(values)
            if got != ref.tokens:
                raise ShardError(f"{ref.url}: shard holds {got} tokens but the manifest says {ref.tokens}")
            offset += got
        self._pieces = pieces
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._chunk_words = words if self.has_words else None
        self._pid = os.getpid()

    def _check_ids(self, ref: ShardRef, values: np.ndarray) -> None:
        """Token ids the model has rows for (an id past them would fail as an IndexError deep
        in the embedding, steps later)."""
        if self.vocab_size is None:
            return
        top = int(values.max())
        if top >= self.vocab_size or (values.dtype.kind == "i" and int(values.min()) < 0):
            raise ShardError(
                f"{ref.url}: token id {top} is outside the tokenizer's vocabulary [0, {self.vocab_size}); "
                "the shard was tokenized with another tokenizer or damaged (run `babylm-prep verify`)"
            )

    @staticmethod
    def _shard_words(ref: ShardRef, table: Any) -> np.ndarray:
        column = words_column(table)
        if column is None:
            raise ShardError(f"{ref.url}: the manifest counts words but the shard has no words column")
        words = column.to_numpy().astype(np.int64)
        if int(words.sum()) != ref.words:
            raise ShardError(
                f"{ref.url}: shard holds {int(words.sum())} words but the manifest says {ref.words}"
            )
        return words

    def words(self, ids: np.ndarray) -> int:
        """Words of the chunks `ids` (see `chunk_words`)."""
        if self._pid != os.getpid():
            self._load()
        assert self._chunk_words is not None, "words() needs shards with word counts"
        return int(self._chunk_words[np.asarray(ids, dtype=np.int64)].sum())

    def chunks(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), seq_len) int64 array of the token chunks `ids`."""
        if self._pid != os.getpid():
            self._load()
        L = self.seq_len
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_chunks):
            raise IndexError(f"chunk id outside [0, {self.num_chunks})")
        out = np.empty((len(ids), L), dtype=np.int64)
        starts = self._chunk_starts[ids] if self._chunk_starts is not None else ids * L
        piece = np.searchsorted(self._starts, starts, side="right") - 1
        for k, (start, p) in enumerate(zip(starts.tolist(), piece.tolist(), strict=True)):
            off = start - int(self._starts[p])
            values = self._pieces[p]
            if off + L <= len(values):
                out[k] = values[off : off + L]
            else:  # the chunk runs across record batches (or shards)
                filled = 0
                while filled < L:
                    take = min(L - filled, len(self._pieces[p]) - off)
                    out[k, filled : filled + take] = self._pieces[p][off : off + take]
                    filled += take
                    p, off = p + 1, 0
        return out

    def batch(self, ids: np.ndarray) -> dict[str, Any]:
        """Chunk ids as keys and the chunks as input_ids (labels are added by the consumer)."""
        out = {"keys": [int(i) for i in ids], "input_ids": torch.from_numpy(self.chunks(ids))}
        if self.has_words:
            out["words"] = self.words(ids)
        return out
