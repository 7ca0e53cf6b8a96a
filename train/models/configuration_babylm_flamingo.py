"""Configuration of the BabyLM Flamingo model.

This file ships inside exported model folders as Hugging Face remote code, so it imports only
transformers, and only what every release from 4.46 to the newest 5.x has: a `PretrainedConfig`
with an explicit `__init__`. Defaults are the 2024 baseline's sizes: an OPT-125M-shaped decoder, a
gated cross-attention block before every 2nd decoder layer, a depth-2 perceiver resampler with 64
latents, and a ViT-B/16 (the DINO shape) as the frozen vision encoder.
"""

from transformers import AutoConfig, PretrainedConfig

from .configuration_babylm_common import nested_vision_config


class BabyLMFlamingoConfig(PretrainedConfig):
    """OPT decoder settings (`OPTConfig`'s names) plus the Flamingo cross-attention, resampler and
    vision encoder settings."""

    model_type = "babylm_flamingo"
    # Read by transformers (attention implementation, dtype) to reach the nested config.
    sub_configs = {"vision_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | PretrainedConfig | None = None,
        vocab_size: int = 32778,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        ffn_dim: int = 3072,
        max_position_embeddings: int = 2048,
        do_layer_norm_before: bool = True,
        _remove_final_layer_norm: bool = False,
        word_embed_proj_dim: int | None = None,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        num_attention_heads: int = 12,
        activation_function: str = "relu",
        layerdrop: float = 0.0,
        init_std: float = 0.02,
        use_cache: bool = True,
        enable_bias: bool = True,
        layer_norm_elementwise_affine: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 1,
        # The `<image>` token: text attends to the image that the most recent one stands for.
        media_token_id: int = 32768,
        cross_attn_every: int = 2,
        cross_attn_heads: int = 12,
        cross_attn_dim_head: int = 64,
        cross_attn_ff_mult: int = 4,
        only_attend_immediate_media: bool = True,
        perceiver_depth: int = 2,
        perceiver_num_latents: int = 64,
        perceiver_heads: int = 12,
        perceiver_dim_head: int = 64,
        perceiver_ff_mult: int = 4,
        # Std of the resampler's latents and media position embeddings at init: randn (1.0) as in
        # the original. Small models train their image path far sooner with 0.02.
        perceiver_init_std: float = 1.0,
        # Starting value of the tanh gates: 0 as in Flamingo, so a pretrained decoder is untouched
        # at first. Init of the resampler's and cross-attention's Linear weights: `init_std` as the
        # original at base size, or std 1/sqrt(fan_in) when `cross_attn_fan_in_init` is on. A small
        # decoder trained from scratch needs both changed to read the image within hundreds of
        # steps (see the README: `--size tiny` sets 0.5 and fan-in init).
        cross_attn_gate_init: float = 0.0,
        cross_attn_fan_in_init: bool = False,
        max_num_media: int = 4,
        # The token-embedding row kept at zero (nn.Embedding's padding_idx); None: pad_token_id. The
        # original used OPT-125M's pad_token_id 1, which is `</s>` in the BabyLM tokenizer
        # (FIDELITY.md); `--pad-row original` sets 1.
        embedding_padding_idx: int | None = None,
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
        self.ffn_dim = ffn_dim
        self.max_position_embeddings = max_position_embeddings
        self.do_layer_norm_before = do_layer_norm_before
        self._remove_final_layer_norm = _remove_final_layer_norm
        self.word_embed_proj_dim = word_embed_proj_dim if word_embed_proj_dim is not None else hidden_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.num_attention_heads = num_attention_heads
        self.activation_function = activation_function
        self.layerdrop = layerdrop
        self.init_std = init_std
        self.use_cache = use_cache
        self.enable_bias = enable_bias
        self.layer_norm_elementwise_affine = layer_norm_elementwise_affine
        self.media_token_id = media_token_id
        self.cross_attn_every = cross_attn_every
        self.cross_attn_heads = cross_attn_heads
        self.cross_attn_dim_head = cross_attn_dim_head
        self.cross_attn_ff_mult = cross_attn_ff_mult
        self.only_attend_immediate_media = only_attend_immediate_media
        self.perceiver_depth = perceiver_depth
        self.perceiver_num_latents = perceiver_num_latents
        self.perceiver_heads = perceiver_heads
        self.perceiver_dim_head = perceiver_dim_head
        self.perceiver_ff_mult = perceiver_ff_mult
        self.perceiver_init_std = perceiver_init_std
        self.cross_attn_gate_init = cross_attn_gate_init
        self.cross_attn_fan_in_init = cross_attn_fan_in_init
        self.max_num_media = max_num_media
        self.embedding_padding_idx = embedding_padding_idx
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
