"""Sample checksums, remote block prefetch and bad input, against real tars and a real HTTP server
on 127.0.0.1 that injects faults (5xx, short answers, stalls) on chosen requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from babylm.shards.errors import ShardError
from babylm.train.data.contract import LoaderBatch
from babylm.train.data.loader import build_loader
from tests.loopback_server import Fault, LoopbackServer
from tests.train.data.loader_fixtures import write_image_text

SIZES = [256, 256, 256]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("served")
    write_image_text(root / "it", SIZES)
    return root


def _epoch(location, cache: Path, **kw) -> list[LoaderBatch]:
    kw = {"batch_size": 16, "image_size": 32, "seed": 4, **kw}
    return list(build_loader(location, cache_dir=cache, **kw).batches())


def _same(a: list[LoaderBatch], b: list[LoaderBatch]) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.keys == y.keys and torch.equal(x.inputs["pixel_values"], y.inputs["pixel_values"])


def _flip_jpeg_byte(shard: Path, member: str) -> None:
    """Flip one byte in the middle of a JPEG member's data: the tar stays valid."""
    with tarfile.open(shard) as t:
        info = t.getmember(member)
    with open(shard, "r+b") as f:
        f.seek(info.offset_data + info.size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x10]))


@pytest.mark.parametrize("remote", [False, True])
def test_flipped_jpeg_byte_is_a_counted_corrupt_sample(tmp_path, remote):
    data = write_image_text(tmp_path / "ds", [40, 40])
    _flip_jpeg_byte(data / "shard-000001.tar", "s01-00005.jpg")
    kw = dict(batch_size=8, max_corrupt_fraction=0.5)
    with LoopbackServer(tmp_path) as srv:
        loader = build_loader(f"{srv.url}/ds" if remote else data, cache_dir=tmp_path / "c", **kw)
        keys = [k for b in loader.batches() for k in b.keys]
    assert "s01-00005" not in keys and len(keys) == 79
    assert list(loader.corrupt["by_shard"].values()) == [1]
    assert loader.corrupt["total_skipped"] == 1


