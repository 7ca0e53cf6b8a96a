import pytest
import tomllib
from click.testing import CliRunner

from babylm.train.cli import main
from babylm.train.config import (
    TrainConfig,
    parse_mix,
    resolve_config,
)
from babylm.train.settings import MIX_PRESETS, parse_setting

BASE = {"data": ["shards/text"], "tokenizer": "tok", "out": "run"}


def test_defaults_are_the_original_hyperparameters():
    cfg = TrainConfig(model="flamingo", **BASE).validate()
    assert (cfg.lr, cfg.weight_decay, cfg.grad_clip, cfg.global_batch_size) == (1e-4, 0.1, 1.0, 128)
    assert (cfg.warmup_steps, cfg.lr_schedule, cfg.seq_len, cfg.mix_weights) == (
        5000,
        "constant",
        128,
        (1, 0.25),
    )
    assert cfg.save_epochs == [5, 10, 20, 25]
    assert cfg.num_epochs == 30
    assert TrainConfig(model="opt", **BASE).num_epochs == 20


@pytest.mark.parametrize(
    "name, expected",
    [
        ("base_flmg_1vd25_s1", {"model": "flamingo", "mix": "1vd25", "seed": 1}),
        ("BabyLM/exp_txt_vis_new.py:base_git_1v1_s2", {"model": "git", "mix": "1v1", "seed": 2}),
        ("base_noimg_1vd125_s1", {"model": "noimg", "mix": "1vd125", "seed": 1}),
        ("BabyLM/exp_strict.py:opt125m_s3", {"model": "opt", "seed": 3}),
        ("BabyLM/exp_strict_mask_100M.py:roberta_s1", {"model": "roberta", "seed": 1}),
    ],
)
def test_original_setting_names(name, expected):
    assert parse_setting(name) == expected


@pytest.mark.parametrize("bad", ["base_flmg_1vd7_s1", "opt350m_s1", "flamingo"])
def test_unknown_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="setting"):
        parse_setting(bad)


def test_mix_presets_and_explicit_weights():
    assert MIX_PRESETS["1vd5"] == (1.0, 0.5)
    assert parse_mix("1,0.25") == (1.0, 0.25)
    for bad in ("1", "a,b", "-1,1", "0,0"):
        with pytest.raises(ValueError, match="--mix"):
            parse_mix(bad)


def test_precedence_defaults_setting_file_cli(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        'setting = "base_git_1vd5_s7"\nlr = 0.001\nseed = 9\ndata = ["a", "b"]\ntokenizer = "t"\nout = "o"\n'
    )
    cfg = resolve_config("git", {"lr": 0.002}, f)
    assert (cfg.mix, cfg.seed, cfg.lr, cfg.data) == ("1vd5", 9, 0.002, ["a", "b"])
    with pytest.raises(ValueError, match="selects model git, not flamingo"):
        resolve_config("flamingo", {}, f)


def test_toml_round_trip_and_unknown_keys(tmp_path):
    cfg = TrainConfig(model="roberta", max_steps=7, save_epochs=[1, 2], tensorboard=True, **BASE)
    f = tmp_path / "config.toml"
    f.write_text(cfg.to_toml())
    assert tomllib.loads(f.read_text())["save_epochs"] == [1, 2]
    again = resolve_config("roberta", {}, f)
    assert again == cfg
    f.write_text(f.read_text() + "lerning_rate = 1\n")
    with pytest.raises(ValueError, match="unknown keys lerning_rate"):
        resolve_config("roberta", {}, f)


def test_accumulation_fills_the_global_batch():
    cfg = TrainConfig(global_batch_size=128, batch_size=16, **BASE)
    assert cfg.accumulation(4) == (16, 2)
    assert TrainConfig(**BASE).accumulation(2) == (64, 1)
    with pytest.raises(ValueError, match="not a multiple of --batch-size"):
        TrainConfig(global_batch_size=128, batch_size=24, **BASE).accumulation(2)


