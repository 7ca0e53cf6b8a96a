"""Small shard builders for the loader tests, and the torchrun worker script they launch.

Run as `torchrun ... -m tests.train.data.loader_fixtures DATASET OUT_DIR ...`: every rank builds its
loader exactly as the trainer does, all-reduces once per step over gloo (a rank with fewer steps
would hang or fail here), and writes the keys of its batches to OUT_DIR/rank{r}.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import simplejpeg

from babylm.shards import ArrowShardWriter, Manifest, TarShardWriter, write_manifest


def key_of(shard: int, i: int) -> str:
    return f"s{shard:02d}-{i:05d}"


def tiny_jpeg(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[:] = rng.integers(0, 255, 3, dtype=np.uint8)
    img[: size // 2, : size // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
    return simplejpeg.encode_jpeg(img, quality=90)


def write_image_text(
    folder: Path,
    sizes: list[int],
    corrupt: set[str] | frozenset[str] = frozenset(),
    image_size: int = 32,
    features: bool = False,
) -> Path:
    """A dataset of len(sizes) tar shards; sample keys `key_of(shard, i)`; keys in `corrupt` get
    bytes that are not an image (or a NaN feature)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for shard, n in enumerate(sizes):
        with TarShardWriter(folder, f"shard-{shard:06d}.tar") as w:
            for i in range(n):
                key = key_of(shard, i)
                caption = f"caption of {key} ." + " and more" * (i % 3)
                sample: dict = {
                    "__key__": key,
                    "txt": caption,
                    "json": {"shard": shard, "i": i, "words": len(caption.split())},
                }
                if features:
                    vec = np.full(768, shard * 1000 + i, dtype=np.float32)
                    if key in corrupt:
                        vec[0] = np.nan
                    sample["npy"] = vec
                else:
                    sample["jpg"] = (
                        b"this is not a jpeg" if key in corrupt else tiny_jpeg(shard * 1000 + i, image_size)
                    )
                w.write(sample)
        entries.append(w.entry)
    kind = "features" if features else "image_text"
    write_manifest(folder, Manifest(kind=kind, shards=entries, name=folder.name))
    return folder


def write_tokens(folder: Path, rows_per_shard: list[int], vocab_size: int = 65536) -> Path:
    """Arrow token shards whose stream is 0, 1, 2, ... (mod vocab): token t of the concatenated
    stream has value t, so a chunk's content names its position. Row lengths vary (0..17); a row
    of n tokens counts n // 2 words."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    t = 0
    rng = np.random.default_rng(0)
    for shard, rows in enumerate(rows_per_shard):
        with ArrowShardWriter(folder, f"tokens-{shard:06d}.arrow", vocab_size) as w:
            for _ in range(rows):
                n = int(rng.integers(0, 18))
                w.write((np.arange(t, t + n) % vocab_size).astype(np.int64), n // 2)
                t += n
        entries.append(w.entry)
    write_manifest(folder, Manifest(kind="tokens", shards=entries, name=folder.name))
    return folder


def _ddp_main() -> None:
    import torch
    import torch.distributed as dist

    from babylm.train.data.loader import build_loader

    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epoch", type=int, default=0)
    args = p.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = build_loader(
        args.dataset,
        batch_size=args.batch_size,
        world_size=world,
        rank=rank,
        workers=args.workers,
        image_size=32,
    )
    loader.set_epoch(args.epoch)
    steps = []
    for step, batch in enumerate(loader.batches()):
        # Every rank must take part in every step: a rank with fewer batches would hang here.
        t = torch.tensor([len(batch.keys)])
        dist.all_reduce(t)
        steps.append({"step": step, "keys": batch.keys, "pixels": list(batch.inputs["pixel_values"].shape)})
    done = torch.tensor([len(steps)])
    dist.all_reduce(done, op=dist.ReduceOp.MAX)
    result = {"rank": rank, "steps": steps, "max_steps": int(done), "state": loader.state_dict()}
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _ddp_main()
