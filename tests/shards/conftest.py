"""Fixtures the shard tests share: small datasets written by `sample_fixtures`."""

import pytest

from tests.shards.sample_fixtures import write_image_dataset, write_token_dataset


@pytest.fixture
def image_dataset(tmp_path):
    return write_image_dataset(tmp_path / "images")


@pytest.fixture
def token_dataset(tmp_path):
    return write_token_dataset(tmp_path / "tokens")
