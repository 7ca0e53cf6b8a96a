"""GIT: image tokens before text, loss on text only, frozen ViT, tied output, generation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from babylm.train.models import normalize_images, token_loss_sum
from tests.train.models.helpers import IMAGE_TOKENS, TINY_VOCAB, tiny_model, uint8_images


@pytest.fixture
def git(tiny_vit_dir, image_id):
    return tiny_model("git", tiny_vit_dir, image_id)


def _pixels(model, n: int, seed: int) -> torch.Tensor:
    return normalize_images(uint8_images(n, seed), model)


def test_structure_follows_the_baseline(git, tiny_vit_dir):
    assert len(git.git.encoder.layer) == 2  # tiny; the base size has 12 (test_text_models)
    assert git.output.weight is git.git.embeddings.word_embeddings.weight  # tied ...
    assert git.output.bias is None  # ... without bias
    proj = git.git.visual_projection.visual_projection[0]
    assert proj.in_features == git.vision_encoder.config.hidden_size == 64  # sized for the swapped ViT
    assert type(git.git.image_encoder).__name__ == "ViTModel"
    assert git.babylm_build_args["vision_encoder"] == tiny_vit_dir


def test_image_positions_come_before_the_text(git):
    ids = torch.tensor([[10, 11, 12, 13]])
    changed = torch.tensor([[10, 11, 12, 40]])
    pixels = _pixels(git, 1, seed=1)
    with torch.no_grad():
        text_only = git(ids).logits
        a = git(ids, pixel_values=pixels).logits
        b = git(changed, pixel_values=pixels).logits
        other = git(ids, pixel_values=_pixels(git, 1, seed=2)).logits
    assert text_only.shape == (1, 4, TINY_VOCAB)
    assert a.shape == (1, IMAGE_TOKENS + 4, TINY_VOCAB)  # 197 image tokens + 4 text tokens
    # Changing the last text token moves only the last position: everything before it, the image
    # tokens included, cannot see it, so the image tokens are not after the text.
    torch.testing.assert_close(a[:, :-1], b[:, :-1], rtol=0, atol=0)
    assert float((a[:, -1] - b[:, -1]).abs().max()) > 1e-4
    # And the text does see the image.
    assert float((a[:, -4:] - other[:, -4:]).abs().max()) > 1e-4


def test_loss_ignores_image_positions_and_padding(git):
    ids = torch.tensor([[10, 11, 12, 13, 1], [14, 15, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    labels = ids.masked_fill(mask == 0, -100)
    pixels = _pixels(git, 2, seed=3)
    with torch.no_grad():
        out = git(ids, attention_mask=mask, labels=labels, pixel_values=pixels)
        text_logits = out.logits[:, IMAGE_TOKENS:]
        manual = F.cross_entropy(
            text_logits[:, :-1].reshape(-1, TINY_VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        # More padding changes nothing: padded positions neither count nor are attended.
        wider = git(
            F.pad(ids, (0, 3)),
            attention_mask=F.pad(mask, (0, 3)),
            labels=F.pad(labels, (0, 3), value=-100),
            pixel_values=pixels,
        )
        loss_sum, n = token_loss_sum(
            git, {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixels}
        )
    torch.testing.assert_close(out.loss, manual)
    torch.testing.assert_close(wider.loss, out.loss)
    assert int(n) == 4 + 2  # shifted text targets only; no image position is a target
    torch.testing.assert_close(loss_sum / n, out.loss)


def test_text_only_and_precomputed_features(git):
    ids = torch.tensor([[10, 11, 12], [13, 14, 15]])
    pixels = _pixels(git, 2, seed=4)
    with torch.no_grad():
        text_only = git(ids, labels=ids)
        ref = git(ids, pixel_values=pixels).logits
        feats = git.vision_encoder(pixel_values=pixels).last_hidden_state  # (B, 197, D) shard features
        from_feats = git(ids, image_embeds=feats).logits
        pooled = git(ids, image_embeds=feats[:, 0]).logits  # (B, D): one token per image
    assert text_only.logits.shape == (2, 3, TINY_VOCAB) and torch.isfinite(text_only.loss)
    torch.testing.assert_close(from_feats, ref)
    assert pooled.shape == (2, 1 + 3, TINY_VOCAB)


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(git):
    git.train()
    assert git.training and git.git.encoder.layer[0].training
    assert not any(m.training for m in git.vision_encoder.modules())
    ids = torch.tensor([[10, 11, 12]])
    git(ids, labels=ids, pixel_values=_pixels(git, 1, seed=5)).loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in git.vision_encoder.parameters())
    assert git.git.visual_projection.visual_projection[0].weight.grad is not None
    assert git.git.embeddings.word_embeddings.weight.grad is not None


@pytest.mark.parametrize("with_prompt", [True, False])
def test_cached_generation_matches_a_full_forward(git, with_prompt):
    pixels = _pixels(git, 1, seed=6)
    prompt = torch.tensor([[10, 11]]) if with_prompt else None  # without: starts from bos
    with torch.no_grad():
        gen = git.generate(
            prompt,
            pixel_values=pixels,
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        full = git(gen.sequences, pixel_values=pixels).logits
    n_prompt = gen.sequences.shape[1] - 4
    step_logits = torch.stack(gen.logits, dim=1)
    torch.testing.assert_close(step_logits, full[:, -5:-1], rtol=1e-4, atol=1e-4)
    assert n_prompt == (2 if with_prompt else 1)
