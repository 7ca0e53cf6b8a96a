"""Every loader keeps the trainer-loader contract (`contract.py`): `{stream: LoaderBatch}` per step
for one stream too, the model inputs apart from the keys, words and the worker's bookkeeping."""

from __future__ import annotations

import pytest

from babylm.train.data.contract import LoaderBatch, TrainLoader
from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import write_image_text, write_tokens

MODEL_INPUTS = {"input_ids", "attention_mask", "labels", "pixel_values", "image_embeds"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    return {
        "images": write_image_text(root / "it", [13, 11], corrupt={"s00-00004"}),
        "tokens": write_tokens(root / "tok", [300]),
    }


def loaders(data, tokenizer, cache):
    kw = dict(batch_size=4, image_size=32, seq_len=16, cache_dir=cache, max_corrupt_fraction=0.5)
    yield build_loader(data["tokens"], **kw), ("text",)
    yield build_loader(data["images"], tokenizer=tokenizer, workers=1, **kw), ("caption",)
    yield (
        build_loader(data["images"], text_location=data["tokens"], tokenizer=tokenizer, **kw),
        ("caption", "text"),
    )


def test_every_loader_yields_one_loader_batch_per_stream(data, tiny_tokenizer_dir, tmp_path):
    for loader, streams in loaders(data, tiny_tokenizer_dir, tmp_path / "cache"):
        assert isinstance(loader, TrainLoader) and loader.streams == streams
        assert set(loader.samples_per_epoch) == set(streams)
        expected = loader.steps_per_epoch
        steps = list(loader)
        assert len(steps) == expected > 0
        for step in steps:
            assert tuple(step) == streams
            for name, batch in step.items():
                assert isinstance(batch, LoaderBatch)
                # The model gets model inputs only: keys, captions and words travel beside them.
                assert set(batch.inputs) <= MODEL_INPUTS and {"input_ids", "labels"} <= set(batch.inputs)
                assert len(batch.keys) == len(batch.inputs["input_ids"])
                assert (batch.captions is None) == (name == "text")
                assert batch.words is not None and loader.has_words
        # The caption stream leaves an undecodable sample out (once per pass), counted as skipped.
        assert (loader.skipped > 0) == ("caption" in streams)


def test_worker_bookkeeping_is_taken_off_in_order(data, tmp_path):
    loader = build_loader(data["images"], batch_size=4, image_size=32, workers=2, cache_dir=tmp_path / "c",
                          max_corrupt_fraction=0.5)  # fmt: skip
    batches = list(loader.batches())
    assert [b.step for b in batches] == list(range(len(batches)))
    assert [len(b.corrupt) for b in batches].count(1) == 1 and loader.skipped == 1
