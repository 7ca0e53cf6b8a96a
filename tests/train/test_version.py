"""`babylm-train --version`, and the release recorded in run.json."""

from __future__ import annotations

import json
from importlib.metadata import version

from click.testing import CliRunner

from babylm.train.cli import main
from tests.train.trainer_fixtures import run, train_args, write_trainer_data


def test_version_option():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"babylm-train {version('babylm-pipeline')}\n"


def test_run_json_records_the_version(tmp_path, tiny_tokenizer_dir):
    data = write_trainer_data(tmp_path / "data", tiny_tokenizer_dir, images=16, lines=80)
    run(train_args("opt", data, tmp_path / "run", "--max-steps", "1", "--save-every", "0"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["babylm_pipeline"] == version("babylm-pipeline")
