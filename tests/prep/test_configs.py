"""The frozen job configs: bad settings are ConfigErrors naming the option, and the CLI's defaults
are the configs' defaults (one place declares each)."""

from __future__ import annotations

import dataclasses

import pytest

from babylm.prep.cli import main as prep_main
from babylm.prep.errors import ConfigError
from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sources.cc3m import Cc3mConfig
from babylm.prep.sources.demo import DemoDataConfig
from babylm.prep.sources.features import SAMPLES_PER_SHARD, FeaturesConfig
from babylm.prep.sources.localnarr import LocalNarrConfig
from babylm.prep.text.run import TextConfig
from babylm.prep.text.tokenizer import TokenizerConfig

SHARDING = ShardingConfig(out="shards/x")  # validated only, never written

BAD = {
    "--samples-per-shard": lambda: ShardingConfig(out="o", samples_per_shard=0),
    "--workers": lambda: ShardingConfig(out="o", workers=0),
    "--part": lambda: ShardingConfig(out="o", part=(2, 2)),
    "--resize": lambda: ImagePolicy(resize="crop"),
    "--quality": lambda: ImagePolicy(quality=0),
    "--image-size": lambda: ImagePolicy(size=4),
    "--split": lambda: Cc3mConfig(src="s", sharding=SHARDING, split="test"),
    "--jpeg-only": lambda: Cc3mConfig(src="s", sharding=SHARDING, layout="img2dataset", jpeg_only=True),
    "--layout": lambda: LocalNarrConfig(src="s", sharding=SHARDING, layout="csv"),
    "--src": lambda: LocalNarrConfig(src=None, sharding=SHARDING),
    "--captions": lambda: FeaturesConfig(captions="/missing.json", states=(), sharding=SHARDING),
    "--corpus": lambda: TokenizerConfig(corpus="nope", root="r", out="o"),
    "--vocab-size": lambda: TokenizerConfig(corpus="vis2024", root="r", out="o", vocab_size=3),
    "--on-bad-utf8": lambda: TextConfig(corpus="vis2024", root="r", tokenizer="t", out="o", on_bad_utf8="x"),
    "--shard-rows": lambda: TextConfig(corpus="vis2024", root="r", tokenizer="t", out="o", shard_rows=0),
    "--text-lines": lambda: DemoDataConfig(out="o", text_lines=-1),
}


@pytest.mark.parametrize("option", sorted(BAD))
def test_bad_settings_name_their_option(option):
    with pytest.raises(ConfigError, match=option):
        BAD[option]()


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHARDING.workers = 2  # type: ignore[misc]


def _defaults(command: str) -> dict[str, object]:
    return {p.name: p.default for p in prep_main.commands[command].params}


@pytest.mark.parametrize(
    "command, config, fields",
    [
        ("cc3m", ShardingConfig, ["samples_per_shard", "workers", "seed"]),
        ("cc3m", Cc3mConfig, ["split", "layout"]),
        ("localnarr", LocalNarrConfig, ["layout"]),
        ("features", FeaturesConfig, ["cleaning"]),
        ("tokenizer", TokenizerConfig, ["vocab_size"]),
        ("text", TextConfig, ["split", "workers", "on_bad_utf8", "shard_rows", "batch_lines", "fast_path"]),
        ("demo-data", DemoDataConfig, ["cc3m_rows", "ln_images", "text_lines", "seed"]),
    ],
)
def test_cli_defaults_are_the_config_defaults(command, config, fields):
    declared = {f.name: f.default for f in dataclasses.fields(config)}
    got = _defaults(command)
    assert {f: got[f] for f in fields} == {f: declared[f] for f in fields}


def test_image_defaults_and_features_unit_size():
    got = _defaults("cc3m")
    policy = ImagePolicy()
    assert (got["image_size"], got["resize"], got["quality"], got["min_size"], got["max_pixels"]) == (
        policy.size,
        policy.resize,
        policy.quality,
        policy.min_size,
        policy.max_pixels,
    )
    assert _defaults("features")["samples_per_shard"] == SAMPLES_PER_SHARD
