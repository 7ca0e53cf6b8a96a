"""The samples of a WebDataset tar: its member headers, grouped into samples.

- `build_tar_index` gives the byte range of every sample (its run of `{key}.*` members, grouped
  with webdataset's own `base_plus_ext` key rule) by reading only the member headers. The loader
  uses it for datasets written before prep wrote `.idx` files, and `write_manifest` to index a
  tar shard that arrived without one.
- `parse_sample` splits one sample's byte range (read by `shard_reader.py`) into its members.
  It trusts the headers' checksums, which the index scan verified once, or the sample's CRC-32C
  from the `.idx`, checked by the reader before this runs.
- `iter_tar_samples` streams every sample of a whole tar in order (verify, inspect, prep's
  word-count backfill: tools that read everything once).

A minimal header parser, ~20x faster than opening a `tarfile` per sample, which matters next to
a ~0.5 ms JPEG decode; pax, GNU long-name and pre-POSIX headers go through `tarfile`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
from webdataset.tariterators import base_plus_ext

from babylm.shards.errors import CorruptSample


class TarScanError(ValueError):
    """A tar whose header structure is damaged or truncated."""


BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
# Extended headers that change the next member's name or size: parsed by tarfile.
_EXTENDED = (b"x", b"g", b"L", b"K", b"X")
_REGULAR = (b"0", b"\0", b"7")


def _pad(size: int) -> int:
    return (size + BLOCK - 1) & ~(BLOCK - 1)


def _number(field: bytes) -> int:
    if field[0] & 0x80:  # base-256, for members over 8 GiB
        return tarfile.nti(field)  # type: ignore[attr-defined]
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _header(hdr: bytes, where: str) -> tuple[bytes, int, bytes]:
    """(name, size, typeflag) of a tar header; raises ValueError on a bad checksum."""
    stored = _number(hdr[148:156])
    # The checksum is the byte sum with the checksum field itself read as spaces.
    if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
        raise ValueError(f"{where}: tar header checksum mismatch")
    name = hdr[:100].split(b"\0", 1)[0]
    if hdr[257:262] == b"ustar" and hdr[345] != 0:
        name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
    return name, _number(hdr[124:136]), hdr[156:157]


def split_member_name(name: str) -> tuple[str | None, str | None]:
    """(key, extension) by webdataset's rule (`base_plus_ext`: the key ends at the first dot of
    the file name), without its regex in the common case, where the regex costs more than the
    rest of parsing a header."""
    folder, slash, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not stem:  # a file name starting with a dot: leave the odd cases to webdataset's rule
        return base_plus_ext(name)
    if not dot:
        return None, None
    return folder + slash + stem, ext


def _scan_with_tarfile(f: Any, source: str) -> list[tuple[str, int, int]]:
    f.seek(0)
    out = []
    with tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            if m.isfile():
                out.append((m.name, m.offset, m.offset_data + _pad(m.size)))
    return out


def _scan_members(f: Any, source: str) -> list[tuple[str, int, int]]:
    """(name, range start, range end) of every regular member, reading only the headers."""
    out = []
    pos = 0
    while True:
        f.seek(pos)
        hdr = f.read(BLOCK)
        if len(hdr) < BLOCK:
            if not hdr:
                return out  # no end-of-archive blocks: still a readable tar
            raise TarScanError(f"{source}: truncated tar header at byte {pos}")
        if hdr == ZERO_BLOCK:
            return out
        try:
            name, size, typeflag = _header(hdr, f"{source} at byte {pos}")
        except ValueError as e:
            raise TarScanError(f"{source}: corrupt tar: {e}") from e
        if typeflag in _EXTENDED:
            return _scan_with_tarfile(f, source)
        end = pos + BLOCK + _pad(size)
        if typeflag in _REGULAR:
            out.append((name.decode("utf-8", "surrogateescape"), pos, end))
        pos = end


def build_tar_index(f: Any, source: str) -> np.ndarray:
    """(num_samples, 2) int64 byte ranges [start, end) of the samples of a tar, in tar order."""
    starts: list[int] = []
    ends: list[int] = []
    current = None
    for name, start, end in _scan_members(f, source):
        key, _ = split_member_name(name)
        if key is None:
            continue  # webdataset skips members without an extension too
        if key != current:
            starts.append(start)
            ends.append(end)
            current = key
        else:
            ends[-1] = end
    return np.array([starts, ends], dtype=np.int64).T.reshape(-1, 2)


def parse_sample(chunk: bytes, source: str) -> dict[str, Any]:
    """The members of one sample's byte range as {"__key__", ext: bytes}; CorruptSample naming
    `source` if the range holds no member, or members of two samples."""
    sample: dict[str, Any] = {}
    pos, n = 0, len(chunk)
    # Inlined header parsing: this runs once per member of every sample read.
    while pos + BLOCK <= n:
        typeflag = chunk[pos + 156 : pos + 157]
        if chunk[pos + 257 : pos + 262] != b"ustar" or chunk[pos + 345] != 0 or typeflag in _EXTENDED:
            if chunk[pos : pos + BLOCK] == ZERO_BLOCK:
                break
            return _parse_with_tarfile(chunk, source)  # pre-POSIX, long names, pax: the slow path
        size = _number(chunk[pos + 124 : pos + 136])
        if typeflag in _REGULAR:
            name = chunk[pos : pos + 100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            _add_member(sample, name, chunk[pos + BLOCK : pos + BLOCK + size])
        pos += BLOCK + _pad(size)
    if "__key__" not in sample:
        raise CorruptSample(f"{source}: no members in sample range")
    return sample


def _add_member(sample: dict[str, Any], name: str, data: bytes) -> None:
    key, ext = split_member_name(name)
    if key is None or ext is None:
        return
    if sample.setdefault("__key__", key) != key:
        raise CorruptSample(f"members of two samples ({sample['__key__']}, {key}) in one index range")
    sample[ext.lower()] = data


def _parse_with_tarfile(chunk: bytes, source: str) -> dict[str, Any]:
    sample: dict[str, Any] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(chunk), mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    _add_member(sample, m.name, tar.extractfile(m).read())  # type: ignore[union-attr]
    except tarfile.TarError as e:
        raise CorruptSample(f"{source}: damaged tar header in a sample: {e}") from e
    if "__key__" not in sample:
        raise CorruptSample(f"{source}: no members in sample range")
    return sample


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
