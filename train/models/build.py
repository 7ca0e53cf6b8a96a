"""Model sizes and `build_model`: the four baselines at the original's sizes ("base") or tiny.

`ARCHITECTURES` is the builder registry: per architecture (a `ModelKind.architecture`), its sizes,
its Hugging Face config and its training class. The facts about a kind that need no torch are its
record in `babylm.train.kinds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import OPTConfig, RobertaConfig

from ..kinds import MODEL_KINDS, MULTIMODAL_KINDS, TEXT_KINDS, architecture, kind_of  # noqa: F401
from .configuration_babylm_flamingo import BabyLMFlamingoConfig
from .configuration_babylm_git import BabyLMGitConfig
from .modeling_babylm_flamingo import BabyLMFlamingoForCausalLM
from .modeling_babylm_git import BabyLMGitForCausalLM
from .text_models import BabyLMOPTForCausalLM, BabyLMRobertaForMaskedLM
from .vision import image_spec, load_vision_encoder

SIZES = ("base", "tiny")


@dataclass(frozen=True)
class FlamingoSize:
    """Defaults: OPT-125M decoder, cross-attention every 2nd layer, depth-2 resampler, 64 latents."""

    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    ffn_dim: int = 3072
    max_position_embeddings: int = 2048
    cross_attn_every: int = 2
    cross_attn_heads: int = 12
    cross_attn_dim_head: int = 64
    perceiver_depth: int = 2
    perceiver_num_latents: int = 64
    perceiver_heads: int = 12
    perceiver_dim_head: int = 64
    perceiver_init_std: float = 1.0
    cross_attn_gate_init: float = 0.0
    cross_attn_fan_in_init: bool = False


@dataclass(frozen=True)
class GitSize:
    """Defaults: GIT's text decoder (git-base/large share it) with 12 layers instead of 6."""

    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 1024


@dataclass(frozen=True)
class OPTSize:
    """Defaults: facebook/opt-125m."""

    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    ffn_dim: int = 3072
    max_position_embeddings: int = 2048


@dataclass(frozen=True)
class RobertaSize:
    """Defaults: roberta-base (514 positions: 512 plus RoBERTa's padding offset)."""

    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514


def _flamingo_config(common: dict[str, Any], image_token_id: int, overrides: dict[str, Any]) -> Any:
    if not 0 <= image_token_id < common["vocab_size"]:
        raise ValueError(
            f"image_token_id {image_token_id} is outside the vocabulary ({common['vocab_size']})"
        )
    return BabyLMFlamingoConfig(
        **{**common, "media_token_id": image_token_id, **overrides}, attn_implementation="sdpa"
    )


def _git_config(common: dict[str, Any], image_token_id: int, overrides: dict[str, Any]) -> Any:
    # transformers implements GIT's attention eagerly only.
    return BabyLMGitConfig(**{**common, **overrides})


def _opt_config(common: dict[str, Any], image_token_id: int, overrides: dict[str, Any]) -> Any:
    return OPTConfig(
        **{**common, "word_embed_proj_dim": common["hidden_size"], **overrides}, attn_implementation="sdpa"
    )


def _roberta_config(common: dict[str, Any], image_token_id: int, overrides: dict[str, Any]) -> Any:
    # RoBERTa-base: one token type, LayerNorm eps 1e-5.
    return RobertaConfig(
        **{**common, "type_vocab_size": 1, "layer_norm_eps": 1e-5, **overrides}, attn_implementation="sdpa"
    )


def _freeze_visual_projection(model: torch.nn.Module) -> None:
    # No image ever reaches it: keep the projection out of DDP and AdamW.
    model.git.visual_projection.requires_grad_(False)


