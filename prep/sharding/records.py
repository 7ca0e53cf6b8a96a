"""Bookkeeping of an image/feature prep run: the plan file, per-unit records, and the manifest.

A run is planned once (`.plan.json`: parameters, number of work units, a fingerprint of the
input rows; `.plan.order-<plan sha256>.npy`: the shuffled row order, so that the parts of an array job do not
shuffle millions of rows again); each work unit, when complete, leaves a record in `.units/` with its shard entry,
skip counts and skipped rows. Everything the manifest and `skipped.jsonl` say is assembled from
those records in unit order, so an interrupted-and-resumed run, a run split into `--part`s and
an uninterrupted run all write the same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.errors import OutputError
from babylm.shards import Manifest, ShardEntry, read_entry, write_manifest
from babylm.shards.atomic import atomic_write
from babylm.shards.manifest import atomic_write_bytes
from babylm.shards.writer import ENTRIES_DIR

PLAN_NAME = ".plan.json"
UNITS_DIR = ".units"
SKIPPED_NAME = "skipped.jsonl"


def shard_name(unit: int) -> str:
    return f"shard-{unit:06d}.tar"


def unit_record_path(out_dir: Path, unit: int) -> Path:
    return out_dir / UNITS_DIR / f"unit-{unit:06d}.json"


def part_manifest_name(index: int, count: int) -> str:
    return f"manifest.part-{index}-of-{count}.json"


def read_plan(out_dir: Path) -> dict[str, Any] | None:
    """The plan of the run that wrote `out_dir`, or None if there is none."""
    path = out_dir / PLAN_NAME
    if not path.exists():
        return None
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise OutputError(f"{path}: not a readable plan ({e}); delete the folder and rerun the prep") from e
    problem = plan_problem(plan)
    if problem:
        raise OutputError(
            f"{path}: not a plan written by babylm-prep ({problem}); delete the folder and rerun the prep"
        )
    return plan


def _count(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def plan_problem(plan: Any) -> str | None:
    """What is wrong with a plan read from disk (types, and units = ceil(input rows / rows per
    unit)), or None; nothing in it is used for a loop before this passes."""
    if not isinstance(plan, dict) or not {"plan_sha256", "units", "params", "kind", "name"} <= set(plan):
        return "keys plan_sha256, units, params, kind and name are needed"
    if not isinstance(plan["plan_sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", plan["plan_sha256"]):
        return "plan_sha256 is not a sha256"
    if not isinstance(plan["kind"], str) or not isinstance(plan["name"], str):
        return "kind and name must be strings"
    params = plan["params"]
    if not isinstance(params, dict):
        return "params is not an object"
    units, rows, per = plan["units"], params.get("input_rows"), params.get("samples_per_shard")
    if not (_count(units, 0) and _count(rows, 0) and _count(per, 1)):
        return "units, params.input_rows and params.samples_per_shard must be counts"
    if units != -(-rows // per) or params.get("units", units) != units:
        return f"units {units} does not match {rows} input rows in units of {per}"
    return None


def write_plan(out_dir: Path, plan: dict[str, Any], overwrite: bool) -> None:
    """Record the plan; refuse to mix shards of two different runs in one folder."""
    old = read_plan(out_dir)
    if old is None and (out_dir / "manifest.json").exists():
        raise OutputError(
            f"{out_dir}: holds a dataset that this command did not write (manifest.json without "
            f"{PLAN_NAME}); use another --out"
        )
    if old is not None and old["plan_sha256"] != plan["plan_sha256"]:
        if not overwrite:
            keys = (set(old["params"]) | set(plan["params"])) - {"plan_sha256"}
            changed = sorted(k for k in keys if old["params"].get(k) != plan["params"].get(k))
            raise OutputError(
                f"{out_dir}: holds shards of a different prep run (plan {old['plan_sha256'][:12]}, "
                f"this run {plan['plan_sha256'][:12]}; differing params: {', '.join(changed) or 'input rows'}). "
                "Use another --out, or pass --overwrite to delete its shards first."
            )
        clear_run(out_dir)
    atomic_write_bytes(out_dir / PLAN_NAME, (json.dumps(plan, indent=1, ensure_ascii=False) + "\n").encode())


def order_path(out_dir: Path, plan_sha: str) -> Path:
    """Where the row order of the plan `plan_sha` is saved (named by it: no plan reads another's)."""
    return out_dir / f".plan.order-{plan_sha[:16]}.npy"


def load_order(out_dir: Path, plan_sha: str, rows: int) -> np.ndarray | None:
    """The row order saved for the plan `plan_sha` in `out_dir`, or None (then shuffle again)."""
    try:
        order = np.load(order_path(out_dir, plan_sha), allow_pickle=False)
    except (OSError, ValueError):
        return None
    return order if order.shape == (rows,) and order.dtype == np.int64 else None


def save_order(out_dir: Path, plan_sha: str, order: np.ndarray) -> None:
    """Save the row order of the plan `plan_sha`, replacing the order of any earlier plan."""
    for old in out_dir.glob(".plan.order-*.npy"):
        old.unlink(missing_ok=True)
    with atomic_write(order_path(out_dir, plan_sha)) as f:
        np.save(f, order, allow_pickle=False)


def clear_run(out_dir: Path) -> None:
    """Delete what a previous prep run wrote into `out_dir` (only files this module names)."""
    for p in out_dir.glob("shard-*.tar"):
        p.unlink()
    for p in (out_dir / ENTRIES_DIR).glob("shard-*.tar.json"):
        p.unlink()
    shutil.rmtree(out_dir / UNITS_DIR, ignore_errors=True)
    for p in [*out_dir.glob("manifest*.json"), *out_dir.glob(".plan.order-*.npy")]:
        p.unlink(missing_ok=True)
    for p in (out_dir / SKIPPED_NAME, out_dir / PLAN_NAME):
        p.unlink(missing_ok=True)


_TMP_UNIT = re.compile(r"^\.(?:shard|unit)-(\d{6})\..*\.tmp$")


def remove_partials(out_dir: Path, units: Iterable[int], all_files: bool) -> None:
    """Delete temporary files a killed run left for `units` (others may belong to a live part)."""
    mine = set(units)
    for folder in (out_dir, out_dir / ENTRIES_DIR, out_dir / UNITS_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _TMP_UNIT.match(p.name)
            if (m and int(m.group(1)) in mine) or (all_files and not m and p.name.endswith(".tmp")):
                p.unlink(missing_ok=True)


def load_unit(out_dir: Path, unit: int, plan_sha: str) -> dict[str, Any] | None:
    """The record of a complete unit of this plan, or None if the unit must be (re)done."""
    path = unit_record_path(out_dir, unit)
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or rec.get("plan") != plan_sha:
        return None
    shard = rec.get("shard")
    if shard is not None:
        if not isinstance(shard, dict) or not isinstance(shard.get("path"), str):
            return None
        entry = read_entry(out_dir, shard["path"])
        if entry is None or entry.sha256 != shard["sha256"]:
            return None
    return rec


def record_units(out_dir: Path) -> list[int]:
    """The unit numbers that have a record file in `out_dir` (complete or not), ascending."""
    folder = out_dir / UNITS_DIR
    found = (_RECORD.fullmatch(p.name) for p in folder.iterdir()) if folder.is_dir() else ()
    return sorted(int(m.group(1)) for m in found if m)


_RECORD = re.compile(r"unit-(\d{6,})\.json")


def save_unit(out_dir: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    atomic_write_bytes(unit_record_path(out_dir, record["unit"]), text.encode())


def _entry(record: dict[str, Any]) -> ShardEntry | None:
    d = record.get("shard")
    if d is None:
        return None
    return ShardEntry.from_dict({**d, "index": None})


def _manifest(
    plan: dict[str, Any], records: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> Manifest:
    skipped: Counter[str] = Counter()
    shards = []
    for rec in records:
        skipped.update(rec["skipped"])
        entry = _entry(rec)
        if entry is not None:
            shards.append(entry)
    params = dict(plan["params"], **(extra or {}))
    return Manifest(
        kind=plan["kind"],
        shards=shards,
        skipped=dict(sorted(skipped.items())),
        params=params,
        name=plan["name"],
    )


def missing_units(out_dir: Path, plan: dict[str, Any], units: Iterable[int] | None = None) -> list[int]:
    todo = range(plan["units"]) if units is None else units
    return [u for u in todo if load_unit(out_dir, u, plan["plan_sha256"]) is None]


def write_part_manifest(out_dir: Path, plan: dict[str, Any], index: int, count: int) -> Path:
    """A manifest of the units of part `index` of `count` (merge joins them)."""
    units = [u for u in range(plan["units"]) if u % count == index]
    records = [load_unit(out_dir, u, plan["plan_sha256"]) for u in units]
    if any(r is None for r in records):
        raise OutputError(f"{out_dir}: part {index}/{count} is not complete")
    manifest = _manifest(plan, records, {"part": {"index": index, "count": count}})  # type: ignore[arg-type]
    from babylm.shards import __version__

    manifest.tool_version = __version__
    path = out_dir / part_manifest_name(index, count)
    atomic_write_bytes(path, manifest.to_json().encode())
    return path


def assemble(out_dir: Path) -> Manifest:
    """Write `skipped.jsonl` and then `manifest.json` from the unit records, in unit order."""
    plan = read_plan(out_dir)
    if plan is None:
        raise OutputError(f"{out_dir}: no {PLAN_NAME}; not a folder written by babylm-prep")
    missing = missing_units(out_dir, plan)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise OutputError(
            f"{out_dir}: {len(missing)} of {plan['units']} work units are not done (units {shown}); "
            "rerun the prep command (or the missing --part) to finish them"
        )
    records = [load_unit(out_dir, u, plan["plan_sha256"]) for u in range(plan["units"])]
    with atomic_write(out_dir / SKIPPED_NAME, "w", encoding="utf-8") as f:
        for rec in records:
            for row in rec["skipped_rows"]:  # type: ignore[index]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    manifest = _manifest(plan, records)  # type: ignore[arg-type]
    rows_in = manifest.num_samples + manifest.num_skipped
    if rows_in != plan["params"]["input_rows"]:
        raise OutputError(
            f"{out_dir}: accounting error: {manifest.num_samples} written + {manifest.num_skipped} skipped "
            f"!= {plan['params']['input_rows']} input rows"
        )
    write_manifest(out_dir, manifest)
    return manifest
