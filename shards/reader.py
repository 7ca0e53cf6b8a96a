"""Resolve a dataset location to its manifest and shard URLs, and read shards.

A location is a local folder, `file://`, `http(s)://` or `s3://` URL of a dataset folder (or of
its `manifest.json`). Remote files go through fsspec, so any filesystem fsspec knows works.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import pyarrow as pa

from babylm.shards.manifest import MANIFEST_NAME, Manifest, ShardEntry, parse_manifest
from babylm.shards.writer import TOKEN_COLUMN, WORDS_COLUMN


def is_remote(location: str) -> bool:
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1 and scheme != "file"


def _local_path(location: str) -> str:
    loc = str(location)
    return urlparse(loc).path if loc.startswith("file://") else loc


def join_location(base: str, relative: str) -> str:
    """`base` folder location + a relative path inside it."""
    if is_remote(base):
        return base.rstrip("/") + "/" + relative
    return os.path.join(_local_path(base), relative)


def open_file(url: str, storage_options: dict[str, Any] | None = None) -> BinaryIO:
    """Open a local path or any fsspec URL for binary reading."""
    if not is_remote(url):
        return open(_local_path(url), "rb")
    import fsspec

    return fsspec.open(url, "rb", **(storage_options or {})).open()


def file_size(url: str, storage_options: dict[str, Any] | None = None) -> int | None:
    """Size in bytes of a local or remote file, or None if it does not exist."""
    if not is_remote(url):
        p = Path(_local_path(url))
        return p.stat().st_size if p.exists() else None
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    try:
        return int(fs.size(path))
    except FileNotFoundError:
        return None


@dataclass
class Dataset:
    """A resolved dataset: where it lives and what its manifest says."""

    location: str
    manifest: Manifest
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def shard_url(self, entry: ShardEntry) -> str:
        return join_location(self.location, entry.path)

    @property
    def shard_urls(self) -> list[str]:
        return [self.shard_url(e) for e in self.manifest.shards]

    def open_shard(self, entry: ShardEntry) -> BinaryIO:
        return open_file(self.shard_url(entry), self.storage_options)


class DatasetNotFound(FileNotFoundError):
    """A dataset location without a manifest (the message names it and says what to pass)."""


def open_dataset(location: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> Dataset:
    """Resolve `location` (folder or manifest URL) and load its validated manifest.

    Raises DatasetNotFound when there is no manifest, ManifestError when it does not validate.
    """
    loc = str(location).rstrip("/")
    if loc.endswith("/" + MANIFEST_NAME) or loc == MANIFEST_NAME:
        loc = loc[: -len(MANIFEST_NAME)].rstrip("/") or "."
    if not is_remote(loc) and not Path(_local_path(loc)).exists():
        raise DatasetNotFound(
            f"{loc}: no such dataset folder; pass a folder written by babylm-prep (or its URL)"
        )
    manifest_url = join_location(loc, MANIFEST_NAME)
    try:
        with open_file(manifest_url, storage_options) as f:
            data = f.read()
    except FileNotFoundError as e:
        raise DatasetNotFound(
            f"{manifest_url}: no manifest; is this a babylm dataset folder (or is prep unfinished)?"
        ) from e
    return Dataset(loc, parse_manifest(data, manifest_url), dict(storage_options or {}))


def iter_tar_samples(fileobj: BinaryIO, source: str = "") -> Iterator[dict[str, Any]]:
    """Group the members of a WebDataset tar into samples: {"__key__", ext: bytes, ...}.

    Raises tarfile.TarError (with `source` in the message) on a corrupt or truncated tar.
    """
    current: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key}
                current[ext] = data
    except tarfile.TarError as e:
        raise tarfile.TarError(f"{source}: {e}") from e
    if current is not None:
        yield current


def read_token_table(url: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """An Arrow token shard as a table; local files are memory-mapped, not read into memory."""
    if not is_remote(url):
        source = pa.memory_map(_local_path(url), "r")
        return pa.ipc.open_file(source).read_all()
    with open_file(url, storage_options) as f:
        return pa.ipc.open_file(pa.BufferReader(f.read())).read_all()


def token_column(table: pa.Table) -> pa.ChunkedArray:
    if TOKEN_COLUMN not in table.column_names:
        raise ValueError(f"token shard has no '{TOKEN_COLUMN}' column (columns: {table.column_names})")
    return table.column(TOKEN_COLUMN)


def read_npy(data: bytes):
    """Decode a `.npy` member without allowing pickles."""
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def words_column(table: pa.Table) -> pa.ChunkedArray | None:
    """The per-row word counts of a token shard; None for shards written before prep counted words."""
    return table.column(WORDS_COLUMN) if WORDS_COLUMN in table.column_names else None
