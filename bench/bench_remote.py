"""Benchmark: remote shards against the same shards on local disk, same loader settings, same run.

Shards of BENCH_REMOTE_IMAGES (default 16384, 383 MiB) 224x224 JPEGs (what prep writes), 256 per
shard, are read by the image-text loader with BENCH_WORKERS (default 1) workers and batch 64:
- from local disk (the baseline of every ratio);
- over HTTP from a server on 127.0.0.1 that waits BENCH_DELAYS seconds (default "0.02,0.1")
  before every answer (an object store in another cluster), each epoch with an empty cache, so
  the downloads are measured, not cache reads;
- from an S3-compatible server (moto on 127.0.0.1, no added delay);
- the same tars over HTTP by webdataset (`WebDataset` + `WebLoader`, curl streams, same workers,
  simplejpeg decode, batch 64) for comparison; and our loader with prefetch off (one range
  request per sample: the behaviour before the block prefetch), at the first delay only.
Rates are images per wall second; rounds are interleaved (the machine may be shared) and the
median ratio is printed, with the time to the first batch (it fills the shuffle buffer: two or
three round trips and 1/16 of this small epoch's bytes, where a real epoch is hours long).
Why one worker by default: the server runs on this machine, and receiving costs the kernel a few
ms of CPU per MiB; with as many workers as cores, decoding takes every core and the download is
paid for in decode time, which a node with more cores than loader workers (and a real object
store elsewhere) does not do. That case is printed too, at the first delay ("all cores decoding"). Requests and bytes are counted by the server for one cold epoch (the
manifest left out), against samples / 64 and the shards' bytes.
Run: `.venv/bin/python bench/bench_remote.py` (or `make bench`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import simplejpeg
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback server of the tests

from babylm.shards import Manifest, RollingWriter, write_manifest  # noqa: E402
from babylm.train.data import build_loader  # noqa: E402
from tests.loopback_server import LoopbackServer  # noqa: E402

IMAGES = int(os.environ.get("BENCH_REMOTE_IMAGES", 16384))
# The shuffle buffer 1/16 of the epoch: in a real dataset it is a tiny part of it; one as
# large as this small epoch would make the first batch wait for every block of the epoch.
SHUFFLE = int(os.environ.get("BENCH_SHUFFLE", 1024))
WORKERS = int(os.environ.get("BENCH_WORKERS", 1))
DELAYS = [float(x) for x in os.environ.get("BENCH_DELAYS", "0.02,0.1").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
BATCH, SIZE, PER_SHARD = 64, 224, 256


def make_shards(out: Path) -> Path:
    """Photo-like 224x224 JPEGs (smooth color fields plus noise), q95 4:2:0 as prep writes."""
    rng = np.random.default_rng(0)
    with RollingWriter(out, "tar", prefix="images", max_samples=PER_SHARD) as w:
        for i in range(IMAGES):
            low = rng.normal(128, 60, (6, 6, 3)).clip(0, 255).astype(np.uint8)
            img = np.asarray(Image.fromarray(low).resize((SIZE, SIZE), Image.BICUBIC), dtype=np.int16)
            img = (img + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8)
            jpg = simplejpeg.encode_jpeg(img, quality=95, colorspace="RGB", colorsubsampling="420")
            w.write({"__key__": f"{i:06d}", "jpg": jpg, "txt": f"a photo number {i} .", "json": {"i": i}})
    write_manifest(out, Manifest(kind="image_text", shards=w.entries, name="bench-remote"))
    return out


def epoch_rate(location: str, root: Path, **kw) -> float:
    """Images per wall second of one epoch, read with an empty cache folder."""
    return epoch_rates(location, root, **kw)[0]


def epoch_rates(location: str, root: Path, workers: int = WORKERS, **kw) -> tuple[float, float, float]:
    """(images per wall second of one epoch, the same after its first batch, seconds to the first
    batch), read with an empty cache folder."""
    cache = root / f"cache-{uuid.uuid4().hex}"
    loader = build_loader(
        location,
        batch_size=BATCH,
        workers=workers,
        image_size=SIZE,
        shuffle_buffer=SHUFFLE,
        cache_dir=cache,
        **kw,
    )
    t = time.perf_counter()
    n, first, t1 = 0, 0, t
    for b in loader.batches():
        n += len(b.keys)
        if not first:
            first, t1 = n, time.perf_counter()
    end = time.perf_counter()
    shutil.rmtree(cache, ignore_errors=True)
    return n / (end - t), (n - first) / (end - t1), t1 - t


def webdataset_rate(urls: list[str]) -> float:
    import webdataset as wds

    def decode(sample: dict) -> np.ndarray:
        return simplejpeg.decode_jpeg(sample["jpg"], colorspace="RGB")

    ds = wds.WebDataset(urls, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False)
    ds = ds.map(decode).batched(BATCH, collation_fn=lambda xs: torch.from_numpy(np.stack(xs)))
    loader = wds.WebLoader(ds, batch_size=None, num_workers=WORKERS)
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    return n / (time.perf_counter() - t)


def traffic(srv: LoopbackServer, since: int) -> tuple[int, int]:
    """(requests, bytes) the server answered since log entry `since`, the manifest left out."""
    entries = [e for e in srv.state.log[since:] if not e[1].endswith("manifest.json")]
    return len(entries), sum(e[3] for e in entries)


def http_section(root: Path, shards: Path, local: list[float], delay: float, first: bool) -> None:
    shard_bytes = sum(p.stat().st_size for p in shards.glob("*.tar"))
    urls_rel = sorted(p.name for p in shards.glob("*.tar"))
    with LoopbackServer(root, delay_s=delay) as srv:
        url = f"{srv.url}/shards"
        ours, steady, wds_ratio, rates, firsts = [], [], [], [], []
        for r in range(ROUNDS):
            since = srv.state.requests
            rate, after_first, first_s = epoch_rates(url, root)
            if r == 0:
                requests, nbytes = traffic(srv, since)
            lo, lo_after_first, lo_first_s = epoch_rates(str(shards), root)
            ours.append(rate / lo)
            steady.append(after_first / lo_after_first)
            wds_ratio.append(webdataset_rate([f"{url}/{n}" for n in urls_rel]) / rate)
            rates.append((rate, lo))
            firsts.append((first_s, lo_first_s))
        ms = delay * 1000
        print(
            f"http {ms:.0f} ms: ours {np.median([x[0] for x in rates]):.0f} img/s, "
            f"local {np.median([x[1] for x in rates]):.0f} img/s"
        )
        target = 0.9 if ms <= 20 else 0.8
        print(f"RESULT remote HTTP {ms:.0f} ms vs local: {np.median(ours):.2f} (target >= {target})")
        print(f"RESULT remote HTTP {ms:.0f} ms vs local after the first batch: {np.median(steady):.2f}")
        print(
            f"RESULT remote HTTP {ms:.0f} ms first batch after {np.median([f[0] for f in firsts]):.2f} s "
            f"(local {np.median([f[1] for f in firsts]):.2f} s)"
        )
        print(
            f"RESULT remote HTTP {ms:.0f} ms requests per epoch: {requests} for {IMAGES} samples "
            f"(target <= {IMAGES // 64})"
        )
        print(
            f"RESULT remote HTTP {ms:.0f} ms bytes per epoch: {nbytes / shard_bytes:.3f}x the shard bytes "
            "(target <= 1.1)"
        )
        print(f"RESULT webdataset over HTTP {ms:.0f} ms vs ours remote: {np.median(wds_ratio):.2f}")
        if first:
            cores = os.cpu_count() or 1
            if cores > WORKERS:
                both = [
                    epoch_rate(url, root, workers=cores) / epoch_rate(str(shards), root, workers=cores)
                    for _ in range(ROUNDS)
                ]
                print(
                    f"RESULT remote HTTP {ms:.0f} ms vs local, all cores decoding ({cores} workers): "
                    f"{np.median(both):.2f}"
                )
            since = srv.state.requests
            old = epoch_rate(url, root, prefetch_batches=0)
            print(
                f"RESULT remote HTTP {ms:.0f} ms, prefetch off (one request per sample) vs local: "
                f"{old / np.median([x[1] for x in rates]):.2f}, {traffic(srv, since)[0]} requests"
            )


def s3_section(root: Path, shards: Path) -> None:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("s3: moto/boto3 not installed, skipped")
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="t",
            aws_secret_access_key="t",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="bench")
        for p in shards.iterdir():
            if p.is_file():
                s3.upload_file(str(p), "bench", f"shards/{p.name}")
        options = {"endpoint_url": endpoint, "key": "t", "secret": "t"}
        ratios = []
        for _ in range(ROUNDS):
            rate = epoch_rate("s3://bench/shards", root, storage_options=options)
            ratios.append(rate / epoch_rate(str(shards), root))
        print(f"RESULT remote S3 (moto, 127.0.0.1) vs local: {np.median(ratios):.2f}")
    finally:
        server.stop()


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    try:
        shards = make_shards(root / "shards")
        mib = sum(p.stat().st_size for p in shards.glob("*.tar")) / 2**20
        print(
            f"{IMAGES} images in {len(list(shards.glob('*.tar')))} shards ({mib:.1f} MiB), {WORKERS} workers, batch {BATCH}"
        )
        epoch_rate(str(shards), root)  # warm the page cache and imports
        for k, delay in enumerate(DELAYS):
            http_section(root, shards, [], delay, first=k == 0)
        s3_section(root, shards)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
