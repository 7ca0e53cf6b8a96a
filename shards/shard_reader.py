"""Reading the samples of one tar shard, local or remote: its index, the bytes of a sample, their
CRC-32C.

webdataset reads a tar as a stream, which cannot start in the middle of a shard. The loader hands
each worker arbitrary samples, and a resume must skip consumed samples without decoding them, so
samples are read by byte range:

- the shard's *index* gives the (start, end) byte range of every sample and its CRC-32C: read
  from the `.idx` prep wrote beside the shard (`index_file.py`), or, for older datasets, built by
  one scan of the tar headers (`tar_samples.build_tar_index`, no checksums then) and cached on
  disk by the shard's sha256 (`shard_index.py`: one scan per machine, even over HTTP/S3);
- a reader reads sample bytes: `LocalShard` with `os.pread`, `RangeShard` with one ranged GET
  per sample (the loader's block-prefetching reader, `babylm.train.data.shard_files.BlockShard`,
  is a third kind). `open_shard` picks one per shard, by its URL's scheme, once;
- `checked` compares the bytes with the index's CRC-32C: a mismatch is a `CorruptSample` (skipped
  and counted), never a wrong picture; `tar_samples.parse_sample` splits the bytes into members.

A reader holds process-local handles (descriptors, fsspec sessions): made lazily, dropped when
it is pickled or finds itself in a forked child. Its loaded index is shared across fork.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from babylm.shards.access import PlainHttp, fsspec_options, open_regular, regular_size, remote_size
from babylm.shards.errors import CorruptSample, ShardError, ShardsError
from babylm.shards.index_file import checksum
from babylm.shards.manifest import MIN_TAR_SAMPLE_BYTES
from babylm.shards.reader import ShardRef, is_remote, local_path
from babylm.shards.shard_index import load_index


@dataclass(frozen=True)
class ReadOptions:
    """How shards are reached: fsspec `storage_options`, the `cache_dir` of scanned and remote
    indexes, and per request `fetch_timeout` seconds and `fetch_retries` more tries. No defaults
    here: the loader's are declared once, in `babylm.train.data.spec.LoaderSpec`."""

    storage_options: dict[str, Any]
    cache_dir: Path
    fetch_retries: int
    fetch_timeout: float


