"""Configuration of the BabyLM Flamingo model.

This file ships inside exported model folders as Hugging Face remote code, so it imports only
transformers. Defaults are the 2024 baseline's sizes: an OPT-125M-shaped decoder, a gated
cross-attention block before every 2nd decoder layer, a depth-2 perceiver resampler with 64
latents, and a ViT-B/16 (the DINO shape) as the frozen vision encoder.
"""

from transformers import AutoConfig, OPTConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec


class BabyLMFlamingoConfig(OPTConfig):
    """OPT decoder settings plus the Flamingo cross-attention, resampler and vision encoder settings."""

    model_type = "babylm_flamingo"
    # Any Hugging Face vision backbone config (ViT, DINOv2, ...) resolves through AutoConfig by its
    # `model_type`; without one, the ViT-B/16 shape the baselines use is the default.
    sub_configs_defaults = {"vision_config": SubConfigSpec(AutoConfig, model_type="vit")}

    vision_config: dict | PretrainedConfig | None = None
    vocab_size: int = 32778
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 1
    # The `<image>` token: text attends to the image that the most recent one stands for.
    media_token_id: int = 32768
    cross_attn_every: int = 2
    cross_attn_heads: int = 12
    cross_attn_dim_head: int = 64
    cross_attn_ff_mult: int = 4
    only_attend_immediate_media: bool = True
    perceiver_depth: int = 2
    perceiver_num_latents: int = 64
    perceiver_heads: int = 12
    perceiver_dim_head: int = 64
    perceiver_ff_mult: int = 4
    # Std of the resampler's latents and media position embeddings at init: randn (1.0) as in the
    # original. Small models train their image path far sooner with 0.02: unit-norm latents
    # otherwise swamp the image features, and the zero gates see no signal to open for.
    perceiver_init_std: float = 1.0
    # Starting value of the tanh gates: 0 as in Flamingo, so a pretrained decoder is untouched at
    # first. Init of the resampler's and cross-attention's Linear weights: `init_std` (0.02) as the
    # original at base size, or std 1/sqrt(fan_in) when `cross_attn_fan_in_init` is on.
    # A small decoder trained from scratch needs both changed to read the image within hundreds of
    # steps: with 0.02 at width 128 every attention is near uniform, so the resampled latents are
    # nearly the same for every image, and a gate at 0 gets no gradient that points one way (the
    # `--size tiny` model sets 0.5 and fan-in init: gap 0.6 nats/token after 300 steps instead of 0).
    cross_attn_gate_init: float = 0.0
    cross_attn_fan_in_init: bool = False
    max_num_media: int = 4
    # What the vision encoder expects (recorded so a trainer can normalise uint8 batches on device).
    image_size: int = 224
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