def test_dataset_without_index_files_reads_the_same(tmp_path, served):
    old = tmp_path / "old"
    shutil.copytree(served / "it", old)
    for p in old.glob("*.idx"):
        p.unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    for s in manifest["shards"]:
        del s["index"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with LoopbackServer(tmp_path) as srv:
        remote = _epoch(f"{srv.url}/old", tmp_path / "c", workers=1)
    _same(remote, _epoch(old, tmp_path / "c"))
    _same(remote, _epoch(served / "it", tmp_path / "c"))


def test_remote_epoch_takes_few_large_requests_and_the_shard_bytes_once(tmp_path, served):
    with LoopbackServer(served) as srv:
        remote = _epoch(f"{srv.url}/it", tmp_path / "c", workers=2, block_size=128)
        first = srv.state.log[:]
        again = _epoch(f"{srv.url}/it", tmp_path / "c", workers=2, block_size=128)
    _same(remote, _epoch(served / "it", tmp_path / "c", block_size=128))
    _same(again, remote)
    shard_bytes = sum(p.stat().st_size for p in (served / "it").glob("*.tar"))
    data_requests = [e for e in first if e[1].endswith(".tar")]
    assert len(first) - 1 <= sum(SIZES) / 64  # - 1: the manifest
    assert len(data_requests) == 6  # one per block of 128 samples, none twice (shared cache)
    assert sum(e[3] for e in first) <= 1.1 * shard_bytes
    # The next epoch finds every block in the cache.
    assert [e for e in srv.state.log[len(first) :] if e[1].endswith(".tar")] == []


@pytest.mark.parametrize("kind", ["5xx", "short", "stall"])
def test_transient_server_faults_are_retried(tmp_path, served, kind):
    with LoopbackServer(served) as srv:
        srv.state.faults.append(Fault(".tar", kind, times=2, stall_s=3.0))
        remote = _epoch(f"{srv.url}/it", tmp_path / "c", workers=1, fetch_timeout=1.0)
    assert srv.state.faults[0].times == 0
    _same(remote, _epoch(served / "it", tmp_path / "c"))


def test_persistent_5xx_is_an_error_naming_the_shard_url(tmp_path, served):
    with LoopbackServer(served) as srv:
        srv.state.faults.append(Fault(".tar", "5xx", times=1000))
        with pytest.raises(
            ShardError, match=rf"{srv.url}/it/shard-00000\d\.tar: reading bytes .* 3 attempts.*503"
        ):
            _epoch(f"{srv.url}/it", tmp_path / "c", fetch_retries=2)


def test_shard_replaced_under_a_running_job_is_an_error_naming_it(tmp_path):
    data = write_image_text(tmp_path / "ds", [64, 64])
    other = write_image_text(
        tmp_path / "other", [64, 64], corrupt={f"s0{s}-000{i:02d}" for s in (0, 1) for i in range(64)}
    )
    kw = dict(batch_size=8, shuffle_buffer=0, block_size=8, prefetch_batches=1, cache_dir=tmp_path / "c")
    with LoopbackServer(tmp_path) as srv:
        loader = build_loader(f"{srv.url}/ds", **kw).batches()
        next(loader)
        for name in ("shard-000000.tar", "shard-000001.tar"):
            shutil.copy(other / name, data / name)
        with pytest.raises(
            ShardError, match=rf"{srv.url}/ds/shard-00000\d\.tar: shard changed under the running job"
        ):
            list(loader)


def test_cache_left_by_a_killed_run_is_reused_safely(tmp_path, served):
    cache = tmp_path / "c"
    with LoopbackServer(served) as srv:
        first = _epoch(f"{srv.url}/it", cache)
        blocks = sorted((cache / "blocks").glob("*.blk"))
        # A killed run leaves a temporary file of a dead process and (disk trouble) a damaged block.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
        stale = cache / "blocks" / f".{blocks[0].name}.{int(dead.stdout)}.tmp"
        stale.write_bytes(b"partial")
        with open(blocks[1], "r+b") as f:
            f.seek(100)
            f.write(b"\xff\xfe")
        n = srv.state.requests
        again = _epoch(f"{srv.url}/it", cache)
        refetched = [e for e in srv.state.log[n:] if e[1].endswith(".tar")]
    _same(again, first)
    assert not stale.exists()
    assert len(refetched) == 1  # only the damaged block


def test_cache_stays_within_its_bound(tmp_path, served):
    block = max(p.stat().st_size for p in (served / "it").glob("*.tar")) // 8
    with LoopbackServer(served) as srv:
        remote = _epoch(
            f"{srv.url}/it", tmp_path / "c", block_size=32, shuffle_buffer=64, cache_bytes=4 * block
        )
    _same(remote, _epoch(served / "it", tmp_path / "c", block_size=32, shuffle_buffer=64))
    cached = sum(p.stat().st_size for p in (tmp_path / "c" / "blocks").glob("*.blk"))
    assert cached <= 5 * block


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from babylm.train.data.loader import build_loader
from babylm.shards.errors import ShardError
from tests.loopback_server import LoopbackServer

served, cache = Path(sys.argv[1]), Path(sys.argv[2])
# Files over 64 KiB cannot be written: a cache disk that is full for every block.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
with LoopbackServer(served) as srv:
    try:
        list(build_loader(f"{srv.url}/it", batch_size=16, image_size=32, cache_dir=cache))
    except ShardError as e:
        print("ERROR", e)
"""


def test_full_cache_disk_is_an_error_naming_the_shard_and_cache(tmp_path, served):
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(served), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert "ERROR http://127.0.0.1:" in out.stdout, out.stderr[-2000:]
    assert "/it/shard-00000" in out.stdout and "cannot write its cache block under" in out.stdout
    assert str(tmp_path / "c") in out.stdout


def test_remote_resume_on_another_topology_continues_like_local(tmp_path, served):
    """A resume mid-epoch over HTTP, with another worker count, plans its prefetch from the
    resumed step and gives the batches the local loader gives."""
    kw = dict(batch_size=16, image_size=32, seed=9, block_size=32, shuffle_buffer=128)
    local = build_loader(served / "it", cache_dir=tmp_path / "a", **kw)
    it = local.batches()
    for _ in range(7):
        next(it)
    state = local.state_dict()
    rest_local = list(it)
    with LoopbackServer(served) as srv:
        remote = build_loader(f"{srv.url}/it", cache_dir=tmp_path / "b", workers=2, **kw)
        remote.load_state_dict(state)
        rest_remote = list(remote.batches())
    _same(rest_remote, rest_local)
