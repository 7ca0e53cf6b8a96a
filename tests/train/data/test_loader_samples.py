"""`babylm-train samples`: the keys each rank gets, from the trainer's own loader code."""

from __future__ import annotations

import json

from click.testing import CliRunner

from babylm.train.cli import main
from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import write_image_text

SIZES = [37, 5, 61, 1, 20, 9]  # 133 samples: 16 steps of global batch 8, 5 left out


def test_samples_command_prints_the_keys_every_rank_gets(tmp_path):
    data = write_image_text(tmp_path / "it", SIZES, corrupt={"s02-00007"})
    cache = tmp_path / "cache"
    base = [str(data), "--world-size", "2", "--workers", "2", "--batch-size", "4", "--epoch", "1"]
    base += ["--image-size", "32", "--cache-dir", str(cache), "--max-corrupt-fraction", "0.05"]
    runner = CliRunner()
    result = runner.invoke(main, ["samples", *base])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    steps = sum(SIZES) // 8
    assert [(x["step"], x["rank"]) for x in lines] == [(s, r) for s in range(steps) for r in range(2)]
    assert all(x["epoch"] == 1 for x in lines)
    # The trainer's loaders, rank by rank: the same keys (the corrupt sample left out alike).
    for r in range(2):
        loader = build_loader(
            data,
            batch_size=4,
            world_size=2,
            rank=r,
            image_size=32,
            cache_dir=cache,
            max_corrupt_fraction=0.05,
        )
        loader.set_epoch(1)
        assert [b.keys for b in loader.batches()] == [x["keys"] for x in lines if x["rank"] == r]
    keys = [k for x in lines for k in x["keys"]]
    assert len(keys) == len(set(keys)) and "s02-00007" not in keys
    # After a resume at step 5, the same batches as the uninterrupted epoch.
    resumed = runner.invoke(main, ["samples", *base, "--start-step", "5", "--steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(x) for x in resumed.stdout.splitlines()] == lines[10:16]
    # Like training, the default limit (1%) fails loudly at the end of the epoch, naming the shard.
    strict = runner.invoke(main, ["samples", *base[:-2]])
    assert strict.exit_code == 2 and "shard-000002.tar" in strict.output, strict.output
    assert "Traceback" not in strict.output


def test_samples_defaults_match_the_loader():
    """The samples command declares no default of its own: each is LoaderSpec's."""
    from babylm.train.cli_samples import samples
    from babylm.train.data.spec import LoaderSpec

    spec = LoaderSpec()
    shared = {p.name: p.default for p in samples.params if hasattr(spec, p.name or "")}
    assert {"block_size", "shuffle_buffer", "batch_size", "workers", "seed", "image_size"} <= set(shared)
    assert shared == {name: getattr(spec, name) for name in shared}
