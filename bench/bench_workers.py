"""Benchmark: whole-machine images/s of the image-text loader with DataLoader workers, against the
in-process rate of the same loader (workers=0, one core), measured in the same run.

W workers can at best reach W x the in-process rate (with more cores than workers; the consumer
process needs some CPU too). Printed for 1 and 2 workers (BENCH_WORKER_COUNTS), with the batch
buffers recycled (the default) and with a fresh shared-memory segment per batch (the behaviour
before), and for webdataset's WebLoader on the same tars (simplejpeg decode, batch 64, same
workers), and for litdata's StreamingDataLoader (the same JPEGs written by `litdata.optimize`,
256 per chunk as per shard, simplejpeg decode, batch 64, same workers) in a process of its own.
litdata is in the `bench` extra (`pip install -e ".[bench]"`, which `make bench` runs): without it
this benchmark stops before measuring anything.
Shards: BENCH_WORKER_IMAGES (default 2048) 224x224 JPEGs, 256 per shard. Rounds interleaved,
median (the machine may be shared). Run: `.venv/bin/python bench/bench_workers.py`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
import torch

os.environ.setdefault("BENCH_REMOTE_IMAGES", os.environ.get("BENCH_WORKER_IMAGES", "2048"))
from bench_remote import BATCH, PER_SHARD, SIZE, make_shards  # noqa: E402

from babylm.train.data import build_loader  # noqa: E402

COUNTS = [int(x) for x in os.environ.get("BENCH_WORKER_COUNTS", "1,2").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))


def ours(shards: Path, workers: int, recycle: bool = True) -> float:
    loader = build_loader(shards, batch_size=BATCH, workers=workers, image_size=SIZE, recycle_buffers=recycle)
    t = time.perf_counter()
    n = 0
    for batch in loader.batches():
        n += len(batch.keys)
        del batch  # a training step lets go of its batch
    return n / (time.perf_counter() - t)


def webloader(shards: Path, workers: int) -> float:
    import webdataset as wds

    def decode(sample: dict) -> np.ndarray:
        return simplejpeg.decode_jpeg(sample["jpg"], colorspace="RGB")

    urls = [str(p) for p in sorted(shards.glob("*.tar"))]
    ds = wds.WebDataset(urls, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False)
    ds = ds.map(decode).batched(BATCH, collation_fn=lambda xs: torch.from_numpy(np.stack(xs)))
    loader = wds.WebLoader(ds, batch_size=None, num_workers=workers)
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    return n / (time.perf_counter() - t)


# litdata runs in processes of its own: one writes its data set (`litdata_write`), and each
# measurement is another (`litdata_rate`). `litdata.optimize` switches multiprocessing to spawn for
# the whole process, so the loaders measured after it in the same process would start their workers
# otherwise than the others do (fork); each StreamingDataLoader starts them as ours do.
if "--litdata" in sys.argv:  # a measuring process (and its workers, where they are spawned)
    import litdata
    from litdata.streaming.sampler import ChunkedIndex

    class DecodedStream(litdata.StreamingDataset):
        """litdata's dataset of the same JPEGs, decoded as ours are (module level, so that workers
        started by spawn can unpickle it by name)."""

        def __getitem__(self, index: ChunkedIndex | int) -> torch.Tensor:
            return torch.from_numpy(
                simplejpeg.decode_jpeg(super().__getitem__(index)["jpg"], colorspace="RGB")
            )


def _as_litdata_sample(jpg: bytes) -> dict[str, bytes]:
    """litdata.optimize's fn (module level: its worker process is spawned and pickles it)."""
    return {"jpg": jpg}


def _litdata_write(shards: Path, out: Path) -> None:
    """Write the JPEGs of the shards with litdata.optimize, PER_SHARD to a chunk as to a shard (each
    worker reads whole chunks, as ours read whole shards)."""
    import litdata

    from babylm.shards import iter_tar_samples

    samples: list[bytes] = []
    for tar in sorted(shards.glob("*.tar")):
        with open(tar, "rb") as f:
            samples += [s["jpg"] for s in iter_tar_samples(f, str(tar))]
    litdata.optimize(
        fn=_as_litdata_sample, inputs=samples, output_dir=str(out), chunk_size=PER_SHARD, num_workers=1
    )


def _litdata_measure(out: Path, workers: int) -> None:
    """Print the images/s of one epoch of litdata's StreamingDataLoader over the data set `out`."""
    loader = litdata.StreamingDataLoader(DecodedStream(str(out)), batch_size=BATCH, num_workers=workers)
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    print(n / (time.perf_counter() - t))


def _run_self(*args: str) -> str:
    """Run this script with the given arguments in a process of its own; its standard output."""
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def litdata_write(shards: Path, out: Path) -> None:
    """litdata's data set of the same JPEGs, written in a process of its own."""
    _run_self("--litdata-write", str(shards), str(out))


def litdata_rate(out: Path, workers: int) -> float:
    """litdata's StreamingDataLoader images/s over `out`, measured in a process of its own."""
    return float(_run_self("--litdata", str(out), str(workers)).split()[-1])


def main() -> None:
    if importlib.util.find_spec("litdata") is None:
        sys.exit('litdata is not installed: `.venv/bin/pip install -e ".[bench]"` (or `make bench`)')
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        shards = make_shards(root / "shards")
        lit = root / "litdata"
        litdata_write(shards, lit)
        ours(shards, 0)  # warm the page cache and imports
        rows: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            base = ours(shards, 0)
            rows.setdefault("in-process", []).append(base)
            for w in COUNTS:
                rows.setdefault(f"ours, {w} workers", []).append(ours(shards, w) / base)
                rows.setdefault(f"ours, {w} workers, fresh buffer per batch", []).append(
                    ours(shards, w, recycle=False) / base
                )
                rows.setdefault(f"webdataset WebLoader, {w} workers", []).append(webloader(shards, w) / base)
                rows.setdefault(f"litdata StreamingDataLoader, {w} workers", []).append(
                    litdata_rate(lit, w) / base
                )
        print(f"in-process rate (workers=0): {np.median(rows.pop('in-process')):.0f} images/s")
        for name, values in rows.items():
            print(f"RESULT {name} vs in-process: {np.median(values):.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if "--litdata-write" in sys.argv:
        _litdata_write(Path(sys.argv[2]), Path(sys.argv[3]))
    elif "--litdata" in sys.argv:
        _litdata_measure(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
