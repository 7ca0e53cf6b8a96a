"""The input of a sharding run: `Row`s with typed locations, and the plan that cuts them into units.

A source module (cc3m, localnarr, features) lists its input as `Row`s in input order, each with a
stable key and a location (`FileLoc`, `TarMemberLoc`, `AnnotationLoc` or `ArrayRowLoc`) that its
processor reads. `make_plan` shuffles the rows with the seed and cuts them into fixed work units
of `samples_per_shard` input rows: unit i always covers the same rows, whatever the number of
workers or parts. The plan's fingerprint covers the parameters and every row's content (not its
location: absolute paths may move).

Rows come as a `RowSet`: a plain list (`RowList`) for inputs of thousands of rows, or a columnar
listing (`prep.sources.cc3m`, `prep.sources.localnarr`) that holds millions of rows as arrays
and builds `Row` objects only for the units a part processes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np


class FileLoc(NamedTuple):
    """An image file (cc3m downloader: relative to the CC-3M folder; localnarr jsonl: absolute)."""

    path: str


class TarMemberLoc(NamedTuple):
    """An image member of an uncompressed tar, and its `.json` sidecar (json_offset -1: none)."""

    path: str
    offset: int
    size: int
    json_offset: int
    json_size: int


class AnnotationLoc(NamedTuple):
    """A Localized Narratives annotation file; its image is found under `images` by `prefix`."""

    path: str
    images: str
    prefix: str


class ArrayRowLoc(NamedTuple):
    """Row `index` of the `file`-th feature array."""

    file: int
    index: int


Loc = FileLoc | TarMemberLoc | AnnotationLoc | ArrayRowLoc


class Row(NamedTuple):
    """One input row. `reason` set = skipped while listing (with `detail`), the payload is not read."""

    key: str
    caption: str | None  # None: the processor finds it (one-JSON-per-annotation layouts)
    loc: Loc | None  # how the processor finds the payload; None for rows skipped while listing
    info: dict[str, Any]  # facts for `{key}.json` and `skipped.jsonl` (row, url, file, ...)
    reason: str | None = None
    detail: str = ""


Processor = Callable[[Row], dict[str, Any]]


class RowSet(Protocol):
    """The listed input rows of a run, in input order."""

    def __len__(self) -> int: ...

    def hash_into(self, sha: Any) -> None:
        """Feed the rows' content (not their locations) into a hashlib object."""

    def take(self, indices: Sequence[int]) -> list[Row]:
        """The rows at `indices`, in that order."""


class RowList(list[Row]):
    """Rows held as Python objects: the sources with up to a few hundred thousand rows."""

    def hash_into(self, sha: Any) -> None:
        # repr of str/int/dict/None is stable and several times faster than json.
        for i in range(0, len(self), 10_000):
            chunk = self[i : i + 10_000]
            sha.update(
                "\n".join(repr((r.key, r.caption, r.info, r.reason, r.detail)) for r in chunk).encode()
            )

    def take(self, indices: Sequence[int]) -> list[Row]:
        return [self[i] for i in indices]


class Units:
    """Work unit i: the row indices order[i * per : (i + 1) * per] of the shuffled order."""

    def __init__(self, order: np.ndarray, per: int, reused: bool = False):
        self.order = order
        self.per = per
        self.reused = reused  # the order was read from an earlier part's plan, not shuffled here

    def __len__(self) -> int:
        return -(-len(self.order) // self.per)

    def __getitem__(self, unit: int) -> list[int]:
        return self.order[unit * self.per : (unit + 1) * self.per].tolist()

    def size(self, unit: int) -> int:
        return min(self.per, len(self.order) - unit * self.per)


def parse_part(text: str | None) -> tuple[int, int] | None:
    """`I/N` with 0 <= I < N (Slurm: `--part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`)."""
    if not text:
        return None
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--part must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--part {text}: need 0 <= I < N")
    return index, count


def plan_fingerprint(kind: str, name: str, rows: RowSet, params: dict[str, Any]) -> str:
    """sha256 of the kind, name, parameters (with seed and unit size) and the rows' content."""
    sha = hashlib.sha256(json.dumps([kind, name, params], sort_keys=True).encode())
    # Locations are absolute paths and may move; the rows' content is what must not change.
    rows.hash_into(sha)
    return sha.hexdigest()


def shuffled_order(count: int, seed: int) -> np.ndarray:
    """The row indices shuffled with the seed (Python's Mersenne Twister: the same order on every
    platform and in every release of this pipeline)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return np.array(order, dtype=np.int64)


def make_plan(
    kind: str,
    name: str,
    rows: RowSet,
    params: dict[str, Any],
    seed: int,
    samples_per_shard: int,
    order: Callable[[str], np.ndarray | None] = lambda sha: None,
) -> tuple[dict[str, Any], Units]:
    """The plan (fingerprinted) and its work units: rows shuffled with the seed, cut in runs of
    `samples_per_shard`. `order(plan_sha256)` may return the order an earlier part saved."""
    per = samples_per_shard
    n_units = -(-len(rows) // per)
    params = dict(params, seed=seed, samples_per_shard=per, input_rows=len(rows), units=n_units)
    sha = plan_fingerprint(kind, name, rows, params)
    saved = order(sha)
    plan = {
        "kind": kind,
        "name": name,
        "units": n_units,
        "plan_sha256": sha,
        "params": dict(params, plan_sha256=sha),
    }
    if saved is not None:
        return plan, Units(saved, per, reused=True)
    return plan, Units(shuffled_order(len(rows), seed), per)
