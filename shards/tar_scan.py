"""Finding the samples of a WebDataset tar by reading only its member headers.

`build_tar_index` gives the byte range of every sample (its run of `{key}.*` members, grouped
with webdataset's own `base_plus_ext` key rule). The loader uses it for datasets written before
prep wrote `.idx` files, and `write_manifest` to index a tar shard that arrived without one.
A minimal header parser, ~20x faster than `tarfile` per member; pax, GNU long-name and
pre-POSIX headers go through `tarfile`.
"""

from __future__ import annotations

import tarfile
from typing import Any

import numpy as np
from webdataset.tariterators import base_plus_ext


class TarScanError(ValueError):
    """A tar whose header structure is damaged or truncated."""


BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
# Extended headers that change the next member's name or size: parsed by tarfile.
EXTENDED = (b"x", b"g", b"L", b"K", b"X")
REGULAR = (b"0", b"\0", b"7")


def pad(size: int) -> int:
    return (size + BLOCK - 1) & ~(BLOCK - 1)


def number(field: bytes) -> int:
    if field[0] & 0x80:  # base-256, for members over 8 GiB
        return tarfile.nti(field)  # type: ignore[attr-defined]
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _header(hdr: bytes, where: str) -> tuple[bytes, int, bytes]:
    """(name, size, typeflag) of a tar header; raises ValueError on a bad checksum."""
    stored = number(hdr[148:156])
    # The checksum is the byte sum with the checksum field itself read as spaces.
    if stored != sum(hdr[:148]) + 256 + sum(hdr[156:]):
        raise ValueError(f"{where}: tar header checksum mismatch")
    name = hdr[:100].split(b"\0", 1)[0]
    if hdr[257:262] == b"ustar" and hdr[345] != 0:
        name = hdr[345:500].split(b"\0", 1)[0] + b"/" + name
    return name, number(hdr[124:136]), hdr[156:157]


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
                out.append((m.name, m.offset, m.offset_data + pad(m.size)))
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
        if typeflag in EXTENDED:
            return _scan_with_tarfile(f, source)
        end = pos + BLOCK + pad(size)
        if typeflag in REGULAR:
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
