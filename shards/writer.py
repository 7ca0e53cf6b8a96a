"""Atomic shard writers: WebDataset tar and Arrow IPC token shards.

A shard is written under a temporary name while its sha256 and counts are computed on the fly,
then its entry is saved beside it (`.entries/NAME.json`) and the file is renamed into place.
So a file with a final name is always complete and always has its entry, and a writer killed
half-way leaves only a temporary file that the next run removes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from babylm.shards.atomic import atomic_write_bytes
from babylm.shards.index_file import write_tar_index
from babylm.shards.manifest import ShardEntry

ENTRIES_DIR = ".entries"
TOKEN_COLUMN = "input_ids"
# Words of the raw line each row was tokenized from (`len(line.split())`), uint32 beside the ids.
WORDS_COLUMN = "words"
# Rows per Arrow record batch: fixed, so the same rows always give the same bytes.
ARROW_BATCH_ROWS = 4096


class _HashingFile(io.RawIOBase):
    """A write-only file that passes bytes through while counting and hashing them."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        self.raw.write(view)
        self.sha.update(view)
        self.size += len(view)
        return len(view)

    def flush(self) -> None:
        self.raw.flush()


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, uint32 beyond."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def entry_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / ENTRIES_DIR / f"{name}.json"


def read_entry(out_dir: str | os.PathLike, name: str) -> ShardEntry | None:
    """The entry of a complete shard `name` in `out_dir`, or None if it is not complete."""
    if not (Path(out_dir) / name).exists():
        return None
    ep = entry_path(out_dir, name)
    if not ep.exists():
        return None
    d = json.loads(ep.read_text())
    return ShardEntry.from_dict(d)


class _AtomicShard:
    """Base: owns the temporary file, the hash, and the final rename."""

    def __init__(self, out_dir: str | os.PathLike, name: str):
        self.out_dir = Path(out_dir)
        self.name = name
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.final = self.out_dir / name
        self.tmp = self.out_dir / f".{name}.{os.getpid()}.tmp"
        self._raw = open(self.tmp, "wb")
        self._hashing = _HashingFile(self._raw)
        self.samples = 0
        self.tokens: int | None = None
        self.words: int | None = None
        self.meta: dict[str, Any] = {}
        self.entry: ShardEntry | None = None
        self.index: dict[str, Any] | None = None  # the index file's manifest listing, if one is written

    @property
    def bytes_written(self) -> int:
        return self._hashing.size

    def _finish_payload(self) -> None:
        raise NotImplementedError

    def _write_index(self) -> None:
        """Write a side file describing the complete payload (tar shards: the tar index)."""

    def close(self) -> ShardEntry:
        """Complete the shard: flush, fsync, save its entry, rename into place."""
        if self.entry is not None:
            return self.entry
        self._finish_payload()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self._write_index()
        entry = ShardEntry(
            path=self.name,
            samples=self.samples,
            bytes=self._hashing.size,
            sha256=self._hashing.sha.hexdigest(),
            tokens=self.tokens,
            meta=self.meta,
            index=self.index,
            words=self.words,
        )
        # Index and entry first, then the rename: a shard under its final name always has an entry.
        atomic_write_bytes(entry_path(self.out_dir, self.name), json.dumps(entry.to_dict()).encode())
        os.replace(self.tmp, self.final)
        self.entry = entry
        return entry

    def abort(self) -> None:
        """Drop the partial shard; nothing under the final name is created."""
        if not self._raw.closed:
            self._raw.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class TarShardWriter(_AtomicShard):
    """One WebDataset tar shard. `write({"__key__": k, "jpg": bytes, "txt": str, "json": dict})`.

    The entry's `words` is the sum of the `words` field of every sample's `json` member (prep
    puts the caption's word count there); None if any sample has none."""

    def __init__(self, out_dir: str | os.PathLike, name: str):
        super().__init__(out_dir, name)
        # Imported here: webdataset pulls in torch, which a CLI that only reads manifests should not pay for.
        import webdataset as wds

        # Fixed mtime and owner: the same samples always give the same bytes and sha256.
        self._tar = wds.TarWriter(self._hashing, mtime=0, user="babylm", group="babylm", encoder=_encode)
        self._ranges: list[tuple[int, int]] = []  # [start, end) of each sample, for the index
        self.words = 0

    def write(self, sample: dict[str, Any]) -> None:
        key = sample.get("__key__")
        if not key or "." in key or "/" in key:
            raise ValueError(f"sample key must be non-empty without '.' or '/', got {key!r}")
        meta = sample.get("json")
        words = meta.get("words") if isinstance(meta, dict) else None
        if self.words is not None:
            self.words = (
                self.words + words if isinstance(words, int) and not isinstance(words, bool) else None
            )
        start = self._tar.tarstream.offset
        self._tar.write(sample)
        self._ranges.append((start, self._tar.tarstream.offset))
        self.samples += 1

    def _finish_payload(self) -> None:
        self._tar.tarstream.close()

    def _write_index(self) -> None:
        """`NAME.idx` beside the shard: each sample's byte range and CRC-32C (`index_file.py`)."""
        self.index = write_tar_index(
            self.out_dir, self.name, self.tmp, self._ranges, self._hashing.size, self._hashing.sha.hexdigest()
        )


