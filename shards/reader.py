"""Resolve a dataset location to its manifest and shard URLs, and read shards.

A location is a local folder, `file://`, `http(s)://` or `s3://` URL of a dataset folder (or of
its `manifest.json`). Remote files go through fsspec, so any filesystem fsspec knows works.
`Dataset.shard_ref` gives the `ShardRef` of a shard, what readers of its contents take: the
samples of a tar shard through `shard_reader.open_shard`, an Arrow token shard through
`read_token_table`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import pyarrow as pa

from babylm.shards.access import (
    DEFAULT_TIMEOUT,
    MAX_MANIFEST_BYTES,
    fsspec_options,
    open_regular,
    read_local,
    read_url,
    regular_size,
    remote_size,
)
from babylm.shards.errors import RemoteError
from babylm.shards.manifest import MANIFEST_NAME, Manifest, ShardEntry, parse_manifest
from babylm.shards.writer import TOKEN_COLUMN, WORDS_COLUMN


def is_remote(location: str) -> bool:
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1 and scheme != "file"


def local_path(location: str | os.PathLike) -> str:
    """The path of a local location (a `file://` URL or a path)."""
    loc = str(location)
    return urlparse(loc).path if loc.startswith("file://") else loc


def join_location(base: str, relative: str) -> str:
    """`base` folder location + a relative path inside it."""
    if is_remote(base):
        return base.rstrip("/") + "/" + relative
    return os.path.join(local_path(base), relative)


def open_file(
    url: str, storage_options: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> BinaryIO:
    """Open a local regular file or any fsspec URL for binary reading (HTTP requests, one per
    block read, each within `timeout` seconds). NotRegularFile for a FIFO, device or folder."""
    if not is_remote(url):
        return open_regular(local_path(url))
    import fsspec

    return fsspec.open(url, "rb", **fsspec_options(url, storage_options, timeout)).open()


def file_size(
    url: str, storage_options: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> int | None:
    """Size in bytes of a local or remote file, or None if it does not exist (NotRegularFile
    for a local FIFO, device or folder)."""
    if not is_remote(url):
        return regular_size(local_path(url))
    return remote_size(url, storage_options, timeout)


@dataclass(frozen=True)
class ShardRef:
    """One shard as a reader sees it: its URL and the manifest facts the reader checks it by.

    `samples` for a tar shard, `tokens` (and `words`, None in shards written before prep counted
    words) for an Arrow token shard. `index_url` / `index_sha256`: the tar index the manifest
    lists beside a tar shard (None for datasets written before there were index files: a reader
    then looks for one by name, and scans the tar if there is none).
    """

    url: str
    samples: int
    bytes: int
    sha256: str
    tokens: int | None = None
    words: int | None = None
    index_url: str | None = None
    index_sha256: str | None = None


def fingerprint(shards: list[ShardRef]) -> str:
    """Short id of a shard list (its items, sizes and checksums), stored in a loader's state to
    refuse resuming on other data. Token shards count in tokens, tar shards in samples."""
    h = hashlib.sha256()
    for s in shards:
        items = s.samples if s.tokens is None else s.tokens
        h.update(f"{items}:{s.bytes}:{s.sha256}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class Dataset:
    """A resolved dataset: where it lives and what its manifest says."""

    location: str
    manifest: Manifest
    storage_options: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT  # seconds per remote request

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def shard_url(self, entry: ShardEntry) -> str:
        return join_location(self.location, entry.path)

    def shard_ref(self, entry: ShardEntry) -> ShardRef:
        """The reference readers take for the shard of manifest entry `entry`."""
        index = entry.index
        return ShardRef(
            self.shard_url(entry),
            entry.samples,
            entry.bytes,
            entry.sha256,
            (entry.tokens or 0) if self.kind == "tokens" else None,
            entry.words,
            join_location(self.location, index["path"]) if index else None,
            index["sha256"] if index else None,
        )

    @property
    def shard_urls(self) -> list[str]:
        return [self.shard_url(e) for e in self.manifest.shards]

    def open_shard(self, entry: ShardEntry) -> BinaryIO:
        return open_file(self.shard_url(entry), self.storage_options, self.timeout)


class DatasetNotFound(FileNotFoundError):
    """A dataset location without a manifest (the message names it and says what to pass)."""


def open_dataset(
    location: str | os.PathLike,
    storage_options: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 4,
) -> Dataset:
    """Resolve `location` (folder or manifest URL) and load its validated manifest.

    Raises DatasetNotFound when there is no manifest, ManifestError when it does not validate,
    RemoteError when a remote one cannot be read (its HTTP status in the message; each request
    within `timeout` seconds, `retries` more tries), NotRegularFile / FileTooLarge for a local
    one that is not a file of sane size.
    """
    loc = str(location).rstrip("/")
    if loc.endswith("/" + MANIFEST_NAME) or loc == MANIFEST_NAME:
        loc = loc[: -len(MANIFEST_NAME)].rstrip("/") or "."
    if not is_remote(loc) and not Path(local_path(loc)).exists():
        raise DatasetNotFound(
            f"{loc}: no such dataset folder; pass a folder written by babylm-prep (or its URL)"
        )
    manifest_url = join_location(loc, MANIFEST_NAME)
    try:
        if is_remote(manifest_url):
            data = read_url(
                manifest_url,
                storage_options=storage_options,
                timeout=timeout,
                retries=retries,
                limit=MAX_MANIFEST_BYTES,
            )
        else:
            data = read_local(local_path(manifest_url), MAX_MANIFEST_BYTES)
    except FileNotFoundError as e:
        raise DatasetNotFound(
            f"{manifest_url}: no manifest; is this a babylm dataset folder (or is prep unfinished)?"
        ) from e
    except RemoteError as e:
        raise RemoteError(f"{e}; cannot read the manifest", status=e.status, retry=False) from e
    return Dataset(loc, parse_manifest(data, manifest_url), dict(storage_options or {}), timeout)


def read_token_table(
    url: str,
    storage_options: dict[str, Any] | None = None,
    size: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> pa.Table:
    """An Arrow token shard as a table; local files are memory-mapped, not read into memory.
    `size`: the byte count the manifest lists (a remote read stops there; more is an error)."""
    if not is_remote(url):
        regular_size(local_path(url))  # refuses a FIFO or device before mapping it
        source = pa.memory_map(local_path(url), "r")
        return pa.ipc.open_file(source).read_all()
    if size is not None:
        data = read_url(url, 0, size, storage_options=storage_options, timeout=timeout)
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()
    with open_file(url, storage_options, timeout) as f:
        return pa.ipc.open_file(pa.BufferReader(f.read())).read_all()


def token_column(table: pa.Table) -> pa.ChunkedArray:
    if TOKEN_COLUMN not in table.column_names:
        raise ValueError(f"token shard has no '{TOKEN_COLUMN}' column (columns: {table.column_names})")
    return table.column(TOKEN_COLUMN)


def read_npy(data: bytes):
    """Decode a `.npy` member without allowing pickles, and without allocating what its header
    declares before checking that the member holds that many bytes (ValueError otherwise)."""
    import numpy as np

    fp = io.BytesIO(data)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:  # 3.0 (utf-8 field names): no public reader of its header
        shape, _, dtype = np.lib.format._read_array_header(fp, version)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > len(data) - fp.tell():
        raise ValueError(
            f".npy header declares {shape} {dtype} ({need} bytes); the member has {len(data) - fp.tell()}"
        )
    return np.load(io.BytesIO(data), allow_pickle=False)


def words_column(table: pa.Table) -> pa.ChunkedArray | None:
    """The per-row word counts of a token shard; None for shards written before prep counted words."""
    return table.column(WORDS_COLUMN) if WORDS_COLUMN in table.column_names else None
