"""Configuration of the BabyLM GIT model.

This file ships inside exported model folders as Hugging Face remote code, so it imports only
transformers, and only what every release from 4.46 to the newest 5.x has: a `PretrainedConfig`
with an explicit `__init__`. Defaults are the 2024 baseline's sizes: GIT's text decoder (768 wide,
12 heads) with 12 layers instead of 6, the output layer tied to the word embeddings, and a
ViT-B/16 (the DINO shape) in place of GIT's CLIP image encoder. `vision_config` is the swapped-in
encoder's own config, not a `GitVisionConfig`.
"""

from transformers import AutoConfig, PretrainedConfig

from .configuration_babylm_common import nested_vision_config


class BabyLMGitConfig(PretrainedConfig):
    """GIT text-decoder settings (same names as `GitConfig`) plus the vision encoder's config."""

    model_type = "babylm_git"
    # Read by transformers (attention implementation, dtype) to reach the nested config.
    sub_configs = {"vision_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | PretrainedConfig | None = None,
        vocab_size: int = 32778,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 1024,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 1,
        # Video (several frames with temporal embeddings) is unused; kept so old configs load.
        num_image_with_embedding: int | None = None,
        # GIT's projection LayerNorm took its eps from the CLIP vision config it was built with.
        visual_projection_ln_eps: float = 1e-5,
        # What the vision encoder expects (so a trainer can normalise uint8 batches on device).
        image_size: int = 224,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        **kwargs,
    ):
        self.vision_config = nested_vision_config(vision_config)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.use_cache = use_cache
        self.num_image_with_embedding = num_image_with_embedding
        self.visual_projection_ln_eps = visual_projection_ln_eps
        self.image_size = image_size
        self.image_mean = image_mean
        self.image_std = image_std
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
