"""The loader's contract, in-process: ranks are simulated by building the loader with rank=r,
world_size=R, which is the code every torchrun rank runs (see test_loader_ddp for torchrun)."""

from __future__ import annotations

import itertools
import logging
from collections import Counter

import numpy as np
import pytest
import simplejpeg
import torch

import babylm.train.data.collate as data_collate
from babylm.shards.errors import ShardError
from babylm.train.data.loader import CorruptDataError, ShardLoader, build_loader
from babylm.train.data.order import sample_order
from babylm.train.data.spec import LoaderSpec
from tests.train.data.loader_fixtures import key_of, tiny_jpeg, write_image_text, write_tokens

UNEVEN = [37, 5, 61, 1, 20, 9]  # 133 samples
# Three workers on a two-core test machine is the point of some tests, not a mistake.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def image_text(tmp_path_factory):
    return write_image_text(tmp_path_factory.mktemp("it") / "ds", UNEVEN)


@pytest.fixture
def make(tmp_path):
    def make(location, **kw) -> ShardLoader:
        kw.setdefault("image_size", 32)
        kw.setdefault("block_size", 8)
        kw.setdefault("shuffle_buffer", 32)
        return build_loader(location, cache_dir=tmp_path / "cache", **kw)

    return make


def all_keys(sizes) -> set[str]:
    return {key_of(s, i) for s, n in enumerate(sizes) for i in range(n)}


def epoch_keys(loader) -> list[list[str]]:
    return [b.keys for b in loader.batches()]


def ranks_epoch(make, location, world, batch, epoch=0, **kw) -> list[list[list[str]]]:
    out = []
    for r in range(world):
        loader = make(location, batch_size=batch, world_size=world, rank=r, **kw)
        loader.set_epoch(epoch)
        out.append(epoch_keys(loader))
    return out


def test_plan_is_a_permutation_that_depends_on_seed_and_epoch():
    counts = [37, 5, 61]
    a = sample_order(counts, seed=1, epoch=0, block_size=8, shuffle_buffer=16)
    pairs = set(zip(*(x.tolist() for x in a), strict=True))
    assert pairs == {(s, i) for s, n in enumerate(counts) for i in range(n)}
    assert all(np.array_equal(x, y) for x, y in zip(a, sample_order(counts, 1, 0, 8, 16), strict=True))
    assert not np.array_equal(a[1], sample_order(counts, 1, 1, 8, 16)[1])
    assert not np.array_equal(a[1], sample_order(counts, 2, 0, 8, 16)[1])


def test_epoch_covers_every_sample_at_most_once_with_equal_steps_on_uneven_shards(image_text, make):
    per_rank = ranks_epoch(make, image_text, world=3, batch=4, epoch=2)
    steps = 133 // 12
    assert [len(r) for r in per_rank] == [steps] * 3
    assert all(len(b) == 4 for r in per_rank for b in r)
    seen = [k for r in per_rank for b in r for k in b]
    assert len(seen) == len(set(seen)) == steps * 12
    assert set(seen) <= all_keys(UNEVEN)
    loader = make(image_text, batch_size=4, world_size=3, rank=0)
    assert loader.steps_per_epoch == steps and loader.dropped_per_epoch == 133 - steps * 12 == 1
    assert loader.state_dict()["dropped"] == 1


def test_order_does_not_change_with_worker_count(image_text, make):
    by_workers = {w: ranks_epoch(make, image_text, world=2, batch=4, workers=w) for w in (0, 1, 3)}
    assert by_workers[0] == by_workers[1] == by_workers[3]


def test_order_is_reshuffled_each_epoch_and_fixed_by_seed(image_text, make):
    e0 = epoch_keys(make(image_text, batch_size=8, seed=7))
    loader = make(image_text, batch_size=8, seed=7)
    assert epoch_keys(loader) == e0
    assert epoch_keys(loader) != e0  # the second iteration is epoch 1
    assert loader.epoch == 2
    assert epoch_keys(make(image_text, batch_size=8, seed=8)) != e0


