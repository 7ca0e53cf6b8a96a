"""`babylm-prep --version`."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from babylm.prep.cli import main


def test_version_option():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"babylm-prep {version('babylm-pipeline')}\n"
