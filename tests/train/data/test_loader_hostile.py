"""The loader against hostile data and servers: a forged index or count is refused before the
epoch is planned, a trickling or lying server fails by `fetch_timeout` naming the URL, a file
that is not a file never blocks, a JPEG bomb is a counted skip, token ids past the tokenizer's
vocabulary are refused at load."""

from __future__ import annotations

import os
import time

import pytest

from babylm.shards import Manifest, TarShardWriter, write_manifest
from babylm.shards.errors import ShardError
from babylm.train.cli import user_error_types
from babylm.train.data.loader import build_loader
from tests.loopback_server import Fault, LoopbackServer
from tests.shards.hostile_fixtures import edit_manifest, finishes, forge_index, jpeg_bomb
from tests.train.data.loader_fixtures import tiny_jpeg, write_image_text, write_tokens


def _keys(loader) -> list[str]:
    return [k for batch in loader.batches() for k in batch.keys]


@pytest.fixture
def images(tmp_path):
    return write_image_text(tmp_path / "it", [12, 8])


@pytest.mark.parametrize(
    "forge",
    [
        lambda r, c: r.__setitem__(1, r[1, ::-1]),
        lambda r, c: r.__setitem__((-1, 1), 2**62),
        lambda r, c: r.__setitem__((1, 0), r[0, 1] - 512),
    ],
    ids=["start>end", "end=2^62", "overlap"],
)
def test_forged_index_is_refused_when_the_loader_is_built(images, forge):
    forge_index(images, 1, forge)
    with pytest.raises(ShardError, match=r"shard-000001\.idx.*forged or damaged index"):
        build_loader(images, batch_size=4, image_size=32)


def test_forged_sample_count_is_refused_before_planning(images):
    def unlisted(m):  # no index to compare with: the count against the tar's size
        m["shards"][0].pop("index")
        m["shards"][0]["samples"] = 10**12

    edit_manifest(images, unlisted)
    (images / "shard-000000.idx").unlink()
    with pytest.raises(ShardError, match="more than a tar of"):
        finishes(lambda: build_loader(images, batch_size=4, image_size=32), timeout=20)

    edit_manifest(images, lambda m: m["shards"][0].update(bytes=10**15))
    with pytest.raises(ShardError, match="the manifest says 1000000000000000"):
        finishes(lambda: build_loader(images, batch_size=4, image_size=32), timeout=20)


def test_forged_token_count_is_refused_before_planning(tmp_path):
    data = write_tokens(tmp_path / "tok", [30])
    edit_manifest(data, lambda m: m["shards"][0].update(tokens=10**12))
    with pytest.raises(ShardError, match="more than a shard of"):
        finishes(lambda: build_loader(data, batch_size=2, seq_len=8), timeout=20)


@pytest.mark.parametrize("make", [os.mkfifo, lambda p: os.symlink("/dev/zero", p)], ids=["fifo", "dev-zero"])
def test_shard_that_is_not_a_file_is_an_error_not_a_hang(images, make):
    shard = images / "shard-000001.tar"
    shard.unlink()
    make(shard)
    with pytest.raises(ShardError, match=r"shard-000001\.tar: cannot open the shard: .*not a regular file"):
        finishes(lambda: build_loader(images, batch_size=4, image_size=32), timeout=20)


def test_jpeg_bomb_is_a_counted_skip(tmp_path):
    out = tmp_path / "bomb"
    with TarShardWriter(out, "shard-000000.tar") as w:
        for i in range(8):
            jpg = jpeg_bomb() if i == 5 else tiny_jpeg(i, 32)
            w.write({"__key__": f"k{i}", "jpg": jpg, "txt": f"caption {i}"})
    write_manifest(out, Manifest(kind="image_text", shards=[w.entry]))
    loader = build_loader(out, batch_size=4, image_size=32, max_corrupt_fraction=0.5)
    keys = _keys(loader)
    assert sorted(keys) == [f"k{i}" for i in range(8) if i != 5]
    assert loader.corrupt["total_skipped"] == 1


class _TinyTokenizer:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_token_ids_past_the_tokenizer_are_refused_at_load(tmp_path):
    data = write_tokens(tmp_path / "tok", [40], vocab_size=200)  # ids 0, 1, 2, ... up to < 200
    fine = build_loader(data, batch_size=2, seq_len=8, kind="tokens", tokenizer=_TinyTokenizer(200))
    assert len(_keys(fine)) > 0
    small = build_loader(data, batch_size=2, seq_len=8, kind="tokens", tokenizer=_TinyTokenizer(100))
    with pytest.raises(ShardError, match=r"tokens-000000\.arrow: token id \d+ is outside .*\[0, 100\)") as e:
        _keys(small)
    assert isinstance(e.value, user_error_types())  # the CLI prints it as one Error: line


# -- remote ---------------------------------------------------------------------------------------


@pytest.fixture
def served(images, tmp_path):
    with LoopbackServer(images) as srv:
        yield srv


