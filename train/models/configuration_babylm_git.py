"""Configuration of the BabyLM GIT model.

This file ships inside exported model folders as Hugging Face remote code, so it imports only
transformers. Defaults are the 2024 baseline's sizes: GIT's text decoder (768 wide, 12 heads)
with 12 layers instead of 6, the output layer tied to the word embeddings, and a ViT-B/16 (the
DINO shape) in place of GIT's CLIP image encoder.

It is a plain `PretrainedConfig` rather than a `GitConfig` subclass because `GitConfig` validates
`vision_config` as a `GitVisionConfig`, and ours is the swapped-in encoder's own config.
"""

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec


class BabyLMGitConfig(PretrainedConfig):
    """GIT text-decoder settings (same names as `GitConfig`) plus the vision encoder's config."""

    model_type = "babylm_git"
    # Any Hugging Face vision backbone config (ViT, DINOv2, ...) resolves through AutoConfig.
    sub_configs_defaults = {"vision_config": SubConfigSpec(AutoConfig, model_type="vit")}

    vision_config: dict | PretrainedConfig | None = None
    vocab_size: int = 32778
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 1024
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 1
    # Read by transformers' GIT layers; video (several frames with temporal embeddings) is unused.
    num_image_with_embedding: int | None = None
    # GIT's projection LayerNorm took its eps from the CLIP vision config it was built with (1e-5).
    visual_projection_ln_eps: float = 1e-5
    # What the vision encoder expects (recorded so a trainer can normalise uint8 batches on device).
    image_size: int = 224
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
