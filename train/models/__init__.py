"""The BabyLM baselines: Flamingo and GIT (multimodal), OPT and RoBERTa (text).

`build_model(kind, size=..., vision_encoder=...)` builds one (the facts of each kind are its record
in `babylm.train.kinds`; `build.ARCHITECTURES` holds each architecture's sizes, config and class);
`token_loss_sum` (from `babylm.train.losses`, re-exported) gives a summed loss and target count;
`normalize_images` turns the loaders' uint8 images into encoder input.
The Flamingo and GIT classes (causal LM and sequence classifier) live in self-contained files (`modeling_babylm_*.py`,
`configuration_babylm_*.py`, `processing_babylm.py`) that `babylm.train.export` ships as remote code.
"""

from ..losses import is_masked_lm, mask_tokens, token_loss_sum, unwrap_model
from .build import (
    MODEL_KINDS,
    MULTIMODAL_KINDS,
    TEXT_KINDS,
    FlamingoSize,
    GitSize,
    OPTSize,
    RobertaSize,
    architecture,
    build_model,
    count_parameters,
    make_config,
    model_class,
    model_size,
)
from .configuration_babylm_flamingo import BabyLMFlamingoConfig
from .configuration_babylm_git import BabyLMGitConfig
from .modeling_babylm_flamingo import BabyLMFlamingoForCausalLM, BabyLMFlamingoForSequenceClassification
from .modeling_babylm_git import BabyLMGitForCausalLM, BabyLMGitForSequenceClassification
from .text_models import BabyLMOPTForCausalLM, BabyLMRobertaForMaskedLM
from .vision import load_vision_encoder, make_tiny_vit, normalize_images

__all__ = [
    "MODEL_KINDS",
    "TEXT_KINDS",
    "architecture",
    "MULTIMODAL_KINDS",
    "BabyLMFlamingoConfig",
    "BabyLMFlamingoForCausalLM",
    "BabyLMFlamingoForSequenceClassification",
    "BabyLMGitConfig",
    "BabyLMGitForCausalLM",
    "BabyLMGitForSequenceClassification",
    "BabyLMOPTForCausalLM",
    "BabyLMRobertaForMaskedLM",
    "FlamingoSize",
    "GitSize",
    "OPTSize",
    "RobertaSize",
    "build_model",
    "count_parameters",
    "is_masked_lm",
    "load_vision_encoder",
    "make_config",
    "make_tiny_vit",
    "mask_tokens",
    "model_class",
    "model_size",
    "normalize_images",
    "token_loss_sum",
    "unwrap_model",
]
