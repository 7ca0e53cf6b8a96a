"""Join the part folders of one planned run (`part=(I, N)`) into one dataset, as a single run.

Shards, their entries and the unit records are hard-linked (or copied) under the names a single
run gives them, then `records.assemble` writes the manifest: the result equals an uninterrupted
run byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from babylm.prep.errors import OutputError
from babylm.prep.sharding.records import (
    PLAN_NAME,
    assemble,
    load_unit,
    read_plan,
    record_units,
    shard_name,
    unit_record_path,
)
from babylm.shards import Manifest
from babylm.shards.manifest import atomic_write_bytes
from babylm.shards.writer import ENTRIES_DIR


def _link(src: Path, dst: Path) -> None:
    """Hard-link (same file system) or copy `src` to `dst`; an identical `dst` is kept."""
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size and (
            dst.samefile(src) or dst.read_bytes() == src.read_bytes()
        ):
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _first_missing(found: dict[int, Path], units: int, count: int) -> list[int]:
    """The `count` lowest unit numbers below `units` not in `found` (at most len(found) + count
    steps, whatever `units` says)."""
    missing: list[int] = []
    unit = 0
    while len(missing) < count and unit < units:
        if unit not in found:
            missing.append(unit)
        unit += 1
    return missing


def merge_parts(folders: list[Path], out_dir: Path) -> Manifest:
    """Join the part folders of one planned run into `out_dir` and write its manifest.

    Every folder must hold the same plan; together they must cover every work unit. Shards,
    their entries and the unit records are hard-linked (or copied) into `out_dir` under the
    names a single run would have given them, so the result equals a single run.
    """
    plans = {}
    for folder in folders:
        plan = read_plan(folder)
        if plan is None:
            raise OutputError(f"{folder}: no {PLAN_NAME}; not a part folder written by babylm-prep")
        plans[folder] = plan
    shas = {p["plan_sha256"] for p in plans.values()}
    if len(shas) != 1:
        detail = "; ".join(f"{f}: {p['plan_sha256'][:12]}" for f, p in plans.items())
        raise OutputError(f"the folders belong to different prep runs (plans {detail})")
    plan = next(iter(plans.values()))
    sha = plan["plan_sha256"]
    units = plan["units"]
    # Only the records on disk are looked at: a plan's unit count is never a loop bound by itself.
    found: dict[int, Path] = {}
    for folder in folders:
        for unit in record_units(folder):
            if unit < units and unit not in found and load_unit(folder, unit, sha) is not None:
                found[unit] = folder
    if len(found) < units:
        missing = _first_missing(found, units, 10)
        shown = ", ".join(map(str, missing)) + (" ..." if units - len(found) > len(missing) else "")
        raise OutputError(
            f"{', '.join(map(str, folders))}: {units - len(found)} of {units} work units are in none of "
            f"the folders (units {shown}); run the missing parts first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    old = read_plan(out_dir)
    if old is not None and old["plan_sha256"] != sha:
        raise OutputError(f"{out_dir}: holds a different prep run; merge into an empty folder")
    atomic_write_bytes(out_dir / PLAN_NAME, (folders[0] / PLAN_NAME).read_bytes())
    for unit, folder in sorted(found.items()):
        if folder.resolve() == out_dir.resolve():
            continue
        name = shard_name(unit)
        rec_src = unit_record_path(folder, unit)
        rec = json.loads(rec_src.read_text())
        if rec.get("shard") is not None:
            _link(folder / name, out_dir / name)
            _link(folder / ENTRIES_DIR / f"{name}.json", out_dir / ENTRIES_DIR / f"{name}.json")
        _link(rec_src, unit_record_path(out_dir, unit))
    return assemble(out_dir)