def test_bad_values_name_the_option():
    with pytest.raises(ValueError, match="--keep"):
        TrainConfig(keep=-1, **BASE).validate()
    with pytest.raises(ValueError, match="--data is required"):
        TrainConfig(tokenizer="t", out="o").validate()


def test_cli_options_come_from_the_dataclass():
    result = CliRunner().invoke(main, ["opt", "--help"])
    assert result.exit_code == 0
    for option in ("--global-batch-size", "--save-epochs", "--lr-schedule", "--tensorboard", "--config"):
        assert option in result.output
    assert "[default: 0.0001]" in result.output


def test_cli_reports_bad_config_as_usage_error(tmp_path):
    result = CliRunner().invoke(
        main, ["flamingo", "--setting", "opt125m_s1", "--tokenizer", "t", "--out", "o"]
    )
    assert result.exit_code == 2
    assert "selects model opt, not flamingo" in result.output


def test_setting_reproduces_the_original_and_records_it(tmp_path):
    cfg = resolve_config("flamingo", {"setting": "base_flmg_1vd25_s1", **BASE})
    assert (cfg.precision, cfg.caption_loss) == ("fp32", "original")
    toml = tomllib.loads(cfg.to_toml())
    assert toml["precision"] == "fp32" and toml["caption_loss"] == "original"
    text = resolve_config("opt", {"setting": "opt125m_s1", **BASE})
    assert text.precision == "fp32"
    plain = resolve_config("flamingo", dict(BASE))  # without --setting: the better defaults
    assert (plain.precision, plain.caption_loss) == ("auto", "masked")


def test_setting_refuses_a_contradicting_option_unless_overridden():
    cli = {"setting": "base_flmg_1vd25_s1", "caption_loss": "masked", **BASE}
    with pytest.raises(ValueError, match=r"--setting base_flmg_1vd25_s1 .*--caption-loss masked"):
        resolve_config("flamingo", cli)
    with pytest.raises(ValueError, match="--precision bf16"):
        resolve_config("opt", {"setting": "opt125m_s1", "precision": "bf16", **BASE})
    cfg = resolve_config("flamingo", {**cli, "override_setting": True})
    assert cfg.caption_loss == "masked"
    # Agreeing with the setting is fine (a resumed run's config.toml repeats every value).
    assert resolve_config("flamingo", {**cli, "caption_loss": "original"}).caption_loss == "original"


def test_flamingo_setting_keeps_the_original_pad_row():
    assert resolve_config("flamingo", {"setting": "base_flmg_1vd25_s1", **BASE}).pad_row == "original"
    assert resolve_config("git", {"setting": "base_git_1vd25_s1", **BASE}).pad_row == "pad"
    with pytest.raises(ValueError, match="--pad-row pad"):
        resolve_config("flamingo", {"setting": "base_flmg_1vd25_s1", "pad_row": "pad", **BASE})


def test_every_setting_chunks_text_as_the_original():
    for model, setting in (
        ("flamingo", "base_flmg_1vd25_s1"),
        ("opt", "opt125m_s1"),
        ("roberta", "roberta_s1"),
    ):
        assert resolve_config(model, {"setting": setting, **BASE}).chunking == "original"
    assert resolve_config("opt", dict(BASE)).chunking == "stream"


def test_config_is_frozen_and_a_replaced_copy_is_checked_again():
    import dataclasses

    cfg = TrainConfig(**BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    assert dataclasses.replace(cfg, lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="--keep"):
        dataclasses.replace(cfg, keep=-1)


def test_a_choice_outside_its_literal_is_refused_in_a_config_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('precision = "fp16"\n')
    with pytest.raises(ValueError, match="precision = 'fp16': must be one of auto, bf16, fp32"):
        resolve_config("opt", dict(BASE), f)
    with pytest.raises(ValueError, match="--chunking must be one of stream, original"):
        TrainConfig(chunking="groups", **BASE)
