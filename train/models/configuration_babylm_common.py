"""The vision-encoder config nested in the BabyLM Flamingo and GIT configs.

Ships in exported folders as Hugging Face remote code and imports only transformers: nesting is
done here with `AutoConfig.for_model`, which every release from 4.46 to the newest 5.x has, rather
than with a release's own sub-config machinery.
"""

from transformers import AutoConfig, PretrainedConfig


def nested_vision_config(value: dict | PretrainedConfig | None) -> PretrainedConfig:
    """The encoder's config from a saved dict (its `model_type` picks the class), a config, or
    None: a ViT-B/16, the DINO shape the baselines use."""
    if isinstance(value, PretrainedConfig):
        return value
    kwargs = dict(value or {})
    kwargs.pop("transformers_version", None)
    return AutoConfig.for_model(kwargs.pop("model_type", "vit"), **kwargs)
