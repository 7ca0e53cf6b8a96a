"""`--wandb`: the metrics records and the config in an offline W&B run, continued on resume."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from babylm.train.cli import main
from tests.train.trainer_fixtures import metrics, run, train_args, write_trainer_data
from tests.train.wandb_records import read_run_file

pytest.importorskip("wandb")


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(tmp_path_factory.mktemp("wandb_data"), tiny_tokenizer_dir, images=16, lines=80)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline, its files in a folder of the test's own."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_PROJECT", "WANDB_NAME", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "wandb_dir").mkdir()
    return tmp_path / "wandb_dir"


def offline_runs(wandb_dir) -> list[dict]:
    return [read_run_file(f) for f in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))]


def test_wandb_logs_every_step_once_across_a_resume(data, tmp_path, offline):
    run_dir = tmp_path / "run"
    common = ["--log-every", "1", "--save-every", "2", "--wandb", "--wandb-project", "tests"]
    run(train_args("opt", data, run_dir, "--max-steps", "4", "--wandb-run-name", "first", *common))
    state = json.loads((run_dir / "wandb.json").read_text())
    assert state["last_step"] == 4
    # Resume from step 2: steps 3 and 4 are recomputed (metrics.jsonl gets them again), but W&B
    # already has them; 5 and 6 are new.
    resume = ["--resume", str(run_dir / "checkpoints/step-00000002"), "--max-steps", "6", *common]
    run(train_args("opt", data, run_dir, *resume))
    first, second = offline_runs(offline)
    assert first["id"] == second["id"] == state["id"] and first["project"] == "tests"
    steps = [row["_step"] for r in (first, second) for row in r["history"]]
    assert steps == [1, 2, 3, 4, 5, 6]
    records = {r["step"]: r for r in metrics(run_dir)}
    assert sorted(records) == steps
    for row in first["history"] + second["history"]:
        rec = records[row["_step"]]
        assert row["loss"] == pytest.approx(rec["loss"], rel=1e-6) and row["lr"] == rec["lr"]
        assert set(rec) - {"step"} <= set(row)
    assert first["config"]["model"] == "opt" and first["config"]["max_steps"] == 4
    assert second["config"]["max_steps"] == 6 and second["config"]["wandb_run_name"] is None


def test_a_fresh_run_starts_a_new_wandb_run(data, tmp_path, offline):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        run(train_args("opt", data, out, "--max-steps", "2", "--save-every", "0", "--wandb"))
    ids = {json.loads((out / "wandb.json").read_text())["id"] for out in (a, b)}
    assert len(ids) == 2 and {r["id"] for r in offline_runs(offline)} == ids
    assert {r["project"] for r in offline_runs(offline)} == {"babylm"}


def test_wandb_missing_is_one_line_and_exit_2(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    result = CliRunner().invoke(
        main, train_args("opt", data, tmp_path / "run", "--max-steps", "1", "--wandb")
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --wandb needs the 'wandb' package"), result.output
    assert not (tmp_path / "run" / "checkpoints").exists()
