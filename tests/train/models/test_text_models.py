"""OPT and RoBERTa, full-size parameter counts of all four baselines, and RoBERTa's masking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import OPTForCausalLM, RobertaForMaskedLM, RobertaModel, ViTConfig

from babylm.train.models import (
    build_model,
    count_parameters,
    make_config,
    mask_tokens,
    model_class,
    token_loss_sum,
)
from tests.train.models.helpers import TINY_VOCAB, tiny_model

VIT_B16_NO_POOLER = 85_798_656  # facebook/dino-vitb16's ViTModel without the unused pooler


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, expected",
    [
        # OPT-125M is 125,239,296 with its 50,272-token vocabulary (checked below); our 32,778
        # tokens remove (50272 - 32778) * 768 = 13,435,392 embedding weights.
        ("opt", 111_803_904),
        # RobertaForMaskedLM at roberta-base's shape: 124,697,433 with 50,265 tokens (below);
        # ours removes 17,487 * 768 embedding weights and 17,487 output biases.
        ("roberta", 111_249_930),
    ],
)
def test_full_size_text_models_have_the_original_parameter_counts(kind, expected):
    model = build_model(kind)  # size="base", vocab 32778, on CPU
    assert count_parameters(model) == {"trainable": expected, "frozen": 0}
    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 768


def test_published_vocabularies_give_the_published_counts():
    with torch.device("meta"):  # shapes only: no memory, no init time
        opt = OPTForCausalLM(
            make_config("opt", vocab_size=50272, pad_token_id=1, bos_token_id=2, eos_token_id=2)
        )
        roberta_cfg = make_config("roberta", vocab_size=50265, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        mlm = RobertaForMaskedLM(roberta_cfg)
        base = RobertaModel(roberta_cfg)  # the encoder with its pooler, as roberta-base is published
    assert count_parameters(opt)["trainable"] == 125_239_296  # facebook/opt-125m
    assert count_parameters(base)["trainable"] == 124_645_632  # roberta-base
    assert count_parameters(mlm)["trainable"] == 124_697_433


def test_full_size_multimodal_parameter_counts():
    with torch.device("meta"):
        vit = ViTConfig().to_dict()  # ViT-B/16 at 224 px: the shape of facebook/dino-vitb16
        flamingo = model_class("flamingo")(make_config("flamingo", vision_config=vit))
        git = model_class("git")(make_config("git", vision_config=vit))
    # The original's count (aaronmueller/babylm_multimodal_training at vocabulary 32,778): OPT-125M
    # decoder 111,803,904 + 6 gated cross-attention blocks of 7,080,962 + the perceiver resampler
    # 14,808,576 (its 768x768 bias-free inp_linear included); the ViT is frozen.
    assert count_parameters(flamingo) == {"trainable": 169_098_252, "frozen": VIT_B16_NO_POOLER}
    # GIT: embeddings 25,961,472 + 12 layers of 7,087,872 + projection 592,128 (output tied).
    assert count_parameters(git) == {"trainable": 111_608_064, "frozen": VIT_B16_NO_POOLER}


def test_opt_loss_is_shifted_once():
    model = tiny_model("opt", None, image_token_id=89)
    ids = torch.tensor([[5, 6, 7, 8, 1, 0], [9, 10, 11, 12, 13, 1]])
    labels = ids.masked_fill(ids == 0, -100)
    with torch.no_grad():
        out = model(ids, labels=labels)
        manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, TINY_VOCAB), labels[:, 1:].reshape(-1))
        loss_sum, n = token_loss_sum(model, {"input_ids": ids, "labels": labels})
    torch.testing.assert_close(out.loss, manual)
    assert int(n) == 4 + 5
    torch.testing.assert_close(loss_sum / n, out.loss)
    assert model.config._attn_implementation == "sdpa"


def test_roberta_loss_is_on_masked_positions_unshifted():
    model = tiny_model("roberta", None, image_token_id=89)
    ids = torch.tensor([[5, 6, 7, 8, 1], [9, 10, 11, 12, 1]])
    gen = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(
        ids, mask_token_id=3, vocab_size=TINY_VOCAB, special_ids=[0, 1, 2, 3], prob=0.5, generator=gen
    )
    assert (labels != -100).any()
    with torch.no_grad():
        out = model(masked, labels=labels)
        manual = F.cross_entropy(out.logits.reshape(-1, TINY_VOCAB), labels.reshape(-1))
        loss_sum, n = token_loss_sum(model, {"input_ids": masked, "labels": labels})
    torch.testing.assert_close(out.loss, manual)
    assert int(n) == int((labels != -100).sum())
    torch.testing.assert_close(loss_sum / n, out.loss)


def test_mask_tokens_follows_the_80_10_10_rule():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 1000, (200, 500), generator=gen)
    ids[:, -1] = 1  # </s>
    ids[:5, -20:] = 0  # padding
    before = ids.clone()
    masked, labels = mask_tokens(
        ids, mask_token_id=3, vocab_size=1000, special_ids=[0, 1, 2, 3], generator=gen
    )
    assert torch.equal(ids, before)  # input untouched
    targets = labels != -100
    assert not targets[:, -1].any() and not targets[:5, -20:].any()  # specials never chosen
    assert torch.equal(labels[targets], before[targets])
    assert torch.equal(masked[~targets], before[~targets])
    share = targets.float().mean().item()
    assert 0.14 < share < 0.16
    n = targets.sum().item()
    as_mask = (masked[targets] == 3).sum().item() / n
    kept = (masked[targets] == before[targets]).sum().item() / n
    assert 0.78 < as_mask < 0.82 and 0.08 < kept < 0.12  # and ~10% random (the rest)
    again = mask_tokens(before, 3, 1000, [0, 1, 2, 3], generator=torch.Generator().manual_seed(7))
    assert torch.equal(
        again[0], mask_tokens(before, 3, 1000, [0, 1, 2, 3], generator=torch.Generator().manual_seed(7))[0]
    )


@pytest.mark.parametrize("kind", ["opt", "roberta"])
def test_text_models_take_the_common_signature_and_refuse_images(kind):
    model = tiny_model(kind, None, image_token_id=89)
    ids = torch.tensor([[5, 6, 7, 1]])
    out = model(ids, None, ids, pixel_values=None, image_embeds=None)  # (input_ids, attention_mask, labels)
    assert out.logits.shape == (1, 4, TINY_VOCAB) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="text-only"):
        model(ids, pixel_values=torch.zeros(1, 3, 8, 8))
