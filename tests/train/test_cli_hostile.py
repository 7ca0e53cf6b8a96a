"""Hostile and careless input to `babylm-train` beyond the misuse table: tampered checkpoints, a
foreign pickle, a killed export, a full or read-only disk, the real console scripts, and a user
error under torchrun (one line from rank 0, exit status 2, no traceback of ours)."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoTokenizer

from babylm.train.checkpoint import CheckpointWriter, load, read_meta
from babylm.train.cli import main
from babylm.train.errors import CheckpointError
from tests.train.data.loader_fixtures import write_tokens
from tests.train.models.helpers import tiny_model

META = {"step": 2, "epoch": 0, "world_size": 1, "tags": ["final"]}


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exc_info)
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def opt_run(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A run folder with one checkpoint (step 2) of a tiny OPT, as the trainer writes it."""
    run = tmp_path_factory.mktemp("opt") / "run"
    image_id = AutoTokenizer.from_pretrained(tiny_tokenizer_dir).convert_tokens_to_ids("<image>")
    model = tiny_model("opt", None, image_id)
    trainer_state = {
        "step": 2,
        "kind": "opt",
        "config": json.dumps({"tokenizer": str(tiny_tokenizer_dir)}),
        "build_args": json.dumps(model.babylm_build_args),
        "model_config": model.config.to_json_string(),
    }
    writer = CheckpointWriter(run, rank=0, world_size=1, keep=2, barrier=lambda: None)
    writer.save(2, 0, ["final"], trainer_state, model.state_dict(), rank_state={})
    return run


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


# ---- tampered checkpoint meta.json: refused when read, naming the file ---------------------------
TAMPERED = {
    "string step": json.dumps({**META, "step": "2"}),
    "negative step": json.dumps({**META, "step": -2}),
    "float epoch": json.dumps({**META, "epoch": 0.5}),
    "zero world size": json.dumps({**META, "world_size": 0}),
    "missing key": json.dumps({k: v for k, v in META.items() if k != "world_size"}),
    "tags not a list": json.dumps({**META, "tags": "final"}),
    "step of another folder": json.dumps({**META, "step": 7}),
    "not json": '{"step": 2,',
    "not an object": "[2]",
    "deep json": "[" * 100_000 + "]" * 100_000,
    "not utf-8": b'{"step": "\xff"}'.decode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_meta_is_refused_naming_the_file(case, tmp_path):
    ckpt = tmp_path / "checkpoints" / "step-00000002"
    ckpt.mkdir(parents=True)
    (ckpt / "meta.json").write_bytes(TAMPERED[case].encode("latin-1"))
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt / "meta.json"))):
        read_meta(ckpt)


def test_a_tampered_run_stops_at_resume_before_training(opt_run, tmp_path, tiny_tokenizer_dir):
    run = _copy_run(opt_run, tmp_path / "run")
    meta = run / "checkpoints" / "step-00000002" / "meta.json"
    meta.write_text(json.dumps({**META, "step": "2"}))
    data = write_tokens(tmp_path / "tokens", [400], vocab_size=100)
    args = ["opt", "--data", str(data), "--tokenizer", str(tiny_tokenizer_dir), "--out", str(run)]
    args += ["--resume", "auto", "--size", "tiny", "--global-batch-size", "8", "--seq-len", "16"]
    line = _one_error_line(CliRunner().invoke(main, [*args, "--workers", "0"]))
    assert str(meta) in line and "step must be an integer" in line
    assert not (run / "metrics.jsonl").exists()  # nothing trained
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]


@pytest.mark.parametrize("vocab", ["300", "400"])
def test_a_checkpoint_that_does_not_fit_the_run_stops_at_resume(opt_run, tmp_path, tiny_tokenizer_dir, vocab):
    """Other embedding rows than the run builds, or no optimizer state: one line naming it."""
    run = _copy_run(opt_run, tmp_path / "run")
    data = write_tokens(tmp_path / "tokens", [400], vocab_size=100)
    args = ["opt", "--data", str(data), "--tokenizer", str(tiny_tokenizer_dir), "--out", str(run)]
    args += ["--resume", "auto", "--size", "tiny", "--global-batch-size", "8", "--seq-len", "16"]
    line = _one_error_line(CliRunner().invoke(main, [*args, "--workers", "0", "--vocab-size", vocab]))
    assert str(run / "checkpoints" / "step-00000002") in line and "does not fit this run" in line
    assert not (run / "metrics.jsonl").exists()


