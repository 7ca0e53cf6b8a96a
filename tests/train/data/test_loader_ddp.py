"""The loader under real torchrun DDP (2 ranks x 2 workers, gloo): exactly-once coverage of an
epoch with deliberately uneven shards, equal step counts (no hang), and the same batches as the
in-process simulation that `babylm-train samples` prints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import key_of, write_image_text

ROOT = Path(__file__).resolve().parents[3]
SIZES = [41, 3, 17, 29, 1, 12]  # 103 samples, very uneven shards


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_two_workers_cover_epoch_once_with_equal_steps(tmp_path):
    data = write_image_text(tmp_path / "it", SIZES)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "BABYLM_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "tests.train.data.loader_fixtures", str(data), str(out),
        "--batch-size", "4", "--workers", "2", "--epoch", "1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    total = sum(SIZES)
    steps = total // 8
    for r in ranks:
        assert len(r["steps"]) == steps == r["max_steps"]
        assert all(len(s["keys"]) == 4 and s["pixels"] == [4, 3, 32, 32] for s in r["steps"])
        assert r["state"]["epoch"] == 2 and r["state"]["step"] == 0
    seen = [k for r in ranks for s in r["steps"] for k in s["keys"]]
    assert len(seen) == len(set(seen)) == steps * 8
    every = {key_of(s, i) for s, n in enumerate(SIZES) for i in range(n)}
    assert set(seen) <= every and len(every - set(seen)) == total % 8 == 7

    # The same code in one process, rank by rank, gives the same batches.
    for r in range(2):
        sim = build_loader(
            data, batch_size=4, world_size=2, rank=r, image_size=32, cache_dir=tmp_path / "cache"
        )
        sim.set_epoch(1)
        assert [b.keys for b in sim.batches()] == [s["keys"] for s in ranks[r]["steps"]]
