"""Columnar listings of inputs with millions of rows, computed once per output folder.

Listing CC-3M's 3.3M rows as Python objects took 2.8 GB and a minute, in every part of an array
job. A listing instead keeps a few numbers per row in numpy arrays (byte offsets of its lines, a
status code, the row a duplicate repeats), saved under `<out>/.listing/<name>/` with the facts it
was computed from (input paths, sizes and mtimes, parameters). The first part of an array job (or
`--plan-only`) computes it under a file lock; the other parts memory-map it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from babylm.shards.access import flock
from babylm.shards.atomic import atomic_folder

LISTING_DIR = ".listing"
KEY_FILE = "listing.json"
FORMAT = 1

Arrays = dict[str, np.ndarray]
Built = tuple[Arrays, dict[str, Any]]  # the arrays, and facts for the manifest (input fingerprints)


def file_stats(paths: list[Path]) -> list[list[Any]]:
    """[absolute path, size, mtime_ns] of each input: what decides whether a listing is current."""
    stats = []
    for p in paths:
        st = p.stat()
        stats.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return stats


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` while the listing is built; shared file systems that refuse
    flock get no lock (then two parts may both build it; each writes the same files atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        flock(f)
        yield


def _load(folder: Path, key: dict[str, Any]) -> Built | None:
    try:
        # A prep with other parameters may replace the folder meanwhile (a rename): the same
        # folder before and after means the key and the arrays belong together.
        before = os.stat(folder).st_ino
        saved = json.loads((folder / KEY_FILE).read_text())
        if saved["key"] != key:
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in saved["arrays"]}
        if os.stat(folder).st_ino != before:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, saved["facts"]


def _save(folder: Path, key: dict[str, Any], built: Built) -> None:
    arrays, facts = built
    with atomic_folder(folder) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        text = json.dumps({"key": key, "arrays": sorted(arrays), "facts": facts}, indent=1)
        (tmp / KEY_FILE).write_text(text + "\n")


def cached_listing(out_dir: Path, name: str, key: dict[str, Any], build: Callable[[], Built]) -> Built:
    """The listing `name` of `out_dir` if it was computed from the same `key`, else `build()`
    (once, under a lock, while other parts wait), saved for the parts that follow."""
    folder = out_dir / LISTING_DIR / name
    key = {"format": FORMAT, **key}
    found = _load(folder, key)
    if found is not None:
        return found
    lock = out_dir / LISTING_DIR / f"{name}.lock"
    created = [d for d in (out_dir, lock.parent) if not d.exists()]
    try:
        with _locked(lock):
            found = _load(folder, key)  # another part may have built it while this one waited
            if found is not None:
                return found
            # Holding the lock, this is the only process building it: what a killed build left goes.
            for stale in lock.parent.glob(f".{name}.*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
            _save(folder, key, build())
            # Still under the lock: a prep with other parameters racing on this --out may
            # replace the listing as soon as the lock is released (the mapped arrays stay valid).
            found = _load(folder, key)
    except BaseException:
        # Bad input found while listing leaves no trace: no output folder appears for it.
        lock.unlink(missing_ok=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    assert found is not None, f"{folder}: the listing just written cannot be read back"
    return found


def first_of_repeats(
    rows: np.ndarray, hashes: np.ndarray, texts_of: Callable[[np.ndarray], list[Hashable]]
) -> dict[int, int]:
    """{row: the earliest row with the same text} for every row that repeats an earlier one.

    `rows` (ascending) are the rows that take part, `hashes` their texts' hashes; only rows whose
    hash occurs more than once have their texts read (`texts_of`), so equal hashes are confirmed
    on the text and a hash collision never makes a duplicate."""
    by_hash = np.argsort(hashes, kind="stable")
    sorted_hash = hashes[by_hash]
    repeated = np.zeros(len(rows), bool)
    repeated[1:] = sorted_hash[1:] == sorted_hash[:-1]
    repeated[:-1] |= repeated[1:].copy()
    candidates = np.sort(rows[by_hash[repeated]])
    seen: dict[Hashable, int] = {}
    first = {}
    for i, text in zip(candidates.tolist(), texts_of(candidates), strict=True):
        found = seen.setdefault(text, i)
        if found != i:
            first[i] = found
    return first
