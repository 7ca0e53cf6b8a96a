"""Fixtures for the model tests: a tiny random ViT saved to disk (loaded by path, as
facebook/dino-vitb16 would be by name) and the suite's tiny tokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from babylm.train.models import make_tiny_vit
from tests.train.models.helpers import IMAGE_SIZE


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory) -> str:
    return make_tiny_vit(tmp_path_factory.mktemp("tiny_vit"), image_size=IMAGE_SIZE, patch_size=16)


@pytest.fixture(scope="session")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def image_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids("<image>")
