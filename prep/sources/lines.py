"""Line-oriented input files (TSV, JSONL) read in large blocks. `scan_lines` finds every line's
byte offset (numpy, no per-line Python), so that a listing keeps offsets instead of lines and a
part reads back just its own lines (`read_lines_at`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BLOCK_BYTES = 1 << 24


def iter_lines(path: Path) -> Iterator[bytes]:
    """Every line, split at LF only, the LF dropped (a CR before it is kept: callers decide); a
    last line without LF is a line, an empty file has none."""
    rest = b""
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines
    if rest:
        yield rest


def scan_lines(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The byte offset of every line (as `iter_lines` splits them) and the file's fingerprint."""
    sha = hashlib.sha256()
    starts = [np.zeros(1, np.int64)]
    size = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            sha.update(block)
            newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == 0x0A)
            starts.append(newlines.astype(np.int64) + (size + 1))
            size += len(block)
    offsets = np.concatenate(starts)
    if offsets[-1] == size:  # the file ends with LF (or is empty): no line starts there
        offsets = offsets[:-1]
    return offsets, {"name": path.name, "bytes": size, "sha256": sha.hexdigest()}


def read_lines_at(path: Path, offsets: Sequence[int]) -> list[bytes]:
    """The lines starting at `offsets` (as `iter_lines` gives them), in the order given."""
    order = sorted(range(len(offsets)), key=offsets.__getitem__)  # one forward pass over the file
    lines: list[bytes] = [b""] * len(offsets)
    with open(path, "rb") as f:
        for i in order:
            f.seek(offsets[i])
            lines[i] = f.readline().removesuffix(b"\n")
    return lines
