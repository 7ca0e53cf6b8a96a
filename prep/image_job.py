"""Run a listed row set through a processor into tar shards: shuffled, parallel, resumable, part-able.

The source modules (cc3m, localnarr, features) list their input as `Row`s in input order, each
with a stable key, and hand over a picklable processor that turns one row into the members of a
sample (or raises `RowSkip`). This module shuffles the rows with the seed, cuts them into fixed
work units of `samples_per_shard` input rows (unit i always covers the same rows, whatever the
number of workers or parts), and runs the units not yet complete, each in one process that
writes one tar shard atomically and then its unit record. Rows skipped while listing travel
through the units too, so every input row is accounted for exactly once. A unit whose rows are
all skipped writes no shard; its record alone marks it done, so a rerun does not redo it.

`--part I/N` processes the units u with u % N == I (round robin: every part gets a random mix).
Parts may share one output folder (the last one to finish writes the manifest) or use their own
folders, joined by `babylm-prep merge`. `Job.workers` processes share the units of this run.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing as mp
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tqdm import tqdm

from babylm.prep.image_manifest import (
    assemble,
    load_unit,
    missing_units,
    remove_partials,
    save_unit,
    shard_name,
    write_part_manifest,
    write_plan,
)
from babylm.prep.images import ImageSkip as RowSkip
from babylm.prep.images import set_threads
from babylm.shards import Manifest, TarShardWriter

_PROGRESS_EVERY = 16


class Row(NamedTuple):
    """One input row. `reason` set = skipped while listing (with `detail`), the payload is not read."""

    key: str
    caption: str | None  # None: the processor finds it (one-JSON-per-annotation layouts)
    loc: Any  # how the processor finds the payload: a path, a tar byte range, an array row
    info: dict[str, Any]  # facts for `{key}.json` and `skipped.jsonl` (row, url, file, ...)
    reason: str | None = None
    detail: str = ""


Processor = Callable[[Row], dict[str, Any]]


@dataclass
class Job:
    """Everything a run needs; `params` go into the manifest (and the plan fingerprint)."""

    kind: str
    name: str
    out_dir: Path
    rows: list[Row]
    processor: Processor
    params: dict[str, Any]
    seed: int = 0
    samples_per_shard: int = 1000
    workers: int = 1
    part: tuple[int, int] | None = None
    overwrite: bool = False
    progress: bool | None = None
    extra_plan: dict[str, Any] = field(default_factory=dict)
    # Called in the main process with the number of units finished so far, after each one
    # (progress reporting from Python; the resume tests kill the run from here).
    after_unit: Callable[[int], None] | None = None


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


def make_plan(job: Job) -> tuple[dict[str, Any], list[list[int]]]:
    """The plan (fingerprinted) and the work units: lists of row indices, shuffled with the seed."""
    order = list(range(len(job.rows)))
    random.Random(job.seed).shuffle(order)
    per = job.samples_per_shard
    units = [order[i : i + per] for i in range(0, len(order), per)]
    params = dict(
        job.params, seed=job.seed, samples_per_shard=per, input_rows=len(job.rows), units=len(units)
    )
    sha = hashlib.sha256(json.dumps([job.kind, job.name, params], sort_keys=True).encode())
    # Locations are absolute paths and may move; the rows' content is what must not change.
    # repr of str/int/dict/None is stable and several times faster than json for millions of rows.
    for i in range(0, len(job.rows), 10_000):
        chunk = job.rows[i : i + 10_000]
        sha.update("\n".join(repr((r.key, r.caption, r.info, r.reason, r.detail)) for r in chunk).encode())
    plan = {
        "kind": job.kind,
        "name": job.name,
        "units": len(units),
        "plan_sha256": sha.hexdigest(),
        "params": dict(params, plan_sha256=sha.hexdigest()),
    }
    return plan, units


@dataclass
class UnitTask:
    out_dir: Path
    unit: int
    rows: list[Row]
    processor: Processor
    plan_sha: str


_progress_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue
    set_threads(1)
    # The parent handles Ctrl-C; workers just stop when the pool is terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def skip_record(row: Row, reason: str, detail: str) -> dict[str, Any]:
    """One line of `skipped.jsonl`: key, reason, detail, then the row's facts (url, file, ...)."""
    return {"key": row.key, "reason": reason, "detail": detail, **row.info}


