"""Training from shards on an HTTP object store (a loopback server with a 5 ms delay): the same
weights as from the same shards on local disk, with the blocks in `--cache-dir`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loopback_server import LoopbackServer
from tests.train.trainer_fixtures import (
    assert_same_weights,
    final_weights,
    run,
    train_args,
    write_trainer_data,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(
        tmp_path_factory.mktemp("trainer_data"), tiny_tokenizer_dir, images=32, lines=64
    )


def test_remote_images_train_as_local_ones_through_the_cache(data, tmp_path):
    steps = ["--max-steps", "3", "--save-every", "0"]
    run(train_args("git", data, tmp_path / "local", *steps))
    root = Path(data["images"]).parent
    cache = tmp_path / "cache"
    with LoopbackServer(root, delay_s=0.005) as srv:
        remote = dict(data, images=f"{srv.url}/images")
        extra = ["--cache-dir", str(cache), "--cache-gb", "0.5", "--prefetch-batches", "2"]
        run(train_args("git", remote, tmp_path / "remote", *steps, *extra))
        requested = {entry[1] for entry in srv.state.log}
    assert_same_weights(final_weights(tmp_path / "local"), final_weights(tmp_path / "remote"))
    assert list((cache / "blocks").glob("*.blk")) and any(p.endswith(".tar") for p in requested)
    config = (tmp_path / "remote" / "config.toml").read_text()
    assert "cache_gb = 0.5" in config and "prefetch_batches = 2" in config
