"""Benchmark: the streaming loader against the original's image path, on the same photos and cores.

The original: a map-style Dataset that opens each raw image file, converts it to RGB and runs
`ViTImageProcessor` (224x224 bilinear resize, rescale, ImageNet normalize), under a DataLoader.
Ours: the image-text loader over shards that prep wrote from the same photos (resized to 224 at
prep time), uint8 batches out (normalization happens on the device). Also the bare JPEG decode
rate of those shards (sequential read + simplejpeg, no loader), the tokens loader, and the peak
resident memory of each DataLoader worker.

Self-contained: generates BENCH_IMAGES photo-like JPEGs (default 1200, shorter side 300-800 px)
and BENCH_TOKENS tokens (default 30M) in a temporary folder, and removes it at the end.
Rates "per core" are items per CPU-second of one process with one thread (workers=0); the
worker runs (BENCH_WORKERS, default min(4, cores)) give wall-clock rates and memory per worker.
Run: `.venv/bin/python bench/bench_loader.py` (or `make bench`).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import simplejpeg
import torch
from PIL import Image, ImageDraw, ImageFilter

from babylm.shards import Manifest, RollingWriter, iter_tar_samples, write_manifest
from babylm.train.data import build_loader

IMAGES = int(os.environ.get("BENCH_IMAGES", 1200))
TOKENS = int(os.environ.get("BENCH_TOKENS", 30_000_000))
BATCH = 64
SIZE = 224
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # facebook/dino-vitb16's processor


def photo(rng: np.random.Generator) -> Image.Image:
    """A photo-like image: smooth multi-scale color fields, shapes, edges and sensor noise."""
    short = int(rng.integers(300, 801))
    long = int(short * rng.uniform(1.0, 1.6))
    w, h = (long, short) if rng.random() < 0.7 else (short, long)
    field = np.zeros((h, w, 3), dtype=np.float32)
    for cells, weight in ((3, 120.0), (12, 50.0), (48, 20.0)):
        low = rng.normal(0, 1, (cells, max(2, cells * w // h), 3)).astype(np.float32)
        layers = [
            np.asarray(Image.fromarray(low[..., c]).resize((w, h), Image.BICUBIC), dtype=np.float32)
            for c in range(3)
        ]
        field += weight * np.stack(layers, axis=-1)
    img = Image.fromarray(np.clip(field + 128, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 25))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    noisy = np.asarray(img, dtype=np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{i:06d}"  # no extension, as CC-3M downloads
        photo(rng).save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


def write_image_shards(paths: list[Path], out: Path) -> Path:
    """What prep does: 224x224 bilinear resize, JPEG q95 4:2:0, tar shards and a manifest."""
    with RollingWriter(out, "tar", prefix="images", max_samples=500) as w:
        for i, p in enumerate(paths):
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
            jpg = simplejpeg.encode_jpeg(arr, quality=95, colorspace="RGB", colorsubsampling="420")
            w.write(
                {
                    "__key__": f"{i:06d}",
                    "jpg": jpg,
                    "txt": f"a photo number {i} .",
                    "json": {"i": i, "words": 5},
                }
            )
    write_manifest(out, Manifest(kind="image_text", shards=w.entries, name="bench"))
    return out


def write_token_shards(out: Path, tokens: int) -> Path:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 80, size=tokens // 40 + 1)
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), tokens))]
    values = rng.integers(4, 32768, size=int(lengths.sum()), dtype=np.int64)
    with RollingWriter(out, "arrow", prefix="tokens", max_samples=200_000, vocab_size=32778) as w:
        pos = 0
        for n in lengths.tolist():
            w.write(values[pos : pos + n], words=n // 2)
            pos += n
    write_manifest(out, Manifest(kind="tokens", shards=w.entries, name="bench-tokens"))
    return out


class OriginalDataset(torch.utils.data.Dataset):
    """The original path: raw file -> PIL RGB -> ViTImageProcessor (resize + normalize)."""

    def __init__(self, paths: list[Path]):
        from transformers import ViTImageProcessor

        self.paths = paths
        self.processor = ViTImageProcessor(
            do_resize=True, size={"height": SIZE, "width": SIZE}, image_mean=MEAN, image_std=STD
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            rgb = im.convert("RGB")
        return torch.as_tensor(self.processor(images=rgb, return_tensors="np")["pixel_values"][0])


def cpu_rate(fn) -> float:
    """Items per CPU-second of this process: a per-core rate that other load on a shared
    machine does not distort as much as wall time (used for the workers=0 runs)."""
    t = time.process_time()
    n = fn()
    return n / (time.process_time() - t)


def workers_rates(fn) -> tuple[float, float]:
    """(items per wall second, items per CPU-second of this process and its reaped children):
    the second includes what the DataLoader workers spend handing batches over."""

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    t, c = time.perf_counter(), cpu()
    n = fn()
    return n / (time.perf_counter() - t), n / (cpu() - c)


def run_original(dataset: OriginalDataset) -> int:
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=0)
    return sum(len(b) for b in loader)


def shard_jpegs(shards: Path) -> list[bytes]:
    out = []
    for tar in sorted(shards.glob("*.tar")):
        with open(tar, "rb") as f:
            out += [sample["jpg"] for sample in iter_tar_samples(f, str(tar))]
    return out


def run_bare_decode(jpegs: list[bytes]) -> int:
    """The ceiling: simplejpeg on JPEG bytes already in memory, nothing else."""
    for data in jpegs:
        simplejpeg.decode_jpeg(data, colorspace="RGB")
    return len(jpegs)


def run_loader(loader) -> int:
    return sum(len(b.keys) for b in loader.batches())


class PeakRss:
    """Samples the resident memory of this process's children (the DataLoader workers)."""

    def __init__(self):
        self.peak: dict[int, int] = {}
        self.peak_uss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    mem = child.memory_full_info()
                except psutil.Error:
                    continue
                self.peak[child.pid] = max(self.peak.get(child.pid, 0), mem.rss)
                self.peak_uss[child.pid] = max(self.peak_uss.get(child.pid, 0), mem.uss)
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def __str__(self) -> str:
        rss = max(self.peak.values(), default=0) / 2**20
        uss = max(self.peak_uss.values(), default=0) / 2**20
        return f"{rss:.0f} MiB RSS ({uss:.0f} MiB not shared with the parent)"


