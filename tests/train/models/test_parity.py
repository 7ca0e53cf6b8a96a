"""The self-contained Flamingo and GIT layers compute what transformers' own OPT and GIT decoders
compute with the same weights (the models were built from those until they had to load on every
release from 4.46 on): logits with and without an image, and greedy generation.

The references are stock `OPTForCausalLM` (plus forward pre-hooks that apply our gated
cross-attention blocks before their layers) and stock `GitForCausalLM` (with our frozen ViT and
projection swapped in for GIT's CLIP encoder); each gets our model's weights by parameter name.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import GitConfig, GitForCausalLM, OPTConfig, OPTForCausalLM

from babylm.train.models import normalize_images
from babylm.train.models.modeling_babylm_layers import attention_bias
from tests.train.models.helpers import IMAGE_SIZE, open_gates, tiny_model, uint8_images

ATOL = 1e-5
_OPT_FIELDS = (
    "vocab_size hidden_size num_hidden_layers ffn_dim max_position_embeddings do_layer_norm_before "
    "word_embed_proj_dim dropout attention_dropout num_attention_heads activation_function "
    "enable_bias layer_norm_elementwise_affine pad_token_id bos_token_id eos_token_id"
).split()
_GIT_FIELDS = (
    "vocab_size hidden_size num_hidden_layers num_attention_heads intermediate_size hidden_act "
    "hidden_dropout_prob attention_probs_dropout_prob max_position_embeddings initializer_range "
    "layer_norm_eps pad_token_id bos_token_id eos_token_id"
).split()


def _load_by_name(reference: nn.Module, model: nn.Module) -> None:
    """Copy every reference parameter from the same-named one of `model` (none may be missing)."""
    ours = model.state_dict()
    theirs = reference.state_dict()
    missing = [k for k in theirs if k not in ours and "image_encoder" not in k]
    assert not missing, missing
    reference.load_state_dict({k: ours.get(k, v) for k, v in theirs.items()})


class _FlamingoReference:
    """Stock OPT with the Flamingo model's gated blocks applied before their decoder layers."""

    def __init__(self, flamingo: nn.Module):
        cfg = flamingo.config
        self.flamingo = flamingo
        self.opt = OPTForCausalLM(OPTConfig(**{k: getattr(cfg, k) for k in _OPT_FIELDS})).eval()
        _load_by_name(self.opt, flamingo)
        self.media = self.allowed = None
        blocks = flamingo.model.decoder.gated_attn_layers
        for layer, block in zip(self.opt.model.decoder.layers, blocks, strict=True):
            if block is not None:
                layer.register_forward_pre_hook(self._hook(block), with_kwargs=True)

    def _hook(self, block: nn.Module):
        def apply(_module, args, kwargs):
            if self.media is None:
                return None
            if args:
                return (block(args[0], self.media, self.allowed), *args[1:]), kwargs
            kwargs["hidden_states"] = block(kwargs["hidden_states"], self.media, self.allowed)
            return args, kwargs

        return apply

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        decoder = self.flamingo.model.decoder
        self.media = decoder.encode_media(pixel_values, None, ids.shape[0])
        if self.media is not None:
            self.allowed = decoder.media_allowed(ids, ids.shape[1], self.media.shape[1])
        try:
            return self.opt(ids).logits
        finally:
            self.media = self.allowed = None


