"""Pieces shared by the BabyLM Flamingo and GIT models.

Shipped next to their modeling files in exported folders (Hugging Face copies relative imports of
remote code), so it imports only torch and transformers.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PretrainedConfig, ViTModel
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

IGNORE_INDEX = -100


class FrozenVisionMixin:
    """A frozen vision encoder (`vision_encoder`) that stays frozen, and the images it expects.

    Placed before `PreTrainedModel` in the bases, so its `train` and `from_pretrained` wrap theirs.
    """

    config: PretrainedConfig
    vision_encoder: nn.Module

    def train(self, mode: bool = True):
        super().train(mode)
        # Frozen means no dropout and no gradients, whatever the rest of the model does.
        freeze_(self.vision_encoder)
        return self

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        # Loading puts fresh parameters in place, and those require gradients again.
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        freeze_(model.vision_encoder)
        return loaded

    # What images the encoder expects, so a trainer can normalise uint8 batches on device; read
    # from the config, with DINO's ImageNet statistics when the config does not say.

    @property
    def image_mean(self) -> list[float]:
        return list(self.config.image_mean or IMAGENET_DEFAULT_MEAN)

    @property
    def image_std(self) -> list[float]:
        return list(self.config.image_std or IMAGENET_DEFAULT_STD)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)


def build_vision_encoder(vision_config: PretrainedConfig) -> nn.Module:
    """Build an (untrained) vision backbone from its config; weights are loaded afterwards.

    A ViT is built without its pooler: neither model reads the pooled output, and checkpoints
    such as facebook/dino-vitb16 do not ship trained pooler weights.
    """
    if vision_config.model_type == "vit":
        return ViTModel(vision_config, add_pooling_layer=False)
    return AutoModel.from_config(vision_config)


def freeze_(module: nn.Module) -> nn.Module:
    """Stop gradients into `module` and put it in eval mode (no dropout, fixed norms)."""
    module.requires_grad_(False)
    module.eval()
    return module


def encode_images(encoder: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Patch features (B, N, D) of a frozen encoder for normalised images (B, 3, H, W)."""
    dtype = next(encoder.parameters()).dtype
    # The encoder is frozen: no graph is kept, which saves the activation memory of a ViT-B.
    with torch.no_grad():
        return encoder(pixel_values=pixel_values.to(dtype)).last_hidden_state


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy; the one and only shift happens here.

    `logits` (B, L, V) and `labels` (B, L) are aligned position by position (labels are usually
    the input ids, -100 where no loss is wanted); position t is scored on labels[t + 1].
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:].to(logits.device)
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


def as_media_features(image_embeds: torch.Tensor) -> torch.Tensor:
    """Bring precomputed image features to (B, T, N, D): (B, D) is one vector per image,
    (B, N, D) one image of N tokens, (B, T, N, D) T images per sample."""
    if image_embeds.ndim == 2:
        return image_embeds[:, None, None, :]
    if image_embeds.ndim == 3:
        return image_embeds[:, None]
    if image_embeds.ndim == 4:
        return image_embeds
    raise ValueError(f"image_embeds must have 2, 3 or 4 dimensions, got shape {tuple(image_embeds.shape)}")