def main() -> None:
    torch.set_num_threads(1)
    workers = int(os.environ.get("BENCH_WORKERS", min(4, os.cpu_count() or 1)))
    root = Path(tempfile.mkdtemp(prefix="bench-loader-"))
    try:
        print(f"generating {IMAGES} photos and {TOKENS:,} tokens in {root} ...", flush=True)
        paths = make_photos(root / "raw", IMAGES)
        shards = write_image_shards(paths, root / "shards")
        tokens = write_token_shards(root / "tokens", TOKENS)
        raw_mb = sum(p.stat().st_size for p in paths) / 2**20
        shard_mb = sum(p.stat().st_size for p in shards.glob("*.tar")) / 2**20
        print(f"raw photos {raw_mb:.0f} MiB, shards {shard_mb:.0f} MiB", flush=True)
        cache = root / "cache"

        def image_loader(w: int):
            return build_loader(shards, batch_size=BATCH, workers=w, image_size=SIZE, cache_dir=cache)

        def token_loader(w: int):
            return build_loader(tokens, batch_size=128, seq_len=128, workers=w)

        t = time.perf_counter()
        run_loader(image_loader(0))  # builds the tar index cache, once per machine
        print(f"first epoch, with the one-time tar index scan: {time.perf_counter() - t:.2f}s", flush=True)
        jpegs = shard_jpegs(shards)
        original_dataset = OriginalDataset(paths)  # built outside the timing: imports take seconds
        original_dataset[0]
        original = cpu_rate(lambda: run_original(original_dataset))
        # Interleaved rounds, median: the machine may be shared, and its load drifts.
        rounds = [
            (cpu_rate(lambda: run_bare_decode(jpegs)), cpu_rate(lambda: run_loader(image_loader(0))))
            for _ in range(3)
        ]
        bare = float(np.median([r[0] for r in rounds]))
        ours = float(np.median([r[1] for r in rounds]))
        tok_rate = float(np.median([cpu_rate(lambda: run_loader(token_loader(0)) * 128) for _ in range(3)]))
        print(f"original path (PIL + ViTImageProcessor): {original:8.1f} images/s per core", flush=True)
        print(f"bare JPEG decode (bytes in memory):      {bare:8.1f} images/s per core", flush=True)
        print(f"image-text loader (uint8 batches):       {ours:8.1f} images/s per core", flush=True)
        print(
            f"tokens loader:                           {tok_rate / 1e6:8.1f} M tokens/s per core", flush=True
        )
        multi, multi_cpu = workers_rates(lambda: run_loader(image_loader(workers)))
        print(
            f"image-text loader, {workers} workers:            {multi:8.1f} images/s wall, "
            f"{multi_cpu:.1f} per CPU-second of workers + main process",
            flush=True,
        )
        with PeakRss() as image_rss:
            run_loader(image_loader(workers))
        with PeakRss() as token_rss:
            run_loader(token_loader(workers))
        print()
        print(f"RESULT image-text loader vs original: {ours / original:.1f}x per core (target >= 10x)")
        print(f"RESULT image-text loader vs bare JPEG decode: {ours / bare:.0%} (target >= 80%)")
        print(f"RESULT tokens loader: {tok_rate / 1e6:.1f}M tokens/s per core (target > 10M)")
        print(
            f"RESULT image-text loader with {workers} workers vs bare JPEG decode: {multi_cpu / bare:.0%} per CPU-second"
        )
        print(f"RESULT peak memory per worker: image-text {image_rss}; tokens {token_rss}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