class _ViTFeatures(nn.Module):
    """Our frozen ViT in the place of GIT's CLIP encoder (same call, same output field)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit

    def forward(self, pixel_values: torch.Tensor, **_):
        return self.vit(pixel_values=pixel_values)


def _git_reference(git: nn.Module) -> GitForCausalLM:
    cfg = git.config
    vit = cfg.vision_config
    vision = {"image_size": IMAGE_SIZE, "patch_size": 16, "num_hidden_layers": 1}
    vision |= {k: getattr(vit, k) for k in ("hidden_size", "num_attention_heads", "intermediate_size")}
    stock = GitForCausalLM(GitConfig(vision_config=vision, **{k: getattr(cfg, k) for k in _GIT_FIELDS}))
    stock.output = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)  # ours: tied, no bias
    stock.git.image_encoder = _ViTFeatures(git.git.image_encoder)
    stock.git.visual_projection = git.git.visual_projection
    _load_by_name(stock, git)
    return stock.eval()


def _greedy(logits_fn, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy decoding by full forwards (no cache): what generate must reproduce."""
    for _ in range(steps):
        ids = torch.cat([ids, logits_fn(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.fixture
def ids(image_id):
    return torch.tensor([[image_id, 10, 11, 12, 13, 14], [9, 8, image_id, 7, 6, 5]])


def test_flamingo_matches_stock_opt_with_its_blocks(tiny_vit_dir, image_id, ids):
    model = tiny_model("flamingo", tiny_vit_dir, image_id, seed=5)
    open_gates(model, 0.7)  # so that the image visibly changes the logits
    reference = _FlamingoReference(model)
    pixels = normalize_images(uint8_images(2, seed=8), model)
    with torch.no_grad():
        text, image = model(ids).logits, model(ids, pixel_values=pixels).logits
        generated = model.generate(
            ids, pixel_values=pixels, max_new_tokens=5, min_new_tokens=5, do_sample=False
        )
    torch.testing.assert_close(text, reference.logits(ids), rtol=0, atol=ATOL)
    torch.testing.assert_close(image, reference.logits(ids, pixels), rtol=0, atol=ATOL)
    assert (image - text).abs().max() > 1e-3  # the image is used
    assert torch.equal(generated, _greedy(lambda x: reference.logits(x, pixels), ids, 5))


def test_git_matches_stock_git_with_our_encoder(tiny_vit_dir, image_id, ids):
    model = tiny_model("git", tiny_vit_dir, image_id, seed=5)
    reference = _git_reference(model)
    pixels = normalize_images(uint8_images(2, seed=8), model)
    with torch.no_grad():
        text, image = model(ids).logits, model(ids, pixel_values=pixels).logits
        generated = model.generate(
            ids, pixel_values=pixels, max_new_tokens=5, min_new_tokens=5, do_sample=False
        )
        torch.testing.assert_close(text, reference(ids).logits, rtol=0, atol=ATOL)
        torch.testing.assert_close(image, reference(ids, pixel_values=pixels).logits, rtol=0, atol=ATOL)
    assert (image[:, -ids.shape[1] :] - text).abs().max() > 1e-3
    assert torch.equal(generated, _greedy(lambda x: reference(x, pixel_values=pixels).logits, ids, 5))


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_legacy_tuple_cache_continues_a_forward(tiny_vit_dir, image_id, ids, kind):
    """Without a transformers Cache (a direct call, or 4.46's generate) the cache is plain tuples."""
    model = tiny_model(kind, tiny_vit_dir, image_id, seed=5)
    pixels = normalize_images(uint8_images(2, seed=8), model)
    with torch.no_grad():
        full = model(ids, pixel_values=pixels).logits[:, -1]
        first = model(ids[:, :-1], pixel_values=pixels, use_cache=True)
        assert isinstance(first.past_key_values, tuple)
        assert len(first.past_key_values) == model.config.num_hidden_layers
        step = {"media_input_ids": ids, "pixel_values": pixels} if kind == "flamingo" else {}
        last = model(
            ids[:, -1:], past_key_values=first.past_key_values, attention_mask=torch.ones_like(ids), **step
        ).logits[:, -1]
    torch.testing.assert_close(last, full, rtol=0, atol=ATOL)


def test_attention_bias_stays_finite_in_bfloat16():
    """CUDA autocast runs SDPA in bfloat16 and casts the float32 bias: a left-padded (fully masked)
    row must stay finite there, or its NaN leaks into the real tokens through the values."""
    bias = attention_bias(torch.tensor([[0, 0, 1, 1]]), 1, 4, 0, torch.float32, torch.device("cpu"))
    assert torch.isfinite(bias.to(torch.bfloat16)).all()
    assert (bias[0, 0].diagonal()[2:] == 0).all() and (bias[0, 0, 3, :2] < -1e38).all()