def _remote(url: str, **changes):
    spec = dict(batch_size=4, image_size=32, fetch_timeout=0.8, fetch_retries=1, prefetch_batches=2)
    spec.update(changes)
    return build_loader(url, **spec)


def test_trickling_shard_fails_by_fetch_timeout_naming_the_url(served, tmp_path):
    fault = Fault(".tar", "trickle", times=100, stall_s=0.3)
    served.state.faults.append(fault)
    loader = _remote(served.url, cache_dir=tmp_path / "cache")
    t0 = time.monotonic()
    with pytest.raises(ShardError) as e:
        finishes(lambda: _keys(loader), timeout=30)
    assert f"{served.url}/shard-0000" in str(e.value) and "deadline" in str(e.value)
    assert "2 attempts" in str(e.value)
    assert time.monotonic() - t0 < 10  # 2 tries of 0.8 s (+ backoff), not a byte every 0.3 s for ever


def test_endless_index_answer_is_cut_at_the_size_of_an_index(served, tmp_path):
    served.state.faults.append(Fault("shard-000000.idx", "endless", times=10))
    with pytest.raises(ShardError, match=r"shard-000000\.idx.*longer than the \d+ bytes"):
        finishes(lambda: _remote(served.url, cache_dir=tmp_path / "cache"), timeout=30)


def test_body_longer_than_the_block_is_an_error_naming_the_shard(served, tmp_path):
    served.state.faults.append(Fault(".tar", "long", times=100))
    loader = _remote(served.url, cache_dir=tmp_path / "cache")
    with pytest.raises(ShardError, match=r"shard-0000\d\d\.tar.*announces \d+ bytes where \d+ were asked"):
        finishes(lambda: _keys(loader), timeout=30)


def test_403_on_a_shard_is_not_retried_and_says_403(served, tmp_path):
    fault = Fault(".tar", "status", times=100, status=403)
    served.state.faults.append(fault)
    loader = _remote(served.url, cache_dir=tmp_path / "cache", fetch_retries=3, prefetch_batches=0)
    with pytest.raises(ShardError, match="403"):
        finishes(lambda: _keys(loader), timeout=30)


def test_403_on_a_block_is_not_retried_and_says_403(served, tmp_path):
    fault = Fault(".tar", "status", times=100, status=403)
    served.state.faults.append(fault)
    loader = _remote(served.url, cache_dir=tmp_path / "cache", fetch_retries=3)
    with pytest.raises(ShardError, match=r"shard-0000\d\d\.tar: reading bytes .* failed: HTTP 403"):
        finishes(lambda: _keys(loader), timeout=30)
    assert 100 - fault.times <= 2  # one try per block asked (the prefetcher may ask two at once)


def test_remote_manifest_403_is_a_typed_error(served):
    served.state.faults.append(Fault("manifest.json", "status", times=10, status=403))
    with pytest.raises(OSError, match="HTTP 403") as e:
        _remote(served.url)
    assert "no manifest" not in str(e.value)


def test_clean_remote_dataset_still_reads_everything(served, tmp_path):
    keys = _keys(_remote(served.url, cache_dir=tmp_path / "cache"))
    assert len(keys) == 20 and len(set(keys)) == 20


@pytest.mark.parametrize("damage", ["fifo", "forged-index"])
def test_samples_command_prints_one_error_line(images, damage):
    from click.testing import CliRunner

    from babylm.train.cli import main

    if damage == "fifo":
        (images / "shard-000001.tar").unlink()
        os.mkfifo(images / "shard-000001.tar")
    else:
        forge_index(images, 1, lambda r, c: r.__setitem__((-1, 1), 2**62))
    args = ["samples", str(images), "--batch-size", "4", "--image-size", "32"]
    result = finishes(lambda: CliRunner().invoke(main, args), timeout=30)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "shard-000001" in lines[0]


def test_an_error_in_a_worker_reaches_the_main_process_as_its_own_message(served, tmp_path):
    served.state.faults.append(Fault(".tar", "status", times=100, status=403))
    loader = _remote(served.url, cache_dir=tmp_path / "cache", workers=1)
    with pytest.raises(ShardError) as e:
        finishes(lambda: _keys(loader), timeout=60)
    message = str(e.value)
    assert "Traceback" not in message and "\n" not in message
    assert message.startswith(f"{served.url}/shard-0000") and "HTTP 403" in message
    assert message.endswith("(in a DataLoader worker)")


def test_scanned_tar_whose_member_declares_more_than_the_shard_has_is_refused(images, tmp_path):
    import tarfile

    def no_index(m):
        for entry in m["shards"]:
            entry.pop("index")

    edit_manifest(images, no_index)
    for idx in images.glob("*.idx"):
        idx.unlink()
    shard = images / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1].offset
    raw = bytearray(shard.read_bytes())
    header = raw[last : last + 512]
    header[124:136] = b"%011o\0" % 0o77777777777  # about 8.5 GB in a ~20 KB tar
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    raw[last : last + 512] = header
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match=r"shard-000000\.tar: a sample range lies outside the shard"):
        build_loader(images, batch_size=4, image_size=32, cache_dir=tmp_path / "cache")