def test_global_batch_is_the_same_whatever_the_split_into_ranks(image_text, make):
    one = epoch_keys(make(image_text, batch_size=12))
    three = ranks_epoch(make, image_text, world=3, batch=4)
    assert one == [sum((r[s] for r in three), []) for s in range(len(one))]


def test_exact_resume_gives_the_same_batches(image_text, make):
    full = list(make(image_text, batch_size=4, world_size=2, rank=1, workers=2).batches())
    loader = make(image_text, batch_size=4, world_size=2, rank=1, workers=2)
    first = list(itertools.islice(loader.batches(), 5))
    state = loader.state_dict()
    assert (state["epoch"], state["step"], state["consumed"]) == (0, 5, 40)
    resumed = make(image_text, batch_size=4, world_size=2, rank=1, workers=2)
    resumed.load_state_dict(state)
    rest = list(resumed.batches())
    assert len(first) + len(rest) == len(full)
    for got, want in zip(first + rest, full, strict=True):
        assert got.keys == want.keys
        assert torch.equal(got.inputs["pixel_values"], want.inputs["pixel_values"])
    fresh = make(image_text, batch_size=4, world_size=2, rank=1)
    fresh.set_epoch(1)
    assert resumed.state_dict()["epoch"] == 1 and epoch_keys(resumed) == epoch_keys(fresh)


def test_resume_does_not_decode_skipped_samples(image_text, make, monkeypatch):
    calls = []
    real = data_collate.decode_image_into
    monkeypatch.setattr(
        data_collate, "decode_image_into", lambda data, out: calls.append(1) or real(data, out)
    )
    loader = make(image_text, batch_size=4)
    state = loader.state_dict()
    state.update(step=30, consumed=120)
    loader.load_state_dict(state)
    assert len(epoch_keys(loader)) == 3 and len(calls) == 12


def test_elastic_resume_two_ranks_to_one_and_back(image_text, make):
    kw2 = dict(batch_size=4, world_size=2, workers=2)
    kw1 = dict(batch_size=8, world_size=1, workers=3)
    reference = epoch_keys(make(image_text, **kw1))  # 16 steps of global batch 8
    seen: list[str] = []
    # 5 steps on (2 ranks, 2 workers)
    loaders = [make(image_text, rank=r, **kw2) for r in range(2)]
    its = [x.batches() for x in loaders]
    for _ in range(5):
        seen += [k for it in its for k in next(it).keys]
    state = loaders[0].state_dict()
    # 6 more on (1 rank, 3 workers)
    one = make(image_text, **kw1)
    one.load_state_dict(state)
    it = one.batches()
    middle = [next(it).keys for _ in range(6)]
    assert middle == reference[5:11]
    seen += [k for b in middle for k in b]
    # back to (2 ranks, 2 workers) for the rest of the epoch
    state = one.state_dict()
    back = [make(image_text, rank=r, **kw2) for r in range(2)]
    for x in back:
        x.load_state_dict(state)
    rests = [epoch_keys(x) for x in back]
    assert len(rests[0]) == len(rests[1]) == 16 - 11
    seen += [k for s in range(5) for r in rests for k in r[s]]
    assert seen == [k for b in reference for k in b]  # exactly the epoch, none repeated or lost
    # from the next epoch on, the order a fresh (2 ranks) run would have had
    fresh = ranks_epoch(make, image_text, world=2, batch=4, epoch=1)
    assert [epoch_keys(x) for x in back] == fresh


def test_resume_with_a_different_global_batch_still_covers_the_epoch_once(image_text, make):
    loader = make(image_text, batch_size=8)
    it = loader.batches()
    seen = [k for _ in range(7) for k in next(it).keys]
    state = loader.state_dict()
    per_rank = []
    for r in range(2):
        x = make(image_text, batch_size=3, world_size=2, rank=r)
        x.load_state_dict(state)
        assert x.steps_per_epoch == 7 + (133 - 56) // 6
        per_rank.append(epoch_keys(x))
    seen += [k for s in range(len(per_rank[0])) for r in per_rank for k in r[s]]
    assert len(seen) == len(set(seen)) == 56 + 12 * 6


