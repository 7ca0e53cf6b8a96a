"""BabyLM Flamingo: an OPT decoder trained from scratch that reads images through gated
cross-attention to perceiver-resampled features of a frozen vision encoder.

The same file trains the model and ships in exported folders as Hugging Face remote code, so it
imports only torch and the transformers APIs every release from 4.46 to the newest 5.x has
(`PreTrainedModel`, `GenerationMixin`, `modeling_outputs`); the decoder layers, causal mask and KV
cache are its own (`modeling_babylm_layers`). Module names follow the original baseline
(`model.decoder.img_encoder`, `perceiver_resampler`, `gated_attn_layers`), which the BabyLM
evaluation pipeline relies on for `img_encoder`, and the decoder's are OPT's.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)

from .configuration_babylm_flamingo import BabyLMFlamingoConfig
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
from .modeling_babylm_layers import KVCache, OPTDecoderLayer, OPTLearnedPositionalEmbedding, attention_bias
from .modeling_babylm_perceiver import GatedCrossAttentionBlock, PerceiverResampler


class BabyLMFlamingoPreTrainedModel(PreTrainedModel):
    config_class = BabyLMFlamingoConfig
    base_model_prefix = "model"
    _no_split_modules = ["OPTDecoderLayer", "GatedCrossAttentionBlock"]
    _supports_sdpa = True
    # generate (4.46 on) hands it a transformers Cache; KVCache uses its update / get_seq_length.
    _supports_cache_class = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """OPT's init (normal(0, init_std), zero biases, unit norms), the gates and latents at
        their configured values, and optionally fan-in init for the image path's Linear layers.
        Plain torch.nn.init: transformers 5 guards those so that loaded weights stay as loaded."""
        init_linear_embedding_norm(module, self.config.init_std)
        if isinstance(module, GatedCrossAttentionBlock):
            nn.init.constant_(module.attn_gate, self.config.cross_attn_gate_init)
            nn.init.constant_(module.ff_gate, self.config.cross_attn_gate_init)
        elif isinstance(module, PerceiverResampler):
            nn.init.normal_(module.latents, std=self.config.perceiver_init_std)
            nn.init.normal_(module.media_pos_emb, std=self.config.perceiver_init_std)
        if self.config.cross_attn_fan_in_init and isinstance(
            module, GatedCrossAttentionBlock | PerceiverResampler
        ):
            # Children are initialised before their parent, so this overrides the init_std default.
            for linear in module.modules():
                if isinstance(linear, nn.Linear):
                    nn.init.normal_(linear.weight, std=linear.in_features**-0.5)


class BabyLMFlamingoDecoder(nn.Module):
    """OPT's decoder with a gated cross-attention block before every `cross_attn_every`-th layer."""

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__()
        self.config = config
        self.dropout = config.dropout
        hidden, proj = config.hidden_size, config.word_embed_proj_dim
        padding_idx = getattr(config, "embedding_padding_idx", None)
        padding_idx = config.pad_token_id if padding_idx is None else padding_idx
        self.embed_tokens = nn.Embedding(config.vocab_size, proj, padding_idx)
        self.embed_positions = OPTLearnedPositionalEmbedding(config.max_position_embeddings, hidden)
        self.project_in = nn.Linear(proj, hidden, bias=False) if proj != hidden else None
        self.project_out = nn.Linear(hidden, proj, bias=False) if proj != hidden else None
        keep_final_norm = config.do_layer_norm_before and not config._remove_final_layer_norm
        self.final_layer_norm = (
            nn.LayerNorm(hidden, elementwise_affine=config.layer_norm_elementwise_affine)
            if keep_final_norm
            else None
        )
        self.layers = nn.ModuleList(OPTDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.gated_attn_layers = nn.ModuleList(
            GatedCrossAttentionBlock(config) if i % config.cross_attn_every == 0 else None
            for i in range(config.num_hidden_layers)
        )
        self.img_encoder = freeze_(build_vision_encoder(config.vision_config))
        self.perceiver_resampler = PerceiverResampler(config, config.vision_config.hidden_size)

    def encode_media(
        self, pixel_values: torch.Tensor | None, image_embeds: torch.Tensor | None, batch_size: int
    ) -> torch.Tensor | None:
        """Resampled media (B, T, latents, D) from images or precomputed features, or None."""
        if pixel_values is not None and image_embeds is not None:
            raise ValueError("pass pixel_values or image_embeds, not both")
        if pixel_values is not None:
            feats = self.image_features(pixel_values)
        elif image_embeds is not None:
            feats = as_media_features(image_embeds)
        else:
            return None
        media = self.perceiver_resampler(feats.to(self.perceiver_resampler.latents.dtype))
        if media.shape[0] != batch_size:
            if media.shape[0] != 1:
                raise ValueError(f"{media.shape[0]} image samples for a text batch of {batch_size}")
            media = media.expand(batch_size, *media.shape[1:])
        return media

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen-encoder features (B, T, N, D) of images (B, 3, H, W) or (B, T, 3, H, W)."""
        if pixel_values.ndim == 4:
            pixel_values = pixel_values[:, None]
        b, t = pixel_values.shape[:2]
        return encode_images(self.img_encoder, pixel_values.flatten(0, 1)).unflatten(0, (b, t))

    def media_allowed(self, media_ids: torch.Tensor | None, length: int, num_media: int) -> torch.Tensor:
        """(B, L, T) bool: may text position i attend to image j?

        With `<image>` tokens, position i sees the image of the most recent one (or all earlier
        ones if `only_attend_immediate_media` is off); positions before the first see none. A row
        without any `<image>` token sees every image: evaluation prompts never contain it.
        """
        if media_ids is None:
            raise ValueError("input_ids are needed to place the images")
        is_media = media_ids == self.config.media_token_id
        text_time = is_media.cumsum(dim=-1)[:, -length:]  # 1-based index of the latest image
        image_time = torch.arange(1, num_media + 1, device=media_ids.device)
        if self.config.only_attend_immediate_media:
            allowed = text_time[..., None] == image_time
        else:
            allowed = text_time[..., None] >= image_time
        return allowed | ~is_media.any(dim=-1)[:, None, None]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        media_input_ids: torch.LongTensor | None = None,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPast:
        """Hidden states (B, L, D); `past_key_values` a transformers Cache, legacy tuples or None."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, length = inputs_embeds.shape[:2]
        media = self.encode_media(pixel_values, image_embeds, batch)
        allowed = None
        if media is not None:
            # During cached generation only the new tokens come in; `media_input_ids` holds the
            # whole sequence so the `<image>` count before each new token is still known.
            media_ids = media_input_ids if media_input_ids is not None else input_ids
            allowed = self.media_allowed(media_ids, length, media.shape[1])

        cache = KVCache(past_key_values, use_cache)
        past_seen = cache.length()
        device = inputs_embeds.device
        # As in OPT: positions count only attended tokens, so left padding does not shift them.
        position_mask = attention_mask
        if position_mask is None:
            position_mask = torch.ones(batch, past_seen + length, device=device, dtype=torch.long)
        if position_ids is None:
            position_ids = (torch.cumsum(position_mask, dim=1) * position_mask - 1).long()[:, -length:]
        padded = attention_mask is not None and not bool(attention_mask.all())
        bias = None  # plainly causal: the layers let SDPA use its fused causal kernels
        if past_seen or padded:
            bias = attention_bias(attention_mask, batch, length, past_seen, inputs_embeds.dtype, device)
        if self.project_in is not None:
            inputs_embeds = self.project_in(inputs_embeds)
        hidden = inputs_embeds + self.embed_positions(position_ids).to(device)
        hidden = F.dropout(hidden, p=self.dropout, training=self.training)

        all_hidden = () if output_hidden_states else None
        for layer, xattn in zip(self.layers, self.gated_attn_layers, strict=True):
            if output_hidden_states:
                all_hidden += (hidden,)
            if xattn is not None and media is not None:
                hidden = xattn(hidden, media, allowed)
            hidden = layer(hidden, bias, cache)
        if self.final_layer_norm is not None:
            hidden = self.final_layer_norm(hidden)
        if self.project_out is not None:
            hidden = self.project_out(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=cache.result(), hidden_states=all_hidden
        )


class BabyLMFlamingoModel(nn.Module):
    """Holds the decoder, so paths read `model.model.decoder...` as in the original."""

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__()
        self.decoder = BabyLMFlamingoDecoder(config)


class BabyLMFlamingoForCausalLM(FrozenVisionMixin, BabyLMFlamingoPreTrainedModel, GenerationMixin):
    """Flamingo language model: one output position per input token, images or not."""

    _tied_weights_keys = tied_weights_keys("lm_head.weight", "model.decoder.embed_tokens.weight")

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__(config)
        self.model = BabyLMFlamingoModel(config)
        self.lm_head = nn.Linear(config.word_embed_proj_dim, config.vocab_size, bias=False)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        """The frozen image encoder (also reachable as `model.decoder.img_encoder`)."""
        return self.model.decoder.img_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.model.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.decoder.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

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
        media_input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits (B, L, V) for input_ids (B, L); `loss` (mean over labels != -100, shifted once
        here) when labels are given. Images come as `pixel_values` (B, 3, H, W) or
        (B, T, 3, H, W), or as precomputed features `image_embeds` (B, D), (B, N, D) or
        (B, T, N, D). `token_type_ids` and other processor leftovers are ignored."""
        if labels is not None:
            use_cache = False
        outputs = self.model.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=bool(use_cache),
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            media_input_ids=media_input_ids,
            output_hidden_states=bool(
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            ),
        )
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
        )

    def generate(self, *args, pixel_values: torch.Tensor | None = None, **kwargs):
        """`GenerationMixin.generate`, with the frozen encoder run once: every step reuses the
        image features (the cache holds only self-attention keys, so the media go in each step)."""
        if pixel_values is not None:
            if kwargs.get("image_embeds") is not None:
                raise ValueError("pass pixel_values or image_embeds, not both")
            kwargs["image_embeds"] = self.model.decoder.image_features(pixel_values)  # no graph kept
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs) -> dict:
        """The new tokens and the cache (our own, not the release's: it changes between them).
        The media go in at every step, with the whole sequence to say which image is latest."""
        inputs = generation_inputs(input_ids, kwargs, image_tokens_cached=False)
        inputs["pixel_values"], inputs["image_embeds"] = (
            kwargs.get("pixel_values"),
            kwargs.get("image_embeds"),
        )
        if inputs["pixel_values"] is not None or inputs["image_embeds"] is not None:
            inputs["media_input_ids"] = input_ids
        return inputs

    @staticmethod
    def _reorder_cache(past_key_values, beam_idx: torch.Tensor):
        return reorder_legacy_cache(past_key_values, beam_idx)


class BabyLMFlamingoForSequenceClassification(FrozenVisionMixin, BabyLMFlamingoPreTrainedModel):
    """The decoder's hidden state at each row's last non-pad token through a linear head, as
    transformers' OPTForSequenceClassification; an image (`pixel_values`) is optional."""

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = BabyLMFlamingoModel(config)
        self.score = nn.Linear(config.word_embed_proj_dim, config.num_labels, bias=False)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        return self.model.decoder.img_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.model.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.decoder.embed_tokens = value

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
        outputs = self.model.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            output_hidden_states=bool(output_hidden_states or self.config.output_hidden_states),
        )
        pooled = last_token_states(outputs.last_hidden_state, input_ids, self.config.pad_token_id)
        logits = self.score(pooled)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class BabyLMFlamingoDecoderModel(FrozenVisionMixin, BabyLMFlamingoPreTrainedModel):
    """`AutoModel`: the decoder without its LM head (the 2025 pipeline's fine-tuning puts its own
    head on `last_hidden_state`); `pixel_values` optional. Its weights are the causal LM's less
    `lm_head` (tied to the embeddings), so the same folder loads with nothing newly initialised."""

    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def __init__(self, config: BabyLMFlamingoConfig):
        super().__init__(config)
        self.model = BabyLMFlamingoModel(config)
        self.post_init()

    @property
    def vision_encoder(self) -> nn.Module:
        return self.model.decoder.img_encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.model.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.decoder.embed_tokens = value

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
        """`last_hidden_state` (B, L, D), `hidden_states` (embeddings + one per layer) on request."""
        return self.model.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=bool(use_cache),
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            output_hidden_states=bool(output_hidden_states or self.config.output_hidden_states),
        )


__all__ = [
    "BabyLMFlamingoDecoderModel",
    "BabyLMFlamingoForCausalLM",
    "BabyLMFlamingoForSequenceClassification",
    "BabyLMFlamingoPreTrainedModel",
]
