"""2-process torchrun runs of the trainer (gloo on CPU): learning, frozen encoder, exact resume,
SIGTERM to one rank, export. One uninterrupted run is the reference for every resume test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from tests.train.trainer_fixtures import (
    assert_same_weights,
    final_weights,
    metrics,
    train_args,
    write_trainer_data,
)

pytestmark = pytest.mark.slow
STEPS = ["--max-steps", "8", "--save-every", "4", "--keep", "5"]
# Two ranks x micro-batch 2 x 2 accumulation steps = the global batch of 8.
DDP = ["--batch-size", "2"]


def torchrun(args: list[str], slow_steps: bool = False) -> subprocess.Popen:
    """Start `babylm-train ARGS` on 2 local processes (--standalone picks a free port); with
    `slow_steps`, each optimizer step pauses (tests/train/slow_steps.py) so a signal lands mid-run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += [str(Path(__file__).with_name("slow_steps.py"))] if slow_steps else ["-m", "babylm.train"]
    cmd += args
    full_env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(tmp_path_factory.mktemp("ddp_data"), tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted 8-step Flamingo run with dropout on and gradient accumulation."""
    out = tmp_path_factory.mktemp("reference") / "run"
    finish(torchrun(train_args("flamingo", data, out, *STEPS, *DDP)))
    return out


def test_two_ranks_learn_with_a_frozen_encoder(reference, data):
    from babylm.train.models import load_vision_encoder

    info = json.loads((reference / "run.json").read_text())
    assert (info["world_size"], info["accumulation_steps"], info["batch_size_per_device"]) == (2, 2, 2)
    recs = metrics(reference)
    assert [r["step"] for r in recs] == list(range(1, 9))
    assert recs[-1]["loss"] < 0.8 * recs[0]["loss"]
    weights = final_weights(reference)
    for name, value in load_vision_encoder(data["vit"])[0].state_dict().items():
        assert torch.equal(weights[f"model.decoder.img_encoder.{name}"], value), name
    state = torch.load(reference / "checkpoints/step-00000008/trainer.pt", weights_only=True)
    trainable = sum(1 for k in weights if "img_encoder" not in k) - 1  # lm_head is tied
    assert len(state["optimizer"]["state"]) <= trainable


def test_sigterm_to_one_rank_saves_and_resumes_exactly(reference, data, tmp_path):
    """The exact-resume test too: a stopped-and-resumed run (with a loader worker per rank, the
    reference has none) must end with the reference's parameters, bit for bit."""
    out = tmp_path / "preempted"
    args = train_args("flamingo", data, out, *STEPS, *DDP, "--workers", "1")
    proc = torchrun(args, slow_steps=True)
    deadline = time.time() + 240
    while not ((out / "metrics.jsonl").exists() and len(metrics(out)) >= 2):
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be signalled"
        time.sleep(0.05)
    ranks = {p.environ().get("RANK"): p for p in psutil.Process(proc.pid).children()}
    os.kill(ranks["1"].pid, signal.SIGTERM)  # only one rank hears it, as when only an agent forwards it
    output = finish(proc)
    assert "Stopped by SIGTERM" in output and "--resume auto" in output
    (stopped, meta), *_ = [c for c in _checkpoints(out) if "preempt" in c[1]["tags"]]
    assert 2 <= meta["step"] < 8
    assert not (out / "done.json").exists()

    finish(torchrun(["flamingo", "--config", str(out / "config.toml"), "--resume", "auto"]))
    assert_same_weights(final_weights(reference), final_weights(out))
    assert [r["step"] for r in metrics(out)] == list(range(1, 9))  # steps after the stop logged once
    assert [r["words"] for r in metrics(out)] == [r["words"] for r in metrics(reference)]


def _checkpoints(run_dir: Path) -> list[tuple[Path, dict]]:
    from babylm.train.checkpoint import list_checkpoints

    return list_checkpoints(run_dir)


def test_export_of_a_trained_flamingo_loads_standalone(reference, tmp_path):
    from click.testing import CliRunner
    from transformers import AutoModelForCausalLM, AutoProcessor

    from babylm.train.checkpoint import load_model
    from babylm.train.cli import main

    result = CliRunner().invoke(
        main, ["export", str(reference / "checkpoints/step-00000008"), str(tmp_path / "hf")]
    )
    assert result.exit_code == 0, result.output
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "hf", trust_remote_code=True)
    from PIL import Image

    inputs = processor(
        images=[Image.new("RGB", (32, 32), "red")], text=["<image> a red square"], return_tensors="pt"
    )
    ours, _, _ = load_model(reference / "checkpoints/step-00000008")
    with torch.no_grad():
        a = exported(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
        b = ours(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
    torch.testing.assert_close(a, b)


def test_accumulation_over_ranks_matches_one_big_batch(data, tmp_path):
    """2 ranks x micro-batch 2 x 2 micro-steps (DDP syncing on the last) against one process with
    the whole batch of 8. Adam's eps=1 makes the update linear in the gradient, so the different
    summation order stays far below the size of the update."""
    from tests.train.test_trainer import run

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
    steps = ["--max-steps", "2", "--save-every", "1"]
    big, ddp = tmp_path / "big", tmp_path / "ddp"
    run(train_args("git", data, big, *steps, *linear))
    finish(torchrun(train_args("git", data, ddp, *steps, *linear, *DDP)))
    a, b = final_weights(big), final_weights(ddp)
    first = torch.load(big / "checkpoints/step-00000001/model.pt", weights_only=True)
    assert max((a[k] - first[k]).abs().max().item() for k in a) > 1e-3
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_words_seen_do_not_depend_on_ranks_workers_or_an_elastic_resume(reference, data, tmp_path):
    """The reference (2 ranks, micro-batches of 2, no workers) against one process with the whole
    batch and 2 workers, and against one process resuming the reference's step-4 checkpoint."""
    from tests.train.test_trainer import run

    words = [r["words"] for r in metrics(reference)]
    assert words == sorted(words) and len(set(words)) == len(words) > 1
    one = tmp_path / "one"
    run(train_args("flamingo", data, one, *STEPS, "--workers", "2"))
    assert [r["words"] for r in metrics(one)] == words
    elastic = tmp_path / "elastic"
    resume = ["--resume", str(reference / "checkpoints/step-00000004")]
    run(train_args("flamingo", data, elastic, "--max-steps", "8", "--save-every", "0", *resume))
    assert [r["words"] for r in metrics(elastic)] == words[4:]
    for path, meta in _checkpoints(reference):
        assert meta["words"] == words[meta["step"] - 1], path