def test_state_from_other_data_or_seed_is_refused(image_text, make, tmp_path):
    state = make(image_text, batch_size=4, seed=1).state_dict()
    with pytest.raises(ValueError, match="seed"):
        make(image_text, batch_size=4, seed=2).load_state_dict(state)
    other = write_image_text(tmp_path / "other", [10, 10])
    with pytest.raises(ValueError, match="fingerprint"):
        make(other, batch_size=4, seed=1).load_state_dict(state)


def test_corrupt_sample_is_skipped_counted_and_logged(tmp_path, make, caplog):
    data = write_image_text(tmp_path / "bad", [120, 80], corrupt={"s01-00007"})
    with caplog.at_level(logging.WARNING, logger="babylm.train.loader"):
        batches = list(make(data, batch_size=8).batches())
    keys = [k for b in batches for k in b.keys]
    assert "s01-00007" not in keys and len(keys) == 199
    assert sorted(len(b.keys) for b in batches)[0] == 7
    short = next(b for b in batches if len(b.keys) == 7)
    assert short.inputs["pixel_values"].shape == (7, 3, 32, 32)
    assert "shard-000001.tar" in caplog.text and "s01-00007" in caplog.text
    # The count is in the loader state, and a resume carries it on.
    loader = make(data, batch_size=8)
    it = loader.batches()
    while loader.corrupt["total_skipped"] == 0:
        next(it)
    state = loader.state_dict()
    assert state["corrupt"]["total_skipped"] == 1 and state["corrupt"]["epoch_skipped"] == 1
    assert state["corrupt"]["by_shard"] == {str(data / "shard-000001.tar"): 1}
    resumed = make(data, batch_size=8)
    resumed.load_state_dict(state)
    list(resumed.batches())
    assert resumed.corrupt["total_skipped"] == 1 and resumed.epoch == 1


def test_too_many_corrupt_samples_fail_loudly_naming_the_shard(tmp_path, make):
    bad = {key_of(1, i) for i in range(0, 40, 4)}  # 10 of 200: 5%
    data = write_image_text(tmp_path / "bad", [100, 100], corrupt=bad)
    with pytest.raises(CorruptDataError, match="shard-000001.tar"):
        list(make(data, batch_size=8))
    assert (
        len([k for b in make(data, batch_size=8, max_corrupt_fraction=0.1).batches() for k in b.keys]) == 190
    )


def test_shard_size_differing_from_manifest_fails_at_open(tmp_path, make):
    data = write_image_text(tmp_path / "trunc", [10, 10])
    with open(data / "shard-000001.tar", "ab") as f:
        f.write(b"\0" * 512)
    with pytest.raises(ShardError, match=r"shard-000001.tar: shard is \d+ bytes but the manifest says"):
        list(make(data, batch_size=4))
    tokens = write_tokens(tmp_path / "tok", [50])
    path = tokens / "tokens-000000.arrow"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ShardError, match="tokens-000000.arrow"):
        list(make(tokens, batch_size=2, seq_len=8))


