"""The `slurm` marker: tests that submit jobs to the throw-away cluster `make test-slurm` starts
(tests/slurm/cluster.sh); skipped anywhere else, so they never submit to a real cluster."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.slurm.helpers import build_demo_shards


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: needs the test cluster of `make test-slurm`")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("BABYLM_TEST_SLURM") and shutil.which("sbatch"):
        return
    skip = pytest.mark.skip(reason="no test Slurm cluster up (make test-slurm starts one)")
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    """Demo shards for the tiny Flamingo, built once per session (~15 s)."""
    return build_demo_shards(tmp_path_factory.mktemp("demo"))
