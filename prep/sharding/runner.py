"""Run planned rows through a processor into tar shards: parallel, resumable, part-able.

`run_job` plans the rows (`plan.make_plan`), then runs the units not yet complete, each in one
process that writes one tar shard atomically and then its unit record (`records`). Rows skipped
while listing travel through the units too, so every input row is accounted for exactly once. A
unit whose rows are all skipped writes no shard; its record alone marks it done, so a rerun does
not redo it.

`part=(I, N)` processes the units u with u % N == I (round robin: every part gets a random mix).
Parts may share one output folder (the last one to finish writes the manifest) or use their own
folders, joined by `babylm-prep merge` (`merge.merge_parts`). `workers` processes share the units.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babylm.prep.errors import RowSkip
from babylm.prep.images.resize import set_threads
from babylm.prep.sharding.claim import claim_output
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import Processor, Row, RowSet, Units, make_plan
from babylm.prep.sharding.records import (
    assemble,
    load_order,
    load_unit,
    missing_units,
    remove_partials,
    save_order,
    save_unit,
    shard_name,
    write_part_manifest,
)
from babylm.shards import Manifest, TarShardWriter
from babylm.shards.progress import progress as progress_display

_PROGRESS_EVERY = 16


@dataclass(frozen=True)
class Job:
    """Everything a run needs; `params` go into the manifest (and the plan fingerprint)."""

    kind: str
    name: str
    rows: RowSet
    processor: Processor
    params: dict[str, Any]
    sharding: ShardingConfig


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


class _Progress:
    """The progress bar of a run: rows done, and skips so far in its postfix."""

    def __init__(self, total_rows: int, name: str, progress: bool | None):
        self.bar = progress_display(total_rows, name, "img", enabled=progress is not False)
        self.skipped = 0

    def update(self, done: int, skips: int) -> None:
        self.skipped += skips
        self.bar.set_postfix_str(f"skipped {self.skipped:,}", refresh=False)  # before update prints it
        self.bar.update(done)


def _run_serial(job: Job, tasks: Iterator[UnitTask], total_rows: int) -> None:
    progress = _Progress(total_rows, job.name, job.sharding.progress)
    try:
        for task in tasks:
            process_unit(task, progress.update)
    finally:
        progress.bar.close()


def _run_pool(job: Job, tasks: Iterator[UnitTask], units: int, total_rows: int) -> None:
    # fork: workers inherit the imported modules (the shard library pulls in torch via
    # webdataset, seconds per spawned worker). The pool is started before the progress
    # bar, whose monitor thread should not be running at fork time.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.Queue()
    # Millions of listed rows live in this process; frozen, the workers' garbage
    # collector leaves them alone, so forked workers do not copy those pages.
    gc.freeze()
    progress: _Progress | None = None
    try:
        with ctx.Pool(min(job.sharding.workers, units), _init_worker, (queue,)) as pool:
            progress = _Progress(total_rows, job.name, job.sharding.progress)
            results = pool.imap_unordered(process_unit, tasks)
            finished = 0
            while finished < units:
                try:
                    results.next(timeout=0.2)
                    finished += 1
                except mp.TimeoutError:
                    pass
                while not queue.empty():
                    progress.update(*queue.get())
            while not queue.empty():
                progress.update(*queue.get())
    finally:
        gc.unfreeze()
        if progress is not None:
            progress.bar.close()


def run_job(job: Job) -> Manifest | None:
    """Plan, process the units not yet complete, then write the manifest (or the part manifest).

    Returns the manifest when the whole dataset is complete in `out_dir`, else None (a part, or
    `plan_only`). The plan and its row order are computed once per output folder: a part that
    finds them (written by `--plan-only` or an earlier part) reads them.
    """
    cfg = job.sharding
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    n = len(job.rows)
    plan, units = make_plan(
        job.kind,
        job.name,
        job.rows,
        job.params,
        cfg.seed,
        cfg.samples_per_shard,
        order=lambda sha: load_order(out, sha, n),
    )
    mine = [u for u in range(len(units)) if cfg.part is None or u % cfg.part[1] == cfg.part[0]]
    sha = plan["plan_sha256"]

    def while_alone() -> None:
        if not units.reused:
            save_order(out, sha, units.order)
        if not cfg.plan_only:
            remove_partials(out, mine, all_files=cfg.part is None)

    with claim_output(out, plan, cfg.overwrite, while_alone) as alone:
        if not alone and not units.reused and load_order(out, sha, n) is None:
            save_order(out, sha, units.order)
        if cfg.plan_only:
            return None
        if not alone and cfg.part is not None:
            # Other runs of this plan are live here: only this part's own units are its to clean.
            remove_partials(out, mine, all_files=False)
        return _run_units(job, units, mine, plan)


def _run_units(job: Job, units: Units, mine: list[int], plan: dict[str, Any]) -> Manifest | None:
    """Process the units of `mine` not yet complete, then assemble what is complete."""
    cfg = job.sharding
    out = cfg.out
    sha = plan["plan_sha256"]
    todo = [u for u in mine if load_unit(out, u, sha) is None]
    total_rows = sum(units.size(u) for u in todo)
    tasks = (UnitTask(out, u, job.rows.take(units[u]), job.processor, sha) for u in todo)
    threads = set_threads(1)
    try:
        if cfg.workers <= 1 or len(todo) <= 1:
            _run_serial(job, tasks, total_rows)
        else:
            _run_pool(job, tasks, len(todo), total_rows)
    finally:
        set_threads(threads)
    if cfg.part is not None:
        write_part_manifest(out, plan, *cfg.part)
        if missing_units(out, plan):
            return None
    return assemble(out)
