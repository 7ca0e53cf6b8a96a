"""BabyLM GIT: GIT's text decoder reading a frozen ViT's patch features through a freshly
initialised visual projection; image tokens come first, then the text.

The same file trains the model and ships in exported folders as Hugging Face remote code, so it
imports only torch and the transformers APIs every release from 4.46 to the newest 5.x has
(`PreTrainedModel`, `GenerationMixin`, `modeling_outputs`); the layers, the image-then-text mask
and the KV cache are its own (`modeling_babylm_layers`). Module paths are GIT's
(`git.embeddings`, `git.encoder.layer`, `git.image_encoder`, `git.visual_projection`, `output`).
"""

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)

from .configuration_babylm_git import BabyLMGitConfig
from .modeling_babylm_common import (
    FrozenVisionMixin,
    as_media_features,
    build_vision_encoder,
    causal_lm_loss,
    encode_images,
    freeze_,
    generation_inputs,
    init_linear_embedding_norm,
    last_token_states,
    reorder_legacy_cache,
    sequence_classification_loss,
    tied_weights_keys,
)
from .modeling_babylm_layers import GitEmbeddings, GitEncoder, KVCache, attention_bias


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
        past_key_values=None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPast:
        """Hidden states (B, N + L, D); `past_key_values` a transformers Cache, tuples or None."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        cache = KVCache(past_key_values, use_cache)
        past_len = cache.length()
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if position_ids is None:
            # Text positions start at 0 after the image tokens. A cache may hold image tokens too;
            # a 2D mask covers text only, so it tells how much text came before.
            start = past_len
            if past_len and attention_mask is not None and attention_mask.ndim == 2:
                start = attention_mask.shape[1] - length
            position_ids = torch.arange(start, start + length, device=device)[None]
        hidden = self.embeddings(input_ids, position_ids, inputs_embeds)
        batch = hidden.shape[0]

        visual = self.encode_visual(pixel_values, image_embeds)
        n_img = 0
        if visual is not None:
            if visual.shape[0] != batch:
                # As transformers' GIT: one image batch serves a text batch that is a multiple of it.
                visual = visual.repeat(batch // visual.shape[0], 1, 1)
            n_img = visual.shape[1]
            hidden = torch.cat([visual.to(hidden.dtype), hidden], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask.new_ones(batch, n_img), attention_mask], dim=-1)
        # Image tokens form one bidirectional block (the first n_img positions); text is causal.
        # Cached image tokens have no place in a text-only mask: `attention_bias` attends to them.
        bias = attention_bias(
            attention_mask, batch, hidden.shape[1], past_len, hidden.dtype, device, bidirectional_prefix=n_img
        )
        all_hidden = () if output_hidden_states else None
        for layer in self.encoder.layer:
            if output_hidden_states:
                all_hidden += (hidden,)
            hidden = layer(hidden, bias, cache)
        if output_hidden_states:
            all_hidden += (hidden,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=cache.result(), hidden_states=all_hidden
        )


class BabyLMGitPreTrainedModel(PreTrainedModel):
    config_class = BabyLMGitConfig
    base_model_prefix = "git"
    _no_split_modules = ["GitLayer"]
    _supports_sdpa = True  # accepted, so a config that asks for it loads; attention is computed eagerly
    # generate (4.46 on) hands it a transformers Cache; KVCache uses its update / get_seq_length.
    _supports_cache_class = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """GIT's init: normal(0, initializer_range), zero biases, unit norms."""
        init_linear_embedding_norm(module, self.config.initializer_range)


class BabyLMGitForCausalLM(FrozenVisionMixin, BabyLMGitPreTrainedModel, GenerationMixin):
    """GIT language model. With an image, logits cover the image tokens first, then the text."""

    _tied_weights_keys = tied_weights_keys("output.weight", "git.embeddings.word_embeddings.weight")

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
        past_key_values=None,
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
        """The new token and the cache; the image goes in only at the first step (after that
        its tokens are in the cache, and feeding it again would prepend them anew)."""
        inputs = generation_inputs(input_ids, kwargs, image_tokens_cached=True)
        if KVCache(inputs["past_key_values"], use_cache=True).length() == 0:
            inputs["pixel_values"], inputs["image_embeds"] = (
                kwargs.get("pixel_values"),
                kwargs.get("image_embeds"),
            )
        return inputs

    @staticmethod
    def _reorder_cache(past_key_values, beam_idx: torch.Tensor):
        return reorder_legacy_cache(past_key_values, beam_idx)


class BabyLMGitForSequenceClassification(FrozenVisionMixin, BabyLMGitPreTrainedModel):
    """The hidden state at each row's last non-pad text token through a linear head, as
    transformers' OPTForSequenceClassification; an image (`pixel_values`) is optional."""

    def __init__(self, config: BabyLMGitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.git = BabyLMGitModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        return self.git.image_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.git.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.git.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Logits (B, num_labels); `loss` for `labels` as transformers computes it (regression
        when num_labels == 1, else single- or multi-label classification)."""
        outputs = self.git(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            inputs_embeds=inputs_embeds,
            output_hidden_states=bool(output_hidden_states or self.config.output_hidden_states),
        )
        text_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        text_hidden = outputs.last_hidden_state[:, -text_len:]  # image tokens come first
        logits = self.score(last_token_states(text_hidden, input_ids, self.config.pad_token_id))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class BabyLMGitDecoderModel(FrozenVisionMixin, BabyLMGitPreTrainedModel):
    """`AutoModel`: the decoder without its LM head (the 2025 pipeline's fine-tuning puts its own
    head on `last_hidden_state`); `pixel_values` optional, its N image tokens first as in the
    causal LM. The causal LM's weights less `output` (tied), so nothing is newly initialised."""

    _keys_to_ignore_on_load_unexpected = [r"^output\."]

    def __init__(self, config: BabyLMGitConfig):
        super().__init__(config)
        self.git = BabyLMGitModel(config)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        return self.git.image_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.git.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.git.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """`last_hidden_state` (B, N + L, D), `hidden_states` (embeddings + one per layer) on request."""
        return self.git(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            inputs_embeds=inputs_embeds,
            past_key_values=past_key_values,
            use_cache=bool(use_cache),
            output_hidden_states=bool(output_hidden_states or self.config.output_hidden_states),
        )


__all__ = [
    "BabyLMGitDecoderModel",
    "BabyLMGitForCausalLM",
    "BabyLMGitForSequenceClassification",
    "BabyLMGitPreTrainedModel",
]