@dataclass(frozen=True)
class Architecture:
    """How one architecture is built: its sizes, its Hugging Face config (from the size fields,
    token ids and vocabulary, the image token id and overrides), its training class, and what to
    do to it for a kind that never sees an image."""

    base: Any
    tiny: Any
    config: Callable[[dict[str, Any], int, dict[str, Any]], Any]
    model_class: type
    without_images: Callable[[torch.nn.Module], None] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "flamingo": Architecture(
        base=FlamingoSize(),
        tiny=FlamingoSize(
            num_hidden_layers=4,
            hidden_size=128,
            num_attention_heads=4,
            ffn_dim=512,
            max_position_embeddings=512,
            cross_attn_heads=4,
            cross_attn_dim_head=32,
            perceiver_num_latents=16,
            perceiver_heads=4,
            perceiver_dim_head=32,
            perceiver_init_std=0.02,
            cross_attn_gate_init=0.5,
            cross_attn_fan_in_init=True,
        ),
        config=_flamingo_config,
        model_class=BabyLMFlamingoForCausalLM,
    ),
    "git": Architecture(
        base=GitSize(),
        tiny=GitSize(
            num_hidden_layers=2,
            hidden_size=128,
            num_attention_heads=4,
            intermediate_size=512,
            max_position_embeddings=512,
        ),
        config=_git_config,
        model_class=BabyLMGitForCausalLM,
        without_images=_freeze_visual_projection,
    ),
    "opt": Architecture(
        base=OPTSize(),
        tiny=OPTSize(
            num_hidden_layers=2,
            hidden_size=128,
            num_attention_heads=4,
            ffn_dim=512,
            max_position_embeddings=512,
        ),
        config=_opt_config,
        model_class=BabyLMOPTForCausalLM,
    ),
    "roberta": Architecture(
        base=RobertaSize(),
        tiny=RobertaSize(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, intermediate_size=512),
        config=_roberta_config,
        model_class=BabyLMRobertaForMaskedLM,
    ),
}


def model_size(kind: str, size: str = "base") -> Any:
    """The size dataclass of `kind` at `size` ("base" = the original's, "tiny" = CPU tests/demo)."""
    arch = ARCHITECTURES[architecture(kind)]
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return arch.base if size == "base" else arch.tiny


def make_config(
    kind: str,
    *,
    size: str = "base",
    vocab_size: int = 32778,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 1,
    image_token_id: int = 32768,
    vision_config: dict | None = None,
    **overrides: Any,
):
    """The Hugging Face config `build_model` uses; `overrides` set any config field (dropout,
    num_hidden_layers, ...). `vision_config` (a dict) is required for the multimodal kinds."""
    fields = dataclasses.asdict(model_size(kind, size))
    ids = {"pad_token_id": pad_token_id, "bos_token_id": bos_token_id, "eos_token_id": eos_token_id}
    common = {**fields, **ids, "vocab_size": vocab_size}
    if kind_of(kind).multimodal:
        if vision_config is None:
            raise ValueError(f"{kind} needs a vision encoder (vision_config)")
        common["vision_config"] = vision_config
    return ARCHITECTURES[architecture(kind)].config(common, image_token_id, overrides)


def model_class(kind: str) -> type:
    """The training class of `kind` (Hugging Face `PreTrainedModel` subclasses)."""
    return ARCHITECTURES[architecture(kind)].model_class


def build_model(
    kind: str,
    *,
    size: str = "base",
    vocab_size: int = 32778,
    vision_encoder: str | None = None,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 1,
    image_token_id: int = 32768,
    **overrides: Any,
) -> torch.nn.Module:
    """Build a freshly initialised baseline of `kind` (one of `MODEL_KINDS`).

    The multimodal kinds load their frozen vision encoder (and its image processor, kept as
    `model.babylm_image_processor`) from `vision_encoder`, a local path or Hugging Face name; it is
    ignored for the text kinds. Everything needed to rebuild the model is recorded as
    `model.babylm_build_args` (JSON-serialisable): `build_model(**model.babylm_build_args)`.
    """
    spec_of_kind = kind_of(kind)
    encoder = processor = None
    vision_config = None
    spec: dict[str, Any] = {}
    if spec_of_kind.multimodal:
        if vision_encoder is None:
            raise ValueError(f"{kind} needs --vision-encoder (a ViT name or path)")
        encoder, processor = load_vision_encoder(vision_encoder)
        vision_config = encoder.config.to_dict()
        mean, std, image_size, _ = image_spec(processor)
        spec = {"image_mean": mean, "image_std": std, "image_size": image_size}
    config = make_config(
        kind,
        size=size,
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        image_token_id=image_token_id,
        vision_config=vision_config,
        **{**spec, **overrides},
    )
    arch = ARCHITECTURES[spec_of_kind.architecture]
    model = arch.model_class(config)
    if spec_of_kind.multimodal and not spec_of_kind.images and arch.without_images is not None:
        arch.without_images(model)
    if encoder is not None:
        model.vision_encoder.load_state_dict(encoder.state_dict())
        model.babylm_image_processor = processor
    model.babylm_build_args = {
        "kind": kind,
        "size": size,
        "vocab_size": vocab_size,
        "vision_encoder": str(vision_encoder) if spec_of_kind.multimodal else None,
        "pad_token_id": pad_token_id,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "image_token_id": image_token_id,
        **overrides,
    }
    return model


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and frozen parameter counts; tied weights count once."""
    trainable = frozen = 0
    for p in model.parameters():  # parameters() yields a shared tensor once
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return {"trainable": trainable, "frozen": frozen}
