import json
import random

import numpy as np
import pytest
import torch

from babylm.train import checkpoint as ckpt


def _writer(run_dir, keep=2):
    return ckpt.CheckpointWriter(run_dir, rank=0, world_size=1, keep=keep, barrier=lambda: None)


def _save(writer, step, tags):
    trainer_state = {
        "step": step,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99)}]},
    }
    model_state = {"w": torch.full((2,), float(step))}
    return writer.save(
        step, 0, tags, trainer_state, model_state, {"rng": ckpt.rng_state(), "loader": {"step": step}}
    )


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = ckpt.rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.set_rng_state(ckpt.load(tmp_path / "rng.pt"))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_save_is_atomic_and_loads_with_weights_only(tmp_path):
    writer = _writer(tmp_path)
    path = _save(writer, 5, ["periodic"])
    assert path.name == "step-00000005"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.pt", "rank-00000.pt", "trainer.pt"]
    assert not list((tmp_path / ckpt.CKPT_DIR).glob(".tmp-*"))
    assert ckpt.load(path / "trainer.pt")["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert ckpt.load_rank_state(path, 0)["loader"] == {"step": 5}
    assert ckpt.load_rank_state(path, 1) is None


def test_half_written_checkpoints_are_ignored_and_cleaned(tmp_path):
    writer = _writer(tmp_path)
    _save(writer, 3, ["periodic"])
    partial = tmp_path / ckpt.CKPT_DIR / ".tmp-step-00000009"
    partial.mkdir()
    (partial / "model.pt").write_bytes(b"half")
    no_meta = tmp_path / ckpt.CKPT_DIR / "step-00000007"  # killed before meta.json: not complete
    no_meta.mkdir()
    assert ckpt.resolve_checkpoint("auto", tmp_path).name == "step-00000003"
    _writer(tmp_path)  # a restart removes the temporary folder
    assert not partial.exists()


def test_keep_rotates_periodic_checkpoints_only(tmp_path):
    writer = _writer(tmp_path, keep=2)
    for step, tags in [
        (1, ["periodic"]),
        (2, ["epoch-1"]),
        (3, ["periodic"]),
        (4, ["preempt"]),
        (5, ["periodic"]),
    ]:
        _save(writer, step, tags)
    names = [p.name for p, _ in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step-00000002", "step-00000004", "step-00000005"]


def test_second_save_at_the_same_step_adds_tags(tmp_path):
    writer = _writer(tmp_path)
    path = _save(writer, 4, ["periodic"])
    mtime = (path / "model.pt").stat().st_mtime_ns
    _save(writer, 4, ["final"])
    assert json.loads((path / "meta.json").read_text())["tags"] == ["final", "periodic"]
    assert (path / "model.pt").stat().st_mtime_ns == mtime


def test_resolve_checkpoint_forms(tmp_path):
    assert ckpt.resolve_checkpoint("auto", tmp_path) is None
    writer = _writer(tmp_path)
    _save(writer, 1, ["periodic"])
    newest = _save(writer, 2, ["periodic"])
    assert ckpt.resolve_checkpoint(tmp_path) == newest
    assert ckpt.resolve_checkpoint(newest) == newest
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        ckpt.resolve_checkpoint(tmp_path / "nothing")
