"""The input of a sharding run: `Row`s with typed locations, and the plan that cuts them into units.

A source module (cc3m, localnarr, features) lists its input as `Row`s in input order, each with a
stable key and a location (`FileLoc`, `TarMemberLoc`, `AnnotationLoc` or `ArrayRowLoc`) that its
processor reads. `make_plan` shuffles the rows with the seed and cuts them into fixed work units
of `samples_per_shard` input rows: unit i always covers the same rows, whatever the number of
workers or parts. The plan's fingerprint covers the parameters and every row's content (not its
location: absolute paths may move).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from typing import Any, NamedTuple


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


def make_plan(
    kind: str, name: str, rows: list[Row], params: dict[str, Any], seed: int, samples_per_shard: int
) -> tuple[dict[str, Any], list[list[int]]]:
    """The plan (fingerprinted) and the work units: lists of row indices, shuffled with the seed."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    per = samples_per_shard
    units = [order[i : i + per] for i in range(0, len(order), per)]
    params = dict(params, seed=seed, samples_per_shard=per, input_rows=len(rows), units=len(units))
    sha = hashlib.sha256(json.dumps([kind, name, params], sort_keys=True).encode())
    # Locations are absolute paths and may move; the rows' content is what must not change.
    # repr of str/int/dict/None is stable and several times faster than json for millions of rows.
    for i in range(0, len(rows), 10_000):
        chunk = rows[i : i + 10_000]
        sha.update("\n".join(repr((r.key, r.caption, r.info, r.reason, r.detail)) for r in chunk).encode())
    plan = {
        "kind": kind,
        "name": name,
        "units": len(units),
        "plan_sha256": sha.hexdigest(),
        "params": dict(params, plan_sha256=sha.hexdigest()),
    }
    return plan, units