class ShardReader:
    """One tar shard, opened for reading samples by number; see the module docstring."""

    remote: ClassVar[bool]

    def __init__(self, ref: ShardRef, options: ReadOptions):
        self.ref = ref
        self.options = options
        self._index: tuple[np.ndarray, np.ndarray | None] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the process-local handles (after a fork they are the parent's)."""
        self._pid = os.getpid()

    def _own(self) -> None:
        if os.getpid() != self._pid:
            self.reset()

    def __getstate__(self) -> dict[str, Any]:
        return {"ref": self.ref, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index = None
        self.reset()

    # -- the index ------------------------------------------------------------------------------

    def index(self) -> np.ndarray:
        """(samples, 2) int64 byte ranges of the shard's samples."""
        return self._loaded()[0]

    def crcs(self) -> np.ndarray | None:
        """Per-sample CRC-32C (None: an older dataset without `.idx` files)."""
        return self._loaded()[1]

    def _loaded(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._index is None:
            self._index = load_index(self)
        return self._index

    def check(self) -> None:
        """Before anything is sized by the manifest's counts: `check_counts`, then the index,
        read, validated and of the listed length (local shards: the file's size first)."""
        self.check_counts()
        self._loaded()

    def check_counts(self) -> None:
        """ShardError unless a tar of the listed size can hold the listed samples."""
        ref = self.ref
        if ref.samples * MIN_TAR_SAMPLE_BYTES > ref.bytes:
            raise ShardError(
                f"{ref.url}: the manifest lists {ref.samples} samples, more than a tar of "
                f"{ref.bytes} bytes can hold (forged or damaged manifest)"
            )

    def check_size(self, size: int) -> None:
        """ShardError unless `size` is the manifest's byte count."""
        ref = self.ref
        if size != ref.bytes:
            raise ShardError(
                f"{ref.url}: shard is {size} bytes but the manifest says {ref.bytes}; "
                "it was changed or truncated after prep (run `babylm-prep verify`)"
            )

    # -- what each kind of reader provides ------------------------------------------------------

    def fetch_index(self, url: str, size: int) -> bytes | None:
        """At most `size` bytes of the index file at `url`; None if it does not exist."""
        raise NotImplementedError

    def confirm_size(self) -> None:
        """Check the shard's size before its index is scanned or taken from the scan cache
        (a local shard's is checked when it is opened)."""

    def scan(self) -> np.ndarray:
        """The sample ranges from the tar's headers (for a shard without an `.idx`)."""
        raise NotImplementedError

    @classmethod
    def read_many(cls, readers: list[Any], samples: list[int]) -> list[bytes]:
        """The bytes of sample `samples[j]` of `readers[j]` (all of this class), unchecked: one
        call per batch, so a reader can serve a batch's samples together."""
        raise NotImplementedError

    def read_again(self, sample: int) -> bytes | None:
        """Bytes of a sample whose checksum failed, from the source (None: nothing to retry)."""
        return None

    def close(self) -> None:
        """Release the process-local handles."""
        self.reset()

    # -- reading --------------------------------------------------------------------------------

    def verified(self, sample: int, data: bytes) -> bytes | CorruptSample:
        """`data` if it passes the sample's CRC-32C (or the shard has none), else the bytes read
        again if the reader can and they pass, else a CorruptSample naming the shard."""
        crcs = self.crcs()
        if crcs is None or checksum(data) == crcs[sample]:
            return data
        again = self.read_again(sample)
        if again is not None and checksum(again) == crcs[sample]:
            return again
        return CorruptSample(f"{self.ref.url}: sample {sample} fails its CRC-32C (damaged bytes)")

    def checked(self, samples: list[int]) -> list[bytes | CorruptSample]:
        """The bytes of `samples` of this shard, checked (see `verified`)."""
        data = type(self).read_many([self] * len(samples), samples)
        return [self.verified(n, d) for n, d in zip(samples, data, strict=True)]


class LocalShard(ShardReader):
    """A shard on a local file system (a path or `file://`): `os.pread`, one call per sample."""

    remote = False

    def reset(self) -> None:
        super().reset()
        self._fd: int | None = None

    def path(self) -> str:
        return local_path(self.ref.url)

    def fd(self) -> int:
        """The shard's descriptor in this process, opened once (its size checked then)."""
        self._own()
        if self._fd is None:
            url = self.ref.url
            try:
                f = open_regular(self.path())
            except FileNotFoundError as e:
                raise ShardError(f"{url}: shard listed in the manifest is missing") from e
            except (ShardsError, OSError) as e:
                raise ShardError(f"{url}: cannot open the shard: {e}") from e
            fd = os.dup(f.fileno())
            f.close()
            try:
                self.check_size(os.fstat(fd).st_size)
            except ShardError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def check(self) -> None:
        ref = self.ref
        self.check_counts()
        try:
            size = regular_size(self.path())
        except ShardsError as e:
            raise ShardError(f"{ref.url}: cannot open the shard: {e}") from e
        if size is None:
            raise ShardError(f"{ref.url}: shard listed in the manifest is missing")
        self.check_size(size)
        self._loaded()

    def fetch_index(self, url: str, size: int) -> bytes | None:
        from babylm.shards.access import read_local

        try:
            return read_local(local_path(url), size)
        except FileNotFoundError:
            return None
        except (ShardsError, OSError) as e:
            raise ShardError(f"{url}: cannot read the tar index: {e}") from e

    def scan(self) -> np.ndarray:
        from babylm.shards.tar_samples import build_tar_index

        with os.fdopen(os.dup(self.fd()), "rb") as f:
            return build_tar_index(f, self.ref.url)

    @classmethod
    def read_many(cls, readers: list[Any], samples: list[int]) -> list[bytes]:
        out = []
        for r, n in zip(readers, samples, strict=True):
            start, end = r.index()[n].tolist()
            out.append(os.pread(r.fd(), end - start, start))
        return out

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        super().close()


class RangeShard(ShardReader):
    """A remote shard (`http(s)://`, `s3://`, anything fsspec knows): one ranged GET per sample,
    a batch's requests made concurrently."""

    remote = True

    def reset(self) -> None:
        super().reset()
        self._fs: tuple[Any, str] | None = None

    def fs(self) -> tuple[Any, str]:
        """(fsspec filesystem, path) of the shard, made once per process, with a total timeout
        per HTTP request (aiohttp's default is 5 minutes)."""
        self._own()
        if self._fs is None:
            import fsspec

            url, o = self.ref.url, self.options
            self._fs = fsspec.core.url_to_fs(url, **fsspec_options(url, o.storage_options, o.fetch_timeout))
        return self._fs

    def ranges_fs(self) -> tuple[Any, str]:
        """What block and index downloads go through: `PlainHttp` for plain http(s) shards (less
        CPU per byte), the fsspec filesystem otherwise (S3, or HTTP with storage options)."""
        url = self.ref.url
        if url.startswith(("http://", "https://")) and not self.options.storage_options:
            return PlainHttp(self.options.fetch_timeout), url
        return self.fs()

    def size(self) -> int:
        """The shard's size now, asked of the server."""
        url, o = self.ref.url, self.options
        try:
            size = remote_size(url, o.storage_options, o.fetch_timeout)
        except ShardsError as e:  # names the URL and the status
            raise ShardError(f"cannot get the size of a shard: {e}") from e
        except Exception as e:  # noqa: BLE001 - any client failure: one error naming the shard
            raise ShardError(f"{url}: cannot get its size: {type(e).__name__}: {e}") from e
        if size is None:
            raise ShardError(f"{url}: shard listed in the manifest is missing")
        return size

    def confirm_size(self) -> None:
        self.check_size(self.size())

    def fetch_index(self, url: str, size: int) -> bytes | None:
        from babylm.shards.access import fetch_range

        fs, _ = self.ranges_fs()
        path = url if isinstance(fs, PlainHttp) else fs._strip_protocol(url)
        try:
            return fetch_range(fs, path, 0, size, url, self.options.fetch_retries)
        except FileNotFoundError:
            return None

    def scan(self) -> np.ndarray:
        from babylm.shards.tar_samples import build_tar_index

        fs, path = self.fs()
        with fs.open(path, "rb", block_size=8 << 20, cache_type="readahead") as f:
            return build_tar_index(f, self.ref.url)

    @classmethod
    def read_many(cls, readers: list[Any], samples: list[int]) -> list[bytes]:
        out: list[Any] = [None] * len(readers)
        by_fs: dict[int, list[int]] = {}
        for j, r in enumerate(readers):
            by_fs.setdefault(id(r.fs()[0]), []).append(j)
        for group in by_fs.values():
            fs = readers[group[0]].fs()[0]
            paths = [readers[j].fs()[1] for j in group]
            ranges = [readers[j].index()[samples[j]].tolist() for j in group]
            data = fs.cat_ranges(paths, [r[0] for r in ranges], [r[1] for r in ranges], on_error="return")
            for j, d, (s, e) in zip(group, data, ranges, strict=True):
                url = readers[j].ref.url
                if isinstance(d, BaseException):
                    raise ShardError(f"{url}: read failed: {d}") from d
                if len(d) != e - s:
                    raise ShardError(
                        f"{url}: asked bytes [{s}, {e}), got {len(d)} bytes "
                        "(does the server support HTTP range requests?)"
                    )
                out[j] = d
        return out


def open_shard(ref: ShardRef, options: ReadOptions) -> ShardReader:
    """The reader of shard `ref`, by its URL's scheme: local files by `os.pread`, anything else
    by ranged GETs."""
    return RangeShard(ref, options) if is_remote(ref.url) else LocalShard(ref, options)
