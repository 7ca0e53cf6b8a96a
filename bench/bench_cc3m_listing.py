"""Benchmark: listing full-size CC-3M (3,318,333 rows by default) for a Slurm array job.

A synthetic downloader layout (caption TSV + 6-column download report, 15% failed downloads, no
image files) of BENCH_CC3M_ROWS rows is written to a temporary folder, then, each in a fresh
process (peak RSS and wall seconds of that process):
- `babylm-prep cc3m --plan-only`: lists every row (columns, not objects) and writes the plan;
- `babylm-prep cc3m --part 0/3000` after it: reads the plan and only its own rows (its rows have
  no image files, so they are counted as missing_file: the listing is what is measured);
- the same rows as one Python object each (`take` of every row), as each part held them before:
  the baseline of the ratios.
Targets (issue 15): <= 600 MB peak RSS and <= 20 s per part on one core.
Run: `.venv/bin/python bench/bench_cc3m_listing.py` (or `make bench`).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROWS = int(os.environ.get("BENCH_CC3M_ROWS", 3_318_333))
PARTS = 3000
WORDS = "a the dog cat man woman street house car tree blue red running sitting in on of with near photo view".split()
PUNCT = [",", ".", ":", "!"]

# Run in a fresh process: its peak RSS (ru_maxrss of the child, KiB on Linux) and wall seconds.
MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
AS_OBJECTS = """
import sys
from pathlib import Path
from babylm.prep.sources.downloader import DownloaderRows
rows = DownloaderRows(Path(sys.argv[1]), "training", False, Path(sys.argv[2]))
every = rows.take(range(len(rows)))
print(len(every))
"""


def write_layout(root: Path) -> None:
    """Caption TSV and download report of ROWS rows, one per caption row, as the downloader writes."""
    rng = random.Random(0)
    with (
        open(root / "Train_GCC-training.tsv", "w") as cap,
        open(root / "downloaded_training_report.tsv", "w") as rep,
    ):
        for i in range(ROWS):
            words = rng.choices(WORDS, k=rng.randint(5, 14)) + [rng.choice(PUNCT)]
            url = f"http://img{i % 97}.example.com/photos/{i:08d}/{rng.getrandbits(40):x}.jpg"
            cap.write(f"{' '.join(words)}\t{url}\n")
            if rng.random() < 0.15:
                rep.write(f"\ttraining\t\t\t404\t{url}\n")
            else:
                file = f"training/{i}_{zlib.crc32(url.encode())}"
                rep.write(f"{file}\ttraining\timage/jpeg\t{rng.randint(5000, 90000)}.0\t200\t{url}\n")


def measure(*cmd: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `cmd` run in its own process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], check=True, capture_output=True, text=True)
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib) / 1024


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-cc3m-"))
    try:
        src = tmp / "Conceptual-3M"
        src.mkdir()
        write_layout(src)
        prep = [str(Path(sys.executable).parent / "babylm-prep"), "cc3m", "--src", str(src), "--no-progress"]
        out = tmp / "out"
        plan_s, plan_mb = measure(*prep, "--out", str(out), "--plan-only")
        part_s, part_mb = measure(*prep, "--out", str(out), "--part", f"0/{PARTS}")
        objects_s, objects_mb = measure(sys.executable, "-c", AS_OBJECTS, str(src), str(out))
        print(
            f"CC-3M listing, {ROWS:,} synthetic rows, parts of 1000 rows, {PARTS} array tasks (targets: <= 600 MB, <= 20 s)"
        )
        print(f"  --plan-only (lists every row once):     {plan_s:6.1f} s  {plan_mb:6.0f} MB peak RSS")
        print(f"  --part 0/{PARTS} after the plan:          {part_s:6.1f} s  {part_mb:6.0f} MB peak RSS")
        print(f"  every row as a Python object (before):  {objects_s:6.1f} s  {objects_mb:6.0f} MB peak RSS")
        print(f"  peak RSS vs objects: listing {plan_mb / objects_mb:.2f}x, part {part_mb / objects_mb:.2f}x")
        print(f"  seconds of a part vs objects: {part_s / objects_s:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
