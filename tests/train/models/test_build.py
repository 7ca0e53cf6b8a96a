"""build_model: arguments, rebuild from `babylm_build_args`, parameter counting, sizes."""

from __future__ import annotations

import json

import pytest
import torch

from babylm.train.models import (
    MODEL_KINDS,
    build_model,
    count_parameters,
    model_size,
    normalize_images,
)
from tests.train.models.helpers import TINY_VOCAB, tiny_model, uint8_images


def test_kinds_and_errors(tiny_vit_dir):
    assert MODEL_KINDS == ("flamingo", "git", "noimg", "opt", "roberta")
    with pytest.raises(ValueError, match="kind"):
        build_model("gpt2", size="tiny")
    with pytest.raises(ValueError, match="size"):
        build_model("opt", size="huge")
    with pytest.raises(ValueError, match="vision"):
        build_model("git", size="tiny")  # multimodal needs --vision-encoder
    with pytest.raises(ValueError, match="image_token_id"):
        build_model("flamingo", size="tiny", vocab_size=100, vision_encoder=tiny_vit_dir)


def test_base_sizes_are_the_originals():
    assert model_size("flamingo").num_hidden_layers == 12 and model_size("flamingo").hidden_size == 768
    assert model_size("flamingo").cross_attn_every == 2 and model_size("flamingo").perceiver_num_latents == 64
    assert model_size("flamingo").perceiver_depth == 2
    assert model_size("git").num_hidden_layers == 12
    assert model_size("opt").ffn_dim == 3072 and model_size("roberta").max_position_embeddings == 514
    assert all(2 <= model_size(k, "tiny").num_hidden_layers <= 4 for k in MODEL_KINDS)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_build_args_rebuild_the_same_model(kind, tiny_vit_dir, image_id):
    model = (
        tiny_model(kind, tiny_vit_dir, image_id, dropout=0.0)
        if kind == "flamingo"
        else tiny_model(kind, tiny_vit_dir, image_id)
    )
    args = json.loads(json.dumps(model.babylm_build_args))  # JSON-serialisable
    assert args["kind"] == kind and args["size"] == "tiny" and args["vocab_size"] == TINY_VOCAB
    rebuilt = build_model(**args).eval()
    rebuilt.load_state_dict(model.state_dict())
    ids = torch.tensor([[image_id if kind == "flamingo" else 5, 6, 7, 8]])
    extra = {}
    if kind in ("flamingo", "git"):
        extra["pixel_values"] = normalize_images(uint8_images(1, seed=0), model)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(ids, **extra).logits, model(ids, **extra).logits)


def test_vision_weights_are_the_loaded_encoders(tiny_vit_dir, image_id):
    from babylm.train.models import load_vision_encoder

    encoder, _ = load_vision_encoder(tiny_vit_dir)
    for kind in ("flamingo", "git"):
        model = tiny_model(kind, tiny_vit_dir, image_id)
        got = model.vision_encoder.state_dict()
        assert got.keys() == encoder.state_dict().keys()
        assert all(torch.equal(got[k], v) for k, v in encoder.state_dict().items())
        assert (model.image_mean, model.image_std, model.image_size) == (
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.5],
            224,
        )


def test_count_parameters_counts_tied_weights_once(tiny_vit_dir, image_id):
    model = tiny_model("git", tiny_vit_dir, image_id)
    counts = count_parameters(model)
    unique = {id(p): p for p in model.parameters()}
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in unique.values())
    assert counts["frozen"] == sum(p.numel() for p in model.vision_encoder.parameters())
    embed = model.git.embeddings.word_embeddings.weight
    naive = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert naive - embed.numel() == counts["trainable"] + counts["frozen"]  # output shares embed
