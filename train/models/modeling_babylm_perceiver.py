"""Flamingo's image path: the perceiver resampler (a fixed number of learned latents read each
image's patch features, so the decoder cross-attends to the same small number of tokens whatever
the encoder) and the gated cross-attention blocks through which the text reads those latents.

Ships in exported Flamingo folders as Hugging Face remote code: imports only torch and transformers.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_babylm_flamingo import BabyLMFlamingoConfig


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Flamingo's pre-norm feed-forward (no biases), used by the resampler and the gated blocks."""
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., n, heads * d) -> (..., heads, n, d)."""
    x = x.unflatten(-1, (heads, -1))
    return x.transpose(-3, -2)


class PerceiverAttention(nn.Module):
    """Latents attend to the media tokens and to themselves (Flamingo's resampler attention)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        # media (B, T, N, D), latents (B, T, L, D)
        media, latents = self.norm_media(media), self.norm_latents(latents)
        q = split_heads(self.to_q(latents), self.heads)
        k, v = self.to_kv(torch.cat([media, latents], dim=-2)).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, split_heads(k, self.heads), split_heads(v, self.heads))
        return self.to_out(out.transpose(-3, -2).flatten(-2))


class PerceiverResampler(nn.Module):
    """Turns each image's N patch features into a fixed number of latents of the decoder width."""

    def __init__(self, config: BabyLMFlamingoConfig, input_dim: int):
        super().__init__()
        dim = config.hidden_size
        # The original's `inp_linear` (flamingo_pytorch.py, inp_dim=768): a bias-free projection of
        # the encoder features, there even when the widths are equal (768 -> 768 at base size).
        self.inp_linear = nn.Linear(input_dim, dim, bias=False)
        std = config.perceiver_init_std
        self.latents = nn.Parameter(torch.randn(config.perceiver_num_latents, dim) * std)
        self.media_pos_emb = nn.Parameter(torch.randn(config.max_num_media, 1, dim) * std)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(dim, config.perceiver_heads, config.perceiver_dim_head),
                    feed_forward(dim, config.perceiver_ff_mult),
                ]
            )
            for _ in range(config.perceiver_depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        """(B, T, N, D_in) features -> (B, T, num_latents, D) latents."""
        media = self.inp_linear(media)
        b, t = media.shape[:2]
        if t > self.media_pos_emb.shape[0]:
            raise ValueError(f"at most {self.media_pos_emb.shape[0]} images per sample, got {t}")
        media = media + self.media_pos_emb[:t]
        latents = self.latents.expand(b, t, *self.latents.shape)
        for attn, ff in self.layers:
            latents = attn(media, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


class MaskedCrossAttention(nn.Module):
    """Text queries attend to the latents of the images each position is allowed to see."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, media: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        # x (B, L, D); media (B, T, M, D); allowed (B, L, T) bool
        b, t, m, _ = media.shape
        q = split_heads(self.to_q(self.norm(x)), self.heads)
        k, v = self.to_kv(media.reshape(b, t * m, -1)).chunk(2, dim=-1)
        sees_media = allowed.any(dim=-1, keepdim=True)  # (B, L, 1)
        # A row that may see nothing would be all -inf (NaN in softmax): let it see everything,
        # then zero its output, which is what "no image yet" means.
        mask = (allowed | ~sees_media).repeat_interleave(m, dim=-1)[:, None]
        out = F.scaled_dot_product_attention(
            q, split_heads(k, self.heads), split_heads(v, self.heads), attn_mask=mask
        )
        out = out.transpose(1, 2).flatten(-2) * sees_media.to(out.dtype)
        return self.to_out(out)


class GatedCrossAttentionBlock(nn.Module):
    """Cross-attention and feed-forward, each added through a tanh gate. The gates start at 0 by
    default (`cross_attn_gate_init`), so the freshly built model is exactly its language model."""

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__()
        dim = config.hidden_size
        self.attn = MaskedCrossAttention(dim, config.cross_attn_heads, config.cross_attn_dim_head)
        self.attn_gate = nn.Parameter(torch.full((1,), config.cross_attn_gate_init))
        self.ff = feed_forward(dim, config.cross_attn_ff_mult)
        self.ff_gate = nn.Parameter(torch.full((1,), config.cross_attn_gate_init))

    def forward(self, x: torch.Tensor, media: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = self.attn(x, media, allowed) * self.attn_gate.tanh() + x
        return self.ff(x) * self.ff_gate.tanh() + x
