"""Pieces shared by the BabyLM Flamingo and GIT models.

Shipped next to their modeling files in exported folders (Hugging Face copies relative imports of
remote code), so it imports only torch and transformers.
"""

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoModel, PretrainedConfig, ViTModel

from .modeling_babylm_layers import KVCache

IGNORE_INDEX = -100
# facebook/dino-vitb16's statistics (its preprocessor_config.json: mean and std 0.5, not ImageNet's),
# the default when a config does not record its encoder's.
DINO_MEAN = [0.5, 0.5, 0.5]
DINO_STD = [0.5, 0.5, 0.5]
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def tied_weights_keys(target: str, source: str) -> dict[str, str] | list[str]:
    """`_tied_weights_keys` in the form the running transformers reads: 5.x maps the tied
    parameter to its source, 4.x lists the tied parameter (and ties output to input embeddings)."""
    return {target: source} if TRANSFORMERS_MAJOR >= 5 else [target]


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
    # from the config, with DINO's statistics (0.5) when the config does not say.

    @property
    def image_mean(self) -> list[float]:
        return list(self.config.image_mean or DINO_MEAN)

    @property
    def image_std(self) -> list[float]:
        return list(self.config.image_std or DINO_STD)

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


def last_token_states(
    hidden: torch.Tensor, input_ids: torch.Tensor | None, pad_token_id: int | None
) -> torch.Tensor:
    """(B, D) hidden state of each row's last non-pad token, as transformers' OPT/GPT-2 sequence
    classifiers pick it (the rightmost token that is not padding; the last one without input_ids)."""
    batch, length = hidden.shape[:2]
    if input_ids is None or pad_token_id is None:
        last = torch.full((batch,), length - 1, device=hidden.device)
    else:
        non_pad = (input_ids != pad_token_id).to(hidden.device, torch.int32)
        positions = torch.arange(length, device=hidden.device, dtype=torch.int32)
        last = (positions * non_pad).argmax(-1)
    return hidden[torch.arange(batch, device=hidden.device), last]


def sequence_classification_loss(config: PretrainedConfig, logits: torch.Tensor, labels: torch.Tensor):
    """transformers' loss for sequence classifiers: regression (MSE) when `num_labels == 1`,
    cross-entropy for integer labels, BCE with logits for multi-label float targets; the
    problem type is inferred once and stored in the config, as transformers does."""
    labels = labels.to(logits.device)
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1).float(), labels.squeeze(-1).float())
        return F.mse_loss(logits.float(), labels.float())
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels).float(), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def init_linear_embedding_norm(module: nn.Module, std: float) -> None:
    """The usual transformers init for one module: Linear and Embedding weights normal(0, std)
    (the padding row zero), biases zero, LayerNorms at one/zero. Plain torch.nn.init, which
    transformers 5 guards during loading so that loaded weights are never re-drawn."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
            module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def generation_inputs(input_ids: torch.Tensor, kwargs: dict, image_tokens_cached: bool) -> dict:
    """`prepare_inputs_for_generation` without the release's version of it (which changes between
    releases): the tokens the cache has not seen, the cache, and a full-length attention mask.

    GIT's cache also holds its image tokens (`image_tokens_cached`), so its length says nothing
    about the text: there the one new token is taken, as greedy, sampling and beam search add one.
    """
    past = kwargs.get("past_key_values")
    cached = KVCache(past, use_cache=True).length()
    attention_mask = kwargs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    inputs = {
        "input_ids": input_ids,
        "past_key_values": past,
        "attention_mask": attention_mask,
        "use_cache": kwargs.get("use_cache", True),
    }
    if cached:
        inputs["input_ids"] = input_ids[:, -1:] if image_tokens_cached else input_ids[:, cached:]
    elif kwargs.get("inputs_embeds") is not None:
        inputs["input_ids"], inputs["inputs_embeds"] = None, kwargs["inputs_embeds"]
    if kwargs.get("logits_to_keep") is not None:
        inputs["logits_to_keep"] = kwargs["logits_to_keep"]
    return inputs


def reorder_legacy_cache(past, beam_idx: torch.Tensor):
    """Beam search on 4.x with a legacy tuple cache: keep the chosen beams' keys and values."""
    if hasattr(past, "reorder_cache"):
        past.reorder_cache(beam_idx)
        return past
    return tuple(tuple(t.index_select(0, beam_idx.to(t.device)) for t in layer) for layer in past)