def _encode(sample: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sample.items():
        if k.startswith("__"):
            out[k] = v
        elif isinstance(v, (bytes, bytearray, memoryview)):
            out[k] = bytes(v)
        elif isinstance(v, str):
            out[k] = v.encode("utf-8")
        elif k.endswith("json"):
            out[k] = json.dumps(v, sort_keys=True, ensure_ascii=False).encode("utf-8")
        elif isinstance(v, np.ndarray):
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=False)
            out[k] = buf.getvalue()
        else:
            raise ValueError(f"cannot encode member {k!r} of type {type(v).__name__}")
    return out


class ArrowShardWriter(_AtomicShard):
    """One Arrow IPC file with an `input_ids` list column, one row per line/document, and a
    `words` uint32 column: the words of the raw line (`len(line.split())`).

    Rows arrive one at a time (`write`) or many at once (`write_rows`, what prep uses: per-row
    Python work would cost as much as tokenizing); either way the file holds record batches of
    exactly `ARROW_BATCH_ROWS` rows, so its bytes do not depend on how the rows arrived.
    """

    def __init__(self, out_dir: str | os.PathLike, name: str, vocab_size: int):
        super().__init__(out_dir, name)
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = vocab_size
        self.schema = pa.schema(
            [(TOKEN_COLUMN, pa.list_(pa.from_numpy_dtype(self.dtype))), (WORDS_COLUMN, pa.uint32())]
        )
        self._ipc = pa.ipc.new_file(self._hashing, self.schema)
        self._lengths: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._words: list[np.ndarray] = []
        self.words = 0
        self._pending_rows = 0
        self._pending_bytes = 0
        self.tokens = 0

    def write(self, ids: Sequence[int] | np.ndarray, words: int) -> None:
        """Append one row: its token ids and the words of the line it came from."""
        arr = np.asarray(ids, dtype=np.int64)
        self.write_rows(np.array([arr.size], dtype=np.int64), arr, np.array([words]))

    def write_rows(self, lengths: np.ndarray, values: np.ndarray, words: np.ndarray) -> None:
        """Append rows: `lengths[i]` ids each, taken in order from `values`; `words[i]` words."""
        if len(lengths) == 0:
            return
        values = np.asarray(values)
        words = np.asarray(words)
        if len(words) != len(lengths):
            raise ValueError(f"{len(lengths)} rows but {len(words)} word counts in shard {self.name}")
        if values.size and (int(values.min()) < 0 or int(values.max()) >= self.vocab_size):
            raise ValueError(f"token id out of range [0, {self.vocab_size}) in shard {self.name}")
        if words.size and (int(words.min()) < 0 or int(words.max()) >= 2**32):
            raise ValueError(f"word count out of range [0, 2**32) in shard {self.name}")
        self._lengths.append(np.asarray(lengths, dtype=np.int64))
        self._values.append(values.astype(self.dtype, copy=False))
        self._words.append(words.astype(np.uint32))
        self.words += int(words.sum(dtype=np.int64))
        self._pending_rows += len(lengths)
        self._pending_bytes += values.size * self.dtype.itemsize + 4 * len(lengths)
        self.samples += len(lengths)
        self.tokens = (self.tokens or 0) + int(values.size)
        if self._pending_rows >= ARROW_BATCH_ROWS:
            self._flush(final=False)

    @property
    def bytes_pending(self) -> int:
        return self._hashing.size + self._pending_bytes

    def _flush(self, final: bool) -> None:
        if not self._pending_rows:
            return
        lengths = np.concatenate(self._lengths)
        values = np.concatenate(self._values)
        words = np.concatenate(self._words)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        start = 0
        while len(lengths) - start >= ARROW_BATCH_ROWS or (final and start < len(lengths)):
            stop = min(start + ARROW_BATCH_ROWS, len(lengths))
            off = (offsets[start : stop + 1] - offsets[start]).astype(np.int32)
            column = pa.ListArray.from_arrays(pa.array(off), pa.array(values[offsets[start] : offsets[stop]]))
            batch = [column, pa.array(words[start:stop], type=pa.uint32())]
            self._ipc.write_batch(pa.record_batch(batch, schema=self.schema))
            start = stop
        rest = len(lengths) - start
        self._lengths = [lengths[start:]] if rest else []
        self._values = [values[offsets[start] :]] if rest else []
        self._words = [words[start:]] if rest else []
        self._pending_rows = rest
        self._pending_bytes = int(values[offsets[start] :].size * self.dtype.itemsize + 4 * rest)

    def _finish_payload(self) -> None:
        self._flush(final=True)
        self._ipc.close()


def write_tar_shard(out_dir: str | os.PathLike, name: str, samples: Iterable[dict[str, Any]]) -> ShardEntry:
    """Write one complete tar shard from an iterable of samples."""
    with TarShardWriter(out_dir, name) as w:
        for s in samples:
            w.write(s)
    assert w.entry is not None
    return w.entry
