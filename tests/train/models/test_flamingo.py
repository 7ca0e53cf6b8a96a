"""Flamingo: gated cross-attention to the latest image, frozen encoder, loss and generation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from babylm.train.models import normalize_images, token_loss_sum
from tests.train.models.helpers import TINY_VOCAB, open_gates, tiny_model, uint8_images


@pytest.fixture
def flamingo(tiny_vit_dir, image_id):
    return tiny_model("flamingo", tiny_vit_dir, image_id)


def _pixels(model, n: int, seed: int) -> torch.Tensor:
    return normalize_images(uint8_images(n, seed), model)


def _ids(image_id: int, rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor([[image_id if t is None else t for t in row] for row in rows])


def test_structure_follows_the_baseline(flamingo, image_id):
    decoder = flamingo.model.decoder
    blocks = [i for i, b in enumerate(decoder.gated_attn_layers) if b is not None]
    assert len(decoder.layers) == 4 and blocks == [0, 2]  # before every 2nd decoder layer
    gates = [
        g.item()
        for i in blocks
        for g in (decoder.gated_attn_layers[i].attn_gate, decoder.gated_attn_layers[i].ff_gate)
    ]
    assert gates == [0.5] * 4  # tiny: the tanh gates start half open (base: closed, below)
    assert len(decoder.perceiver_resampler.layers) == 2  # depth 2
    assert flamingo.config.media_token_id == image_id
    assert flamingo.config._attn_implementation == "sdpa"
    assert flamingo.lm_head.weight is decoder.embed_tokens.weight


def test_closed_gates_make_text_independent_of_the_image(flamingo, image_id):
    open_gates(flamingo, 0.0)  # as a base-size model starts
    ids = _ids(image_id, [[None, 10, 11, 12, 13], [9, 8, None, 7, 6]])
    with torch.no_grad():
        text_only = flamingo(ids).logits
        with_a = flamingo(ids, pixel_values=_pixels(flamingo, 2, seed=1)).logits
        with_b = flamingo(ids, pixel_values=_pixels(flamingo, 2, seed=2)).logits
    assert with_a.shape == text_only.shape == (2, 5, TINY_VOCAB)  # one position per input token
    torch.testing.assert_close(with_a, text_only, rtol=0, atol=0)
    torch.testing.assert_close(with_b, text_only, rtol=0, atol=0)


def test_open_gates_text_after_image_token_sees_it_text_before_does_not(flamingo, image_id):
    open_gates(flamingo)
    ids = _ids(image_id, [[10, 11, None, 12, 13]])
    with torch.no_grad():
        a = flamingo(ids, pixel_values=_pixels(flamingo, 1, seed=1)).logits
        b = flamingo(ids, pixel_values=_pixels(flamingo, 1, seed=2)).logits
    torch.testing.assert_close(a[:, :2], b[:, :2], rtol=0, atol=0)  # before <image>: unchanged
    change = (a[:, 2:] - b[:, 2:]).abs().amax(dim=-1)
    assert bool((change > 1e-4).all()), change  # <image> and after: every position changed


def test_without_image_token_every_position_sees_the_image(flamingo, image_id):
    open_gates(flamingo)
    ids = torch.tensor([[10, 11, 12, 13]])  # evaluation prompts carry no <image>
    with torch.no_grad():
        a = flamingo(ids, pixel_values=_pixels(flamingo, 1, seed=1)).logits
        b = flamingo(ids, pixel_values=_pixels(flamingo, 1, seed=2)).logits
    assert bool(((a - b).abs().amax(dim=-1) > 1e-4).all())


def test_each_position_may_see_only_the_latest_image(flamingo, image_id):
    decoder = flamingo.model.decoder
    ids = _ids(image_id, [[5, None, 6, None, 7], [5, 6, 7, 8, 9]])
    allowed = decoder.media_allowed(ids, length=5, num_media=2)
    expected = torch.tensor(
        [
            [[0, 0], [1, 0], [1, 0], [0, 1], [0, 1]],  # none before the first <image>, then the latest
            [[1, 1], [1, 1], [1, 1], [1, 1], [1, 1]],  # no <image> at all: every image
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
    # During cached generation only the last token comes in; the full ids still place it.
    assert torch.equal(decoder.media_allowed(ids, length=1, num_media=2), expected[:, -1:])


def test_two_images_per_sample_each_reaches_only_the_text_after_it(flamingo, image_id):
    open_gates(flamingo)
    ids = _ids(image_id, [[None, 10, 11, None, 12, 13]])
    first = _pixels(flamingo, 1, seed=1)
    a = torch.stack([first, _pixels(flamingo, 1, seed=2)], dim=1)  # (B, T=2, 3, H, W)
    b = torch.stack([first, _pixels(flamingo, 1, seed=3)], dim=1)  # same first image, other second
    with torch.no_grad():
        la, lb = flamingo(ids, pixel_values=a).logits, flamingo(ids, pixel_values=b).logits
    torch.testing.assert_close(la[:, :3], lb[:, :3], rtol=0, atol=0)  # before the 2nd <image>
    assert bool(((la[:, 3:] - lb[:, 3:]).abs().amax(dim=-1) > 1e-4).all())


def test_image_inputs_pixels_5d_and_precomputed_features_agree(flamingo, image_id):
    open_gates(flamingo)
    ids = _ids(image_id, [[None, 10, 11], [None, 12, 13]])
    pixels = _pixels(flamingo, 2, seed=3)
    with torch.no_grad():
        ref = flamingo(ids, pixel_values=pixels).logits
        five_d = flamingo(ids, pixel_values=pixels[:, None]).logits  # (B, T=1, 3, H, W)
        feats = flamingo.vision_encoder(pixel_values=pixels).last_hidden_state  # (B, N, D) shard features
        from_feats = flamingo(ids, image_embeds=feats).logits
        pooled = flamingo(ids, image_embeds=feats[:, 0]).logits  # (B, D): one vector per image
    torch.testing.assert_close(five_d, ref)
    torch.testing.assert_close(from_feats, ref)
    assert pooled.shape == ref.shape
    with pytest.raises(ValueError):
        flamingo(ids, pixel_values=pixels, image_embeds=feats)


def test_loss_is_shifted_once_and_matches_the_summed_form(flamingo, image_id):
    ids = _ids(image_id, [[None, 10, 11, 12, 0, 0], [None, 13, 14, 15, 16, 17]])
    labels = ids.clone()
    labels[0, 4:] = -100  # padding
    batch = {"input_ids": ids, "labels": labels, "pixel_values": _pixels(flamingo, 2, seed=4)}
    with torch.no_grad():
        out = flamingo(**batch)
        manual = F.cross_entropy(
            out.logits[:, :-1].reshape(-1, TINY_VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        loss_sum, n = token_loss_sum(flamingo, batch)
    torch.testing.assert_close(out.loss, manual)
    assert int(n) == 3 + 5
    torch.testing.assert_close(loss_sum / n, out.loss)


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(flamingo, image_id):
    flamingo.train()
    assert flamingo.training and flamingo.model.decoder.layers[0].training
    assert not any(m.training for m in flamingo.vision_encoder.modules())
    ids = _ids(image_id, [[None, 10, 11, 12]])
    flamingo(ids, labels=ids, pixel_values=_pixels(flamingo, 1, seed=5)).loss.backward()
    encoder = flamingo.vision_encoder
    assert all(not p.requires_grad and p.grad is None for p in encoder.parameters())
    block = flamingo.model.decoder.gated_attn_layers[0]
    assert block.attn_gate.grad is not None and float(block.attn_gate.grad.abs()) > 0
    assert flamingo.model.decoder.perceiver_resampler.latents.grad is not None


def test_hidden_states_and_cached_generation_match_a_full_forward(flamingo, image_id):
    open_gates(flamingo)
    prompt = _ids(image_id, [[None, 10, 11]])
    pixels = _pixels(flamingo, 1, seed=6)
    with torch.no_grad():
        out = flamingo(prompt, pixel_values=pixels, output_hidden_states=True)
        assert len(out.hidden_states) == len(flamingo.model.decoder.layers) + 1
        gen = flamingo.generate(
            prompt,
            pixel_values=pixels,
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        full = flamingo(gen.sequences, pixel_values=pixels).logits
    assert gen.sequences.shape == (1, 3 + 4)
    step_logits = torch.stack(gen.logits, dim=1)
    torch.testing.assert_close(step_logits, full[:, 2:-1], rtol=1e-4, atol=1e-4)


def test_generation_runs_the_frozen_encoder_once(flamingo, image_id):
    open_gates(flamingo)
    calls = []
    flamingo.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    prompt = torch.tensor([[image_id, 10], [image_id, 11]])
    gen = flamingo.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        pixel_values=_pixels(flamingo, 2, seed=3),
        max_new_tokens=5,
        min_new_tokens=5,
        do_sample=False,
    )
    assert gen.shape == (2, 2 + 5)
    assert len(calls) == 1  # not once per generated token


def test_resampler_init_std_is_the_originals_at_base_and_small_when_tiny(flamingo):
    from babylm.train.models import BabyLMFlamingoConfig, model_size

    assert BabyLMFlamingoConfig().perceiver_init_std == 1.0
    assert model_size("flamingo", "base").perceiver_init_std == 1.0
    resampler = flamingo.model.decoder.perceiver_resampler
    # Tiny: small latents, so the image features are not swamped and the gates get a signal.
    assert flamingo.config.perceiver_init_std == 0.02
    assert 0.01 < float(resampler.latents.std()) < 0.04
    assert 0.01 < float(resampler.media_pos_emb.std()) < 0.04


def test_gates_and_cross_attention_init_are_the_originals_at_base_and_open_when_tiny(tiny_vit_dir, image_id):
    from babylm.train.models import BabyLMFlamingoConfig, model_size

    base = model_size("flamingo", "base")
    assert BabyLMFlamingoConfig().cross_attn_gate_init == base.cross_attn_gate_init == 0.0
    assert BabyLMFlamingoConfig().cross_attn_fan_in_init is base.cross_attn_fan_in_init is False
    # The same tiny shape built with the original's init: gates at 0, every Linear at std 0.02.
    closed = tiny_model(
        "flamingo", tiny_vit_dir, image_id, cross_attn_gate_init=0.0, cross_attn_fan_in_init=False
    )
    tiny = tiny_model("flamingo", tiny_vit_dir, image_id)
    assert tiny.config.cross_attn_gate_init == 0.5 and tiny.config.cross_attn_fan_in_init is True
    for model, gate in ((closed, 0.0), (tiny, 0.5)):
        block = model.model.decoder.gated_attn_layers[0]
        assert block.attn_gate.item() == block.ff_gate.item() == gate
    for name in (
        "gated_attn_layers.0.attn.to_kv",
        "gated_attn_layers.2.ff.3",
        "perceiver_resampler.layers.0.0.to_q",
    ):
        before = closed.model.decoder.get_submodule(name).weight
        after = tiny.model.decoder.get_submodule(name).weight
        assert abs(float(before.std()) - 0.02) < 0.003, name
        fan_in = after.shape[1]
        assert abs(float(after.std()) - fan_in**-0.5) < 0.1 * fan_in**-0.5, name
    # The decoder's own layers keep OPT's init either way.
    q_proj = tiny.model.decoder.layers[0].self_attn.q_proj.weight
    assert abs(float(q_proj.std()) - 0.02) < 0.003


def test_original_pad_row_is_the_embedding_padding_idx(tiny_vit_dir):
    """--pad-row original: OPT-125M's pad id 1 (`</s>` in the BabyLM tokenizer) is the embedding's
    padding_idx, zero at init, as the original Flamingo; by default it is <pad> (0)."""
    from babylm.train.models import build_model

    default = build_model(
        "flamingo", size="tiny", vocab_size=100, vision_encoder=tiny_vit_dir, image_token_id=99
    )
    original = build_model(
        "flamingo", size="tiny", vocab_size=100, vision_encoder=tiny_vit_dir, image_token_id=99,
        embedding_padding_idx=1,
    )  # fmt: skip
    assert default.model.decoder.embed_tokens.padding_idx == 0
    emb = original.model.decoder.embed_tokens
    assert emb.padding_idx == 1 and not emb.weight[1].any() and emb.weight[0].any()
    assert original.config.pad_token_id == 0  # the tokenizer's pad id, for batching and GLUE
