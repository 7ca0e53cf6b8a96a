"""The text-track baselines: transformers' OPT and RoBERTa with the trainer's common signature.

They are the stock classes (exports save them as plain `opt` / `roberta` models); the subclasses
only put `labels` third and take the image arguments every BabyLM model takes, refusing images.
"""

from __future__ import annotations

import torch
from transformers import OPTForCausalLM, RobertaForMaskedLM


def _no_images(name: str, pixel_values: torch.Tensor | None, image_embeds: torch.Tensor | None) -> None:
    if pixel_values is not None or image_embeds is not None:
        raise ValueError(f"{name} is a text-only model: it takes no pixel_values or image_embeds")


class BabyLMOPTForCausalLM(OPTForCausalLM):
    """OPT causal LM; `loss` is the mean next-token loss over labels != -100 (transformers
    shifts the labels once)."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        **kwargs,
    ):
        _no_images("opt", pixel_values, image_embeds)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)


class BabyLMRobertaForMaskedLM(RobertaForMaskedLM):
    """RoBERTa masked LM; `loss` is the mean over labels != -100 (the masked positions: the data
    collate masks, see `mask_tokens`)."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        **kwargs,
    ):
        _no_images("roberta", pixel_values, image_embeds)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
