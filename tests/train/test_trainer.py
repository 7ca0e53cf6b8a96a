"""The trainer in one process (no torchrun): every model kind, records, resume, export.

The 2-process torchrun runs are in test_trainer_ddp.py; both use the builders in trainer_fixtures.py.
"""

from __future__ import annotations

import json
import math

import pytest
import tomllib
import torch
from click.testing import CliRunner

from babylm.train.cli import main
from tests.train.trainer_fixtures import (
    assert_same_weights,
    final_weights,
    metrics,
    run,
    train_args,
    write_trainer_data,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(tmp_path_factory.mktemp("trainer_data"), tiny_tokenizer_dir)


def test_opt_learns_and_writes_its_records(data, tmp_path):
    out = tmp_path / "opt"
    run(train_args("opt", data, out, "--max-steps", "24", "--lr", "3e-3", "--save-every", "0"))
    recs = metrics(out)
    assert [r["step"] for r in recs] == list(range(1, 25))
    assert recs[-1]["loss_text"] < 0.75 * recs[0]["loss_text"]
    assert {"epoch", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "skipped"} <= recs[-1].keys()
    assert recs[0]["lr"] == pytest.approx(1e-3 * 3 * 1e-4)  # the first warmup step, 1e-4 of the peak
    info = json.loads((out / "run.json").read_text())
    assert info["accumulation_steps"] == 1 and info["parameters"]["frozen"] == 0
    assert json.loads((out / "done.json").read_text())["step"] == 24
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000024"]  # the final one
    assert "max_steps = 24" in (out / "config.toml").read_text()
    result = CliRunner().invoke(main, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_roberta_resume_continues_exactly(data, tmp_path):
    """Dropout on, masks drawn per step: the RNG states and the mask seeds must both carry over."""
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    run(train_args("roberta", data, full, "--max-steps", "6", "--save-every", "3", "--keep", "5"))
    run(
        train_args(
            "roberta", data, resumed, "--max-steps", "6", "--resume", str(full / "checkpoints/step-00000003")
        )
    )
    assert_same_weights(final_weights(full), final_weights(resumed))
    assert [r["step"] for r in metrics(resumed)] == [4, 5, 6]
    assert metrics(resumed)[-1]["loss_text"] == metrics(full)[-1]["loss_text"]


def test_accumulation_gives_the_same_update_as_one_big_batch(data, tmp_path):
    """Adam's eps=1 makes the update linear in the gradient, so float reordering stays tiny."""
    linear = [
        "--dropout",
        "0",
        "--adam-eps",
        "1",
        "--weight-decay",
        "0",
        "--warmup-steps",
        "0",
        "--lr",
        "0.5",
    ]
    big, accum = tmp_path / "big", tmp_path / "accum"
    run(train_args("git", data, big, "--max-steps", "2", "--save-every", "1", *linear))
    run(train_args("git", data, accum, "--max-steps", "2", "--save-every", "1", "--batch-size", "2", *linear))
    assert json.loads((accum / "run.json").read_text())["accumulation_steps"] == 4
    a, b = final_weights(big), final_weights(accum)
    moved = torch.load(big / "checkpoints/step-00000001/model.pt", weights_only=True)
    assert max((a[k] - moved[k]).abs().max().item() for k in a) > 1e-3
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_git_keeps_its_encoder_frozen(data, tmp_path):
    """Also: two caption datasets are concatenated into one stream (64 samples, 8 steps/epoch)."""
    from babylm.train.models import load_vision_encoder

    out = tmp_path / "git"
    run(train_args("git", data, out, "--max-steps", "3", "--mix", "1,0.5", "--data", data["images2"]))
    assert json.loads((out / "run.json").read_text())["samples_per_epoch"]["caption"] == 48 + 16
    rec = metrics(out)[-1]
    assert rec["loss"] == pytest.approx(rec["loss_caption"] + 0.5 * rec["loss_text"])
    weights = final_weights(out)
    encoder = load_vision_encoder(data["vit"])[0].state_dict()
    for name, value in encoder.items():
        assert torch.equal(weights[f"git.image_encoder.{name}"], value), name


def test_noimg_trains_on_captions_as_text(data, tmp_path):
    out = tmp_path / "noimg"
    args = train_args("noimg", data, out, "--max-steps", "2", "--setting", "base_noimg_1vd5_s1")
    args[args.index(data["vit"])] = "tiny-random"  # built under the run folder, never shown an image
    run(args)
    assert (out / "tiny_vit" / "config.json").exists()
    rec = metrics(out)[-1]
    assert rec["loss"] == pytest.approx(rec["loss_caption"] + 0.5 * rec["loss_text"])
    weights = final_weights(out)
    params = json.loads((out / "run.json").read_text())["parameters"]
    projection = sum(v.numel() for k, v in weights.items() if "visual_projection" in k)
    assert params["frozen"] >= projection > 0  # never sees an image: kept out of the optimizer


def test_flamingo_setting_trains_as_the_original(data, tmp_path):
    """--setting: fp32 and the caption loss over padding too, recorded in config.toml."""
    runs = {}
    for name, extra in (("setting", ["--setting", "base_flmg_1vd25_s1"]), ("masked", ["--seed", "1"])):
        out = tmp_path / name
        run(train_args("flamingo", data, out, "--max-steps", "2", "--mix", "1vd25", *extra))
        runs[name] = metrics(out)[-1]["loss_caption"]
        config = tomllib.loads((out / "config.toml").read_text())
        assert config["caption_loss"] == ("original" if name == "setting" else "masked")
    assert config["precision"] == "auto"
    assert all(math.isfinite(v) for v in runs.values())
    assert runs["setting"] != runs["masked"]  # same seed and data, pad positions now count


def test_git_trains_on_precomputed_features(data, tmp_path):
    out = tmp_path / "features"
    args = train_args("git", data, out, "--max-steps", "2")
    args[args.index(data["images"])] = data["features"]
    args[args.index(data["vit"])] = data["vit768"]
    run(args)
    assert math.isfinite(metrics(out)[-1]["loss_caption"])


def test_export_of_an_opt_run_loads_with_transformers(data, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "opt"
    run(train_args("opt", data, out, "--max-steps", "2"))
    result = CliRunner().invoke(main, ["export", str(out), str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    weights = final_weights(out)
    assert torch.equal(model.get_input_embeddings().weight, weights["model.decoder.embed_tokens.weight"])
    again = CliRunner().invoke(main, train_args("opt", data, out, "--max-steps", "2"))
    assert again.exit_code == 2 and "already has checkpoints" in again.output  # no silent restart


def test_multimodal_data_needs_both_kinds(data, tmp_path):
    args = train_args("flamingo", data, tmp_path / "x", "--max-steps", "1")
    del args[args.index(data["text"]) - 1 : args.index(data["text"]) + 1]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "one tokens dataset" in result.output


def test_tensorboard_missing_is_a_clear_error(data, tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    result = CliRunner().invoke(
        main, train_args("opt", data, tmp_path / "tb", "--max-steps", "1", "--tensorboard")
    )
    assert result.exit_code != 0
    assert "pip install tensorboard" in str(result.exception)