def test_caption_collate_tokenizes_pads_truncates_and_masks(tmp_path, make, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    data = write_image_text(tmp_path / "it", [6])
    batch = next(make(data, batch_size=6, tokenizer=tiny_tokenizer_dir).batches())
    ids, mask, labels = batch.inputs["input_ids"], batch.inputs["attention_mask"], batch.inputs["labels"]
    image_id = tok.convert_tokens_to_ids("<image>")
    assert ids.dtype == torch.long and ids.shape == mask.shape == labels.shape
    assert (ids[:, 0] == image_id).all()
    assert torch.equal(labels[mask == 1], ids[mask == 1]) and (labels[mask == 0] == -100).all()
    assert (ids[mask == 0] == tok.pad_token_id).all()
    want = tok([f"<image> {c}" for c in batch.captions], padding="longest", return_tensors="pt")
    assert torch.equal(ids, want["input_ids"])
    short = next(make(data, batch_size=6, tokenizer=tok, max_caption_tokens=5, image_prefix=None).batches())
    assert short.inputs["input_ids"].shape[1] == 5 and (short.inputs["input_ids"][:, 0] != image_id).all()


def test_original_caption_loss_keeps_padding_in_the_labels_and_passes_no_mask(
    tmp_path, make, tiny_tokenizer_dir
):
    """--caption-loss original: labels = input_ids with the padding in, no attention_mask (the
    original's tk_pad_collate_fn), so the loss averages over pad positions too."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    captions = ["a red square", "the quick brown fox jumps over the lazy dog near the river bank"]
    spec = LoaderSpec()
    masked = data_collate.tokenize_captions(
        tok, captions, spec.image_prefix, spec.max_caption_tokens, score_padding=False
    )
    original = data_collate.tokenize_captions(
        tok, captions, spec.image_prefix, spec.max_caption_tokens, score_padding=True
    )
    assert "attention_mask" not in original
    assert torch.equal(original["input_ids"], masked["input_ids"])
    assert torch.equal(original["labels"], original["input_ids"])
    padded = masked["attention_mask"] == 0
    assert padded.any()
    assert (original["labels"][padded] == tok.pad_token_id).all() and (masked["labels"][padded] == -100).all()
    # The loader passes the setting through to the workers' collate.
    data = write_image_text(tmp_path / "it", [6])
    batch = next(make(data, batch_size=6, tokenizer=tiny_tokenizer_dir, caption_loss="original").batches())
    assert "attention_mask" not in batch.inputs and torch.equal(
        batch.inputs["labels"], batch.inputs["input_ids"]
    )


def test_text_only_captions_skip_image_decoding(tmp_path, make, monkeypatch):
    monkeypatch.setattr(data_collate, "decode_image_into", lambda *a: pytest.fail("decoded an image"))
    data = write_image_text(tmp_path / "it", [10, 6], corrupt={"s00-00001"})
    batches = list(make(data, batch_size=4, images=False).batches())
    assert all("pixel_values" not in b.inputs for b in batches) and len(batches) == 4
    assert sum(len(b.captions) for b in batches) == 16  # nothing to decode, nothing corrupt


def reference_pixels(key: str, size: int) -> np.ndarray:
    shard, i = int(key[1:3]), int(key[4:])
    return simplejpeg.decode_jpeg(tiny_jpeg(shard * 1000 + i, size), colorspace="RGB").transpose(2, 0, 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_pixels_are_the_decoded_jpeg_in_uint8_nchw(tmp_path, make, workers):
    data = write_image_text(tmp_path / "it", [9, 7])
    for batch in make(data, batch_size=4, workers=workers).batches():
        pix = batch.inputs["pixel_values"]
        assert pix.shape == (4, 3, 32, 32) and pix.dtype == torch.uint8
        for key, img in zip(batch.keys, pix.contiguous(), strict=True):
            assert np.array_equal(img.numpy(), reference_pixels(key, 32))


def test_images_of_other_sizes_are_center_cropped(tmp_path, make):
    data = write_image_text(tmp_path / "big", [5], image_size=48)
    batch = next(make(data, batch_size=5, image_size=32).batches())
    assert (
        batch.inputs["pixel_values"].shape == (5, 3, 32, 32)
        and batch.inputs["pixel_values"].dtype == torch.uint8
    )
    for key, img in zip(batch.keys, batch.inputs["pixel_values"], strict=True):
        assert np.array_equal(img.numpy(), reference_pixels(key, 48)[:, 8:40, 8:40])
    small = next(make(data, batch_size=5, image_size=64).batches())
    assert small.inputs["pixel_values"].shape == (5, 3, 64, 64)


def test_features_batches(tmp_path, make):
    data = write_image_text(tmp_path / "feat", [7, 9], features=True, corrupt={"s01-00004"})
    batches = list(make(data, batch_size=4, max_corrupt_fraction=0.2).batches())
    assert len(batches) == 4 and sorted(len(b.keys) for b in batches) == [3, 4, 4, 4]
    for b in batches:
        emb = b.inputs["image_embeds"]
        assert emb.shape == (len(b.keys), 768) and emb.dtype == torch.float32
        want = [int(k[1:3]) * 1000 + int(k[4:]) for k in b.keys]
        assert emb[:, 0].tolist() == want
    assert "s01-00004" not in [k for b in batches for k in b.keys]


def test_long_keys_with_pax_headers_are_read(tmp_path, make):
    from babylm.shards import Manifest, TarShardWriter, write_manifest

    folder = tmp_path / "pax"
    with TarShardWriter(folder, "shard-000000.tar") as w:
        for i in range(6):
            w.write({"__key__": f"{'k' * 120}{i}", "txt": f"c{i}", "jpg": b"x"})
    write_manifest(folder, Manifest(kind="image_text", shards=[w.entry]))
    keys = sorted(k for b in make(folder, batch_size=3, images=False).batches() for k in b.keys)
    assert keys == [f"{'k' * 120}{i}" for i in range(6)]


def test_several_locations_are_one_stream(tmp_path, make):
    a = write_image_text(tmp_path / "a", [10])
    b = write_image_text(tmp_path / "b", [7, 5])
    keys = [k for batch in make([a, b], batch_size=2, images=False).batches() for k in batch.keys]
    # Both datasets have keys s00-00000..; each sample of each dataset comes once.
    assert Counter(keys) == Counter([key_of(0, i) for i in range(10)] + list(all_keys([7, 5])))


def test_tokens_chunks_cover_the_stream_once(tmp_path, make):
    data = write_tokens(tmp_path / "tok", [200, 3, 150])
    probe = make(data, batch_size=3, world_size=2, seq_len=16)
    total_chunks = probe.num_samples
    chunks, steps = [], []
    for r in range(2):
        loader = make(data, batch_size=3, world_size=2, rank=r, seq_len=16, workers=r)
        batches = list(loader.batches())
        steps.append(len(batches))
        for b in batches:
            assert (
                torch.equal(b.inputs["labels"], b.inputs["input_ids"])
                and b.inputs["input_ids"].dtype == torch.long
            )
            for c, row in zip(b.keys, b.inputs["input_ids"], strict=True):
                assert row.tolist() == [(c * 16 + j) % 65536 for j in range(16)]
            chunks += b.keys
    assert steps == [total_chunks // 6] * 2
    assert len(chunks) == len(set(chunks)) == steps[0] * 6
    assert probe.dropped_per_epoch == total_chunks % 6


def test_paired_epoch_is_the_longer_stream_and_the_shorter_continues(tmp_path, make):
    it = write_image_text(tmp_path / "it", [13, 11])  # 24 samples: 3 steps of 8
    tok = write_tokens(tmp_path / "tok", [300])
    kw = dict(batch_size=8, text_location=tok, text_batch_size=2, seq_len=16, images=False)
    paired = make(it, **kw)
    text_steps = paired.text.steps_per_epoch
    assert paired.steps_per_epoch == text_steps > 3 * 3
    batches = list(paired)
    assert len(batches) == text_steps and paired.epoch == 1
    caption_keys = [b["caption"].keys for b in batches]
    solo = make(it, batch_size=8, images=False)
    passes = [epoch_keys(solo) for _ in range(text_steps // 3 + 1)]
    assert caption_keys == [k for p in passes for k in p][:text_steps]
    assert passes[0] != passes[1]  # each pass is reshuffled
    # exact resume of the pair, mid-epoch and mid-pass
    again = make(it, **kw)
    head = list(itertools.islice(iter(again), 4))
    resumed = make(it, **kw)
    resumed.load_state_dict(again.state_dict())
    rest = list(resumed)
    assert [b["caption"].keys for b in head + rest] == caption_keys
    assert [b["text"].keys for b in head + rest] == [b["text"].keys for b in batches]
    # set_epoch places the shorter stream where an uninterrupted run has it
    second = list(paired)
    jumped = make(it, **kw)
    jumped.set_epoch(1)
    assert [b["caption"].keys for b in jumped] == [b["caption"].keys for b in second]


def test_member_key_rule_is_webdatasets():
    from webdataset.tariterators import base_plus_ext

    from babylm.shards.tar_samples import split_member_name

    names = [
        "a.jpg",
        "000123.txt",
        "dir/x.seg.png",
        "d.1/k.json",
        "noext",
        ".hidden",
        "a/.b",
        "x.",
        "k.tar.gz",
    ]
    for name in names:
        assert split_member_name(name) == base_plus_ext(name), name
