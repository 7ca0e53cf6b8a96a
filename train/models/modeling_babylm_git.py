"""BabyLM GIT: GIT's text decoder reading a frozen ViT's patch features through a freshly
initialised visual projection; image tokens come first, then the text.

The same file trains the model and ships in exported folders as Hugging Face remote code, so it
imports only torch and transformers. It reuses transformers' GIT embeddings and layers (module
paths `git.embeddings`, `git.encoder.layer`, `git.image_encoder`, `git.visual_projection`,
`output` are GIT's), and owns the forward so that text-only batches, precomputed features and the
loss on text positions are handled here rather than by `GitForCausalLM`.
"""

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.git.modeling_git import GitEmbeddings, GitEncoder, GitPreTrainedModel

from .configuration_babylm_git import BabyLMGitConfig
from .modeling_babylm_common import (
    FrozenVisionMixin,
    as_media_features,
    build_vision_encoder,
    causal_lm_loss,
    encode_images,
    freeze_,
)


class BabyLMGitProjection(nn.Module):
    """GIT's visual projection (linear + LayerNorm), sized for the swapped-in encoder."""

    def __init__(self, config: BabyLMGitConfig):
        super().__init__()
        self.visual_projection = nn.Sequential(
            nn.Linear(config.vision_config.hidden_size, config.hidden_size),
            nn.LayerNorm(config.hidden_size, eps=config.visual_projection_ln_eps),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(features)


class BabyLMGitModel(nn.Module):
    """Image tokens (bidirectional among themselves) followed by causal text tokens."""

    def __init__(self, config: BabyLMGitConfig):
        super().__init__()
        self.config = config
        self.embeddings = GitEmbeddings(config)
        self.image_encoder = freeze_(build_vision_encoder(config.vision_config))
        self.encoder = GitEncoder(config)
        self.visual_projection = BabyLMGitProjection(config)

    def encode_visual(
        self, pixel_values: torch.Tensor | None, image_embeds: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Projected image tokens (B, N, hidden) from images or precomputed features, or None."""
        if pixel_values is not None and image_embeds is not None:
            raise ValueError("pass pixel_values or image_embeds, not both")
        if pixel_values is not None:
            if pixel_values.ndim == 5:
                if pixel_values.shape[1] != 1:
                    raise ValueError("GIT takes one image per sample")
                pixel_values = pixel_values[:, 0]
            feats = encode_images(self.image_encoder, pixel_values)
        elif image_embeds is not None:
            feats = as_media_features(image_embeds)
            if feats.shape[1] != 1:
                raise ValueError("GIT takes one image per sample")
            feats = feats[:, 0]
        else:
            return None
        proj = self.visual_projection
        return proj(feats.to(proj.visual_projection[0].weight.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if position_ids is None:
            # Text positions start at 0 after the image tokens. A cache may hold image tokens too;
            # a 2D mask covers text only, so it tells how much text came before.
            start = past_len
            if past_len and attention_mask is not None and attention_mask.ndim == 2:
                start = attention_mask.shape[1] - length
            position_ids = torch.arange(start, start + length, device=device)[None]
        hidden = self.embeddings(input_ids=input_ids, position_ids=position_ids, inputs_embeds=inputs_embeds)
        batch = hidden.shape[0]

        visual = self.encode_visual(pixel_values, image_embeds)
        block_ids = None
        if visual is not None:
            if visual.shape[0] != batch:
                # As transformers' GIT: one image batch serves a text batch that is a multiple of it.
                visual = visual.repeat(batch // visual.shape[0], 1, 1)
            n_img = visual.shape[1]
            hidden = torch.cat([visual.to(hidden.dtype), hidden], dim=1)
            # Image tokens form one bidirectional block; text stays causal (-1).
            block_ids = torch.full(hidden.shape[:2], -1, dtype=torch.long, device=device)
            block_ids[:, :n_img] = 0
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask.new_ones(batch, n_img), attention_mask], dim=-1)
        elif past_len and attention_mask is not None and attention_mask.ndim == 2:
            # Cached image tokens have no place in a text-only mask: widen it over them.
            missing = past_len + length - attention_mask.shape[1]
            if missing > 0:
                attention_mask = torch.cat([attention_mask.new_ones(batch, missing), attention_mask], dim=-1)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            block_sequence_ids=block_ids,
        )
        all_hidden = () if output_hidden_states else None
        for layer in self.encoder.layer:
            if output_hidden_states:
                all_hidden += (hidden,)
            hidden = layer(hidden, causal_mask, past_key_values)
        if output_hidden_states:
            all_hidden += (hidden,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=all_hidden,
        )


class BabyLMGitForCausalLM(FrozenVisionMixin, GitPreTrainedModel, GenerationMixin):
    """GIT language model. With an image, logits cover the image tokens first, then the text."""

    config_class = BabyLMGitConfig
    config: BabyLMGitConfig
    _tied_weights_keys = {"output.weight": "git.embeddings.word_embeddings.weight"}

    def __init__(self, config: BabyLMGitConfig):
        super().__init__(config)
        self.git = BabyLMGitModel(config)
        # Tied to the word embeddings, hence no bias (the baseline's `tie_output=True`).
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        """The frozen image encoder (also reachable as `git.image_encoder`)."""
        return self.git.image_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.git.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.git.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Module:
        return self.output

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.output = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits (B, N + L, V): N image tokens (none without an image) then the L text tokens.
        `loss` is the mean next-token loss over text labels != -100 (image positions never
        count; shifted once here). Images come as `pixel_values` (B, 3, H, W) or precomputed
        features `image_embeds` (B, N, D) / (B, D). `token_type_ids` and other processor
        leftovers are ignored."""
        if labels is not None:
            use_cache = False
        outputs = self.git(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            inputs_embeds=inputs_embeds,
            past_key_values=past_key_values,
            use_cache=bool(use_cache),
            output_hidden_states=bool(
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            ),
        )
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.output(hidden)
        loss = None
        if labels is not None:
            # Text positions are the last L: image tokens are never scored.
            loss = causal_lm_loss(logits[:, -labels.shape[1] :], labels)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
        )

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs) -> dict:
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        cache = inputs.get("past_key_values")
        if cache is not None and cache.get_seq_length() > 0:
            # The image tokens are already in the cache; feeding them again would prepend them anew.
            inputs.pop("pixel_values", None)
            inputs.pop("image_embeds", None)
        return inputs


__all__ = ["BabyLMGitForCausalLM"]
