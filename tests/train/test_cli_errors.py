"""Every mistake a user can make on a `babylm-train` command line is one line, exit status 2, and
no traceback: a missing path, a folder of the wrong dataset kind, a malformed manifest, a value out
of range (refused at parse time), a config file with a wrong type, a tampered checkpoint."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from babylm.train.cli import main
from tests.train.data.loader_fixtures import write_image_text, write_tokens

MODELS = ("flamingo", "git", "noimg", "opt", "roberta")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_tokenizer_dir):
    root = tmp_path_factory.mktemp("cli")
    (root / "bad").mkdir()
    (root / "bad" / "manifest.json").write_text('{"format_version": 1, "kind": ')
    (root / "tok").mkdir()  # an existing folder: the tokenizer check passes, the data check runs
    (root / "run").mkdir()
    (root / "run" / "metrics.jsonl").write_text("not json\n")
    (root / "a_file").write_text("x\n")
    (root / "seq_len.toml").write_text('seq_len = "abc"\n')
    (root / "lr.toml").write_text("lr = nan\n")
    (root / "broken.toml").write_text("lr = [1,\n")
    tampered = root / "tampered" / "checkpoints" / "step-00000002"
    tampered.mkdir(parents=True)
    (tampered / "meta.json").write_text(json.dumps({"step": "2", "epoch": 0, "world_size": 1, "tags": []}))
    return {
        "images": str(write_image_text(root / "images", [4])),
        "tokens": str(write_tokens(root / "tokens", [40])),
        "small": str(write_tokens(root / "small", [3], vocab_size=100)),
        "bad": str(root / "bad"),
        "missing": str(root / "missing"),
        "tok": str(root / "tok"),
        "tokenizer": str(tiny_tokenizer_dir),
        "run": str(root / "run"),
        "out": str(root / "out"),
        "a_file": str(root / "a_file"),
        "seq_len_toml": str(root / "seq_len.toml"),
        "lr_toml": str(root / "lr.toml"),
        "broken_toml": str(root / "broken.toml"),
        "tampered": str(root / "tampered"),
        "meta": str(tampered / "meta.json"),
    }


def _train(model: str, *data: str, **extra: str) -> list[str]:
    args = [model, "--tokenizer", "{tok}", "--out", "{out}", "--vision-encoder", "tiny-random"]
    for d in data:
        args += ["--data", d]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def _opt(*args: str) -> list[str]:
    return [*_train("opt", "{tokens}"), *args]


# name -> (command line with {names} of `inputs`, what the one line must mention)
CASES: dict[str, tuple[list[str], str]] = {
    **{f"{m}-missing-data": (_train(m, "{missing}"), "{missing}") for m in MODELS},
    **{f"{m}-malformed-manifest": (_train(m, "{bad}", "{tokens}"), "{bad}") for m in MODELS},
    **{f"{m}-wrong-kind": (_train(m, "{tokens}"), "{tokens}") for m in ("flamingo", "git", "noimg")},
    **{f"{m}-wrong-kind": (_train(m, "{images}"), "{images}") for m in ("opt", "roberta")},
    "flamingo-missing-tokenizer": (
        _train("flamingo", "{images}", "{tokens}", tokenizer="{missing}"),
        "{missing}",
    ),
    "flamingo-missing-vision-encoder": (
        _train("flamingo", "{images}", "{tokens}", vision_encoder="{missing}/vit"),
        "{missing}",
    ),
    "flamingo-missing-config": (["flamingo", "--config", "{missing}/config.toml"], "--config"),
    # values out of range, refused while parsing
    "lr-negative": (_opt("--lr", "-1"), "--lr"),
    "lr-nan": (_opt("--lr", "nan"), "--lr"),
    "lr-inf": (_opt("--lr", "inf"), "--lr"),
    "lr-not-a-number": (_opt("--lr", "fast"), "--lr"),
    "max-steps-0": (_opt("--max-steps", "0"), "--max-steps"),
    "max-steps-negative": (_opt("--max-steps", "-1"), "--max-steps"),
    "epochs-0": (_opt("--epochs", "0"), "--epochs"),
    "global-batch-0": (_opt("--global-batch-size", "0"), "--global-batch-size"),
    "batch-size-0": (_opt("--batch-size", "0"), "--batch-size"),
    "batch-not-dividing": (_opt("--global-batch-size", "8", "--batch-size", "3"), "--batch-size 3"),
    "warmup-negative": (_opt("--warmup-steps", "-5"), "--warmup-steps"),
    "dropout-1.5": (_opt("--dropout", "1.5"), "--dropout"),
    "mask-prob-0": (_opt("--mask-prob", "0"), "--mask-prob"),
    "adam-beta2-1": (_opt("--adam-beta2", "1"), "--adam-beta2"),
    "seq-len-0": (_opt("--seq-len", "0"), "--seq-len"),
    "seq-len-abc": (_opt("--seq-len", "abc"), "--seq-len"),
    "workers-negative": (_opt("--workers", "-1"), "--workers"),
    "seed-negative": (_opt("--seed", "-1"), "--seed"),
    "cache-gb-0": (_opt("--cache-gb", "0"), "--cache-gb"),
    "save-epochs-0": (_opt("--save-epochs", "0,5"), "--save-epochs"),
    "mix-infinite": (_opt("--mix", "inf,1"), "--mix"),
    "config-wrong-type": (_opt("--config", "{seq_len_toml}"), "{seq_len_toml}"),
    "config-nan": (_opt("--config", "{lr_toml}"), "{lr_toml}"),
    "config-not-toml": (_opt("--config", "{broken_toml}"), "{broken_toml}"),
    "out-is-a-file": (_opt("--out", "{a_file}"), "{a_file}"),
    # the run's data and checkpoints
    "data-smaller-than-a-batch": (
        [
            "opt",
            "--data",
            "{small}",
            "--tokenizer",
            "{tokenizer}",
            "--out",
            "{out}/small",
            "--size",
            "tiny",
            "--global-batch-size",
            "64",
            "--seq-len",
            "16",
            "--workers",
            "0",
        ],
        "{small}: fewer samples than one global batch",
    ),  # fmt: skip
    "resume-tampered-meta": (
        ["opt", "--data", "{small}", "--tokenizer", "{tokenizer}", "--out", "{tampered}", "--resume", "auto"],
        "{meta}",
    ),
    # other commands
    "samples-missing": (["samples", "{missing}"], "{missing}"),
    "samples-wrong-kind": (["samples", "{images}", "{tokens}"], "{tokens}"),
    "samples-malformed-manifest": (["samples", "{bad}"], "{bad}"),
    "samples-world-size-0": (["samples", "{tokens}", "--world-size", "0"], "--world-size"),
    "samples-batch-size-0": (["samples", "{tokens}", "--batch-size", "0"], "--batch-size"),
    "samples-workers-negative": (["samples", "{tokens}", "--workers", "-2"], "--workers"),
    "samples-epoch-negative": (["samples", "{tokens}", "--epoch", "-1"], "--epoch"),
    "samples-steps-0": (["samples", "{tokens}", "--steps", "0"], "--steps"),
    "samples-start-step-negative": (["samples", "{tokens}", "--start-step", "-1"], "--start-step"),
    "samples-start-step-past-the-epoch": (["samples", "{tokens}", "--start-step", "999999"], "--start-step"),
    "samples-seq-len-0": (["samples", "{tokens}", "--seq-len", "0"], "--seq-len"),
    "samples-block-size-0": (["samples", "{tokens}", "--block-size", "0"], "--block-size"),
    "samples-corrupt-fraction-2": (["samples", "{images}", "--max-corrupt-fraction", "2"], "--max-corrupt"),
    "evaluate-missing-checkpoint": (
        ["evaluate", "{missing}", "--data", "{images}", "--out", "{out}"],
        "{missing}",
    ),
    # {run} has no checkpoint: the first thing evaluate checks
    "evaluate-missing-data": (["evaluate", "{run}", "--data", "{missing}", "--out", "{out}"], "{run}"),
    "evaluate-wrong-kind": (["evaluate", "{run}", "--data", "{tokens}", "--out", "{out}"], "{run}"),
    "evaluate-malformed-manifest": (["evaluate", "{run}", "--data", "{bad}", "--out", "{out}"], "{run}"),
    "evaluate-not-a-run": (["evaluate", "{images}", "--data", "{images}", "--out", "{out}"], "{images}"),
    "evaluate-batch-size-0": (
        ["evaluate", "{run}", "--data", "{images}", "--out", "{out}", "--batch-size", "0"],
        "--batch-size",
    ),
    "evaluate-missing-tokenizer": (
        ["evaluate", "{run}", "--data", "{images}", "--out", "{out}", "--tokenizer", "{missing}"],
        "{missing}",
    ),
    "export-missing": (["export", "{missing}", "{out}"], "{missing}"),
    "export-not-a-run": (["export", "{images}", "{out}"], "{images}"),
    "export-missing-tokenizer": (["export", "{run}", "{out}", "--tokenizer", "{missing}"], "{missing}"),
    "export-tampered-meta": (["export", "{tampered}", "{out}/hf"], "{meta}"),
    "plot-missing": (["plot", "{missing}"], "{missing}"),
    "plot-not-a-run": (["plot", "{images}"], "{images}"),
    "plot-malformed-metrics": (["plot", "{run}"], "{run}"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_error_is_one_line_exit_2_no_traceback(name, inputs, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    args, mention = CASES[name]
    args = [a.format(**inputs) for a in args]
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exc_info)
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert mention.format(**inputs) in lines[0], lines[0]  # the line names the input or option


def test_a_global_batch_the_world_size_cannot_split_is_refused(inputs, monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.delenv("RANK", raising=False)
    args = [a.format(**inputs) for a in _opt("--global-batch-size", "8", "--out", str(tmp_path / "run"))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "--global-batch-size 8 is not a multiple of the world size 3" in result.output
    assert not (tmp_path / "run").exists()  # refused before anything is written