# ---- a foreign pickle: refused, never run, without advice to load it unsafely ----------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_foreign_pickle_is_refused_without_weights_only_advice(opt_run, tmp_path):
    run = _copy_run(opt_run, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    trainer_pt = run / "checkpoints" / "step-00000002" / "trainer.pt"
    torch.save({"step": 2, "kind": _Payload(marker)}, trainer_pt)
    with pytest.raises(CheckpointError, match=re.escape(str(trainer_pt))):
        load(trainer_pt)
    line = _one_error_line(CliRunner().invoke(main, ["export", str(run), str(tmp_path / "hf")]))
    assert str(trainer_pt) in line and "weights_only" not in line
    assert not marker.exists() and not (tmp_path / "hf").exists()


# ---- a killed export leaves a .partial folder; the next export to that place removes it ---------
KILLED_EXPORT = """
import os, signal, sys
from babylm.train import export
def killed(model, kind, tmp, *args):
    (tmp / "config.json").write_text("{}")  # half-written
    os.kill(os.getpid(), signal.SIGKILL)
export._write_folder = killed
export.export_checkpoint(sys.argv[1], sys.argv[2])
"""


def test_the_next_export_removes_a_killed_exports_partial_folder(opt_run, tmp_path):
    out = tmp_path / "hf"
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(opt_run), str(out)], timeout=300)
    assert killed.returncode == -9
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(left) == 1 and not out.exists()
    live = tmp_path / ".hf.1.live.partial"  # pid 1 is alive: an export still running is left alone
    live.mkdir()
    result = CliRunner().invoke(main, ["export", str(opt_run), str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == [live.name]


# ---- full and read-only disks: one line naming the path ------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_naming_the_output(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 3.0 / s, "lr": 1e-3}) + "\n" for s in (1, 2))
    )
    png = tmp_path / "loss.png"
    png.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    line = _one_error_line(CliRunner().invoke(main, ["plot", str(run), "--out", str(png)]))
    assert str(png) in line and "no space left" in line


def test_a_read_only_out_is_one_line_naming_it(tmp_path, tiny_tokenizer_dir, monkeypatch):
    data = write_tokens(tmp_path / "tokens", [400], vocab_size=100)
    out = tmp_path / "ro" / "run"
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):  # the file system of tmp_path/ro is mounted read-only
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    args = ["opt", "--data", str(data), "--tokenizer", str(tiny_tokenizer_dir), "--out", str(out)]
    line = _one_error_line(CliRunner().invoke(main, [*args, "--size", "tiny", "--workers", "0"]))
    assert str(tmp_path / "ro") in line and "read-only" in line


# ---- the real console scripts and torchrun --------------------------------------------------------
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "args",
    [
        [str(BIN / "babylm-train"), "opt", "--lr", "nan"],
        [sys.executable, "-m", "babylm.train", "opt", "--max-steps", "0"],
        [str(BIN / "babylm-train"), "export", "{tmp}/missing-run", "{tmp}/out"],
    ],
)
def test_console_script_misuse_is_one_stderr_line(args, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")


def test_under_torchrun_rank_0_prints_one_line_and_the_ranks_exit_2(tmp_path, tiny_tokenizer_dir):
    data = write_tokens(tmp_path / "small", [3], vocab_size=100)  # fewer chunks than one global batch
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += ["-m", "babylm.train", "opt", "--data", str(data), "--tokenizer", str(tiny_tokenizer_dir)]
    cmd += ["--out", str(tmp_path / "run"), "--size", "tiny", "--global-batch-size", "64", "--workers", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and f"{data}: fewer samples than one global batch" in errors[0], output
    assert result.returncode != 0
    # torchrun's own summary: rank 0 exited with 2 and its reason shows instead of a traceback.
    assert re.search(r"exitcode\s*: 2 ", output), output
    assert "fewer samples than one global batch" in output.split("Root Cause")[-1]
    # No traceback of ours (torchrun prints its own ChildFailedError, from torch's files only).
    frames = re.findall(r'File "([^"]+)"', output)
    assert not [f for f in frames if "site-packages/torch" not in f and "<frozen" not in f], output


class _BrokenShards(torch.utils.data.IterableDataset):
    def __iter__(self):
        from babylm.shards.errors import ShardError

        raise ShardError("http://127.0.0.1:1/shard-000001.tar: HTTP 403 Forbidden")


def test_an_error_from_a_loader_worker_is_its_own_line():
    """DataLoader re-raises a worker's error with the worker's traceback in the message; the
    line keeps the error only."""
    from babylm.shards.errors import ShardError
    from babylm.train.cli import one_line, user_error_types

    with pytest.raises(ShardError) as caught:
        next(iter(torch.utils.data.DataLoader(_BrokenShards(), num_workers=1)))
    assert isinstance(caught.value, user_error_types())
    line = one_line(caught.value)
    assert line.startswith("http://127.0.0.1:1/shard-000001.tar: HTTP 403 Forbidden"), line
    assert "Traceback" not in line and "\n" not in line


def test_a_rank_other_than_0_prints_nothing_and_tells_torchrun(tmp_path, monkeypatch):
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    result = CliRunner().invoke(main, ["opt", "--max-steps", "0"])
    assert result.exit_code == 2 and result.output == ""
    recorded = json.loads(error_file.read_text())["message"]
    assert recorded["message"].startswith("Invalid value for '--max-steps'")
    monkeypatch.setenv("RANK", "0")
    assert _one_error_line(CliRunner().invoke(main, ["opt", "--max-steps", "0"])).startswith("Error: Invalid")