def process_unit(task: UnitTask, report: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the shard of one unit (none if every row is skipped), then its record."""
    report = report or _queue_report
    name = shard_name(task.unit)
    writer: TarShardWriter | None = None
    skipped: Counter[str] = Counter()
    skipped_rows: list[dict[str, Any]] = []
    done = skips = 0
    try:
        for row in task.rows:
            try:
                if row.reason:
                    raise RowSkip(row.reason, row.detail)
                try:
                    members = task.processor(row)
                except RowSkip:
                    raise
                except Exception as e:  # a bug, not bad input: stop, but say which row
                    raise RuntimeError(f"{row.key}: {type(e).__name__}: {e}") from e
            except RowSkip as e:
                skipped[e.reason] += 1
                skipped_rows.append(skip_record(row, e.reason, e.detail))
                skips += 1
            else:
                if writer is None:
                    writer = TarShardWriter(task.out_dir, name)
                writer.write({"__key__": row.key, **members})
            done += 1
            if done % _PROGRESS_EVERY == 0:
                report(done, skips)
                done = skips = 0
        entry = None
        if writer is not None:
            writer.meta = {
                "unit": task.unit,
                "rows": len(task.rows),
                "skipped": dict(sorted(skipped.items())),
            }
            entry = writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    report(done, skips)
    record = {
        "unit": task.unit,
        "plan": task.plan_sha,
        "rows": len(task.rows),
        "shard": entry.to_dict() if entry is not None else None,
        "skipped": dict(sorted(skipped.items())),
        "skipped_rows": skipped_rows,
    }
    save_unit(task.out_dir, record)
    return {"unit": task.unit, "written": entry.samples if entry else 0, "skipped": sum(skipped.values())}


def _queue_report(done: int, skips: int) -> None:
    if _progress_queue is not None and (done or skips):
        _progress_queue.put((done, skips))


def run_job(job: Job) -> Manifest | None:
    """Plan, process the units not yet complete, then write the manifest (or the part manifest).

    Returns the manifest when the whole dataset is complete in `out_dir`, else None (a part).
    """
    out = job.out_dir
    out.mkdir(parents=True, exist_ok=True)
    plan, units = make_plan(job)
    write_plan(out, plan, job.overwrite)
    mine = [u for u in range(len(units)) if job.part is None or u % job.part[1] == job.part[0]]
    remove_partials(out, mine, all_files=job.part is None)
    sha = plan["plan_sha256"]
    todo = [u for u in mine if load_unit(out, u, sha) is None]
    total_rows = sum(len(units[u]) for u in todo)
    tasks = (UnitTask(out, u, [job.rows[i] for i in units[u]], job.processor, sha) for u in todo)
    skipped = 0
    bar: Any = None

    def update(done: int, skips: int) -> None:
        nonlocal skipped
        skipped += skips
        bar.update(done)
        bar.set_postfix_str(f"skipped {skipped:,}", refresh=False)

    def new_bar() -> Any:
        return tqdm(total=total_rows, unit="img", desc=job.name, disable=job.progress is False or None)

    finished = 0
    threads = set_threads(1)
    try:
        if job.workers <= 1 or len(todo) <= 1:
            bar = new_bar()
            for task in tasks:
                process_unit(task, update)
                finished += 1
                if job.after_unit is not None:
                    job.after_unit(finished)
        else:
            # fork: workers inherit the imported modules (the shard library pulls in torch via
            # webdataset, seconds per spawned worker). The pool is started before the progress
            # bar, whose monitor thread should not be running at fork time.
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            queue = ctx.Queue()
            # Millions of listed rows live in this process; frozen, the workers' garbage
            # collector leaves them alone, so forked workers do not copy those pages.
            gc.freeze()
            with ctx.Pool(min(job.workers, len(todo)), _init_worker, (queue,)) as pool:
                bar = new_bar()
                results = pool.imap_unordered(process_unit, tasks)
                while finished < len(todo):
                    try:
                        results.next(timeout=0.2)
                        finished += 1
                        if job.after_unit is not None:
                            job.after_unit(finished)
                    except mp.TimeoutError:
                        pass
                    while not queue.empty():
                        update(*queue.get())
                while not queue.empty():
                    update(*queue.get())
    finally:
        set_threads(threads)
        gc.unfreeze()
        if bar is not None:
            bar.close()
    if job.part is not None:
        write_part_manifest(out, plan, *job.part)
        if missing_units(out, plan):
            return None
    return assemble(out)
